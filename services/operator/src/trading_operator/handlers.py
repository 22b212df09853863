"""kopf handlers: decorators and wiring only; the work is in ``reconcile`` and below.

Run with ``kopf run --standalone --namespace NS -m trading_operator.handlers``. There is
deliberately no delete handler: the benchmark Job carries an owner reference to its
LatencyBenchmark, so the garbage collector removes it, and without a delete handler kopf
puts no finalizer on LatencyBenchmarks (which would block their deletion while the
operator is down).
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Final

import kopf

from trading_operator import reconcile
from trading_operator.cluster import Cluster, KubeCluster, load_client_config
from trading_operator.job import owner_of
from trading_operator.resource import (
    APP_NAME,
    BENCH_COMPONENT,
    COMPONENT_LABEL,
    GROUP,
    NAME_LABEL,
    PLURAL,
    VERSION,
)
from trading_operator.settings import OperatorSettings, load

#: Only the Jobs this operator makes: labelled as benchmark Jobs of this application.
JOB_LABELS = {NAME_LABEL: APP_NAME, COMPONENT_LABEL: BENCH_COMPONENT}

#: Seconds the API server keeps one watch open before ending it cleanly; kopf then re-lists.
WATCH_SERVER_TIMEOUT: Final = 240
#: Seconds kopf waits on a watch connection in total: a little past the server's own end,
#: so a connection that died silently (a NAT or load balancer dropping it) is noticed.
WATCH_CLIENT_TIMEOUT: Final = WATCH_SERVER_TIMEOUT + 30
#: Seconds to open a connection to the API server, for watches and kopf's own requests.
CONNECT_TIMEOUT: Final = 10


@functools.cache
def operator_settings() -> OperatorSettings:
    return load()


@functools.cache
def cluster() -> Cluster:
    load_client_config()
    return KubeCluster()


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Fit kopf to a namespaced, least-privilege install.

    Progress lives in annotations under the project's own prefix (kopf's default status
    field is not in the CRD schema and would be pruned); only warnings become Kubernetes
    Events (success is posted explicitly, once); cluster-wide scanning of CRDs and
    namespaces is off because the Role is namespaced and cannot list them. Watches get
    timeouts (kopf's defaults are none), so a half-open connection cannot stop the
    operator from seeing new LatencyBenchmarks and finished Jobs.
    """
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.posting.level = logging.WARNING
    settings.scanning.disabled = True
    settings.peering.standalone = True
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT
    settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT
    settings.watching.connect_timeout = CONNECT_TIMEOUT
    settings.networking.connect_timeout = CONNECT_TIMEOUT


@kopf.on.create(GROUP, VERSION, PLURAL, retries=reconcile.MAX_RETRIES + 1)
def create_benchmark(body: kopf.Body, retry: int, **_: Any) -> None:
    """New LatencyBenchmark: check the target, create its Job, record state Running.

    ``retries`` counts calls (retry 0 to MAX_RETRIES): reconcile gives up by itself by
    then, so kopf's limit is only the backstop against a loop nobody foresaw.
    """
    reconcile.start(cluster(), dict(body), operator_settings(), retry=retry)


def owned_by_benchmark(body: kopf.Body, **_: Any) -> bool:
    return owner_of(body) is not None


@kopf.on.event("batch", "v1", "jobs", labels=JOB_LABELS, when=owned_by_benchmark)
def job_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    """Any change of a benchmark Job; a finished or deleted one ends its LatencyBenchmark."""
    if event["type"] == "DELETED":
        reconcile.job_deleted(cluster(), dict(body))
        return
    reconcile.finish(cluster(), dict(body))
