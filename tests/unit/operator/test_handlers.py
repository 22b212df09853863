"""The kopf side: what trading_operator.handlers registers, and how kopf is configured.

The registry is the one kopf's reactor reads at ``kopf run -m trading_operator.handlers``,
so inspecting it shows exactly which resources the operator watches and for which causes,
and that nothing asks for a finalizer (which would block deletions while it is down).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

import kopf
import pytest
from kopf._core.intents.causes import Activity
from operator_rbac import KOPF_NEEDS, Permission
from operator_support import RESULT, FakeCluster, benchmark, zmq_service
from telemetry_contract import encode
from trading_operator import handlers, reconcile
from trading_operator.resource import GROUP, PLURAL, VERSION
from trading_operator.settings import OperatorSettings

BENCHMARKS = kopf.Resource(GROUP, VERSION, PLURAL, namespaced=True)
JOBS = kopf.Resource("batch", "v1", "jobs", namespaced=True)
PODS = kopf.Resource("", "v1", "pods", namespaced=True)

REGISTRY = kopf.get_default_registry()


def call(handler: Callable[..., object], **kwargs: Any) -> object:
    """Call a handler the way kopf does: keyword arguments only, extras swallowed by ``**_``."""
    return handler(**kwargs)


def body(obj: dict[str, Any]) -> kopf.Body:
    return kopf.Body(cast(kopf.RawBody, obj))


def resource_handlers() -> dict[str, list[Any]]:
    # kopf keeps one sub-registry per handler family; its own reactor reads them like this.
    return {
        "changing": list(REGISTRY._changing.get_all_handlers()),
        "watching": list(REGISTRY._watching.get_all_handlers()),
        "spawning": list(REGISTRY._spawning.get_all_handlers()),
        "indexing": list(REGISTRY._indexing.get_all_handlers()),
        "webhooks": list(REGISTRY._webhooks.get_all_handlers()),
    }


def test_one_create_handler_for_latencybenchmarks() -> None:
    (handler,) = resource_handlers()["changing"]
    assert handler.fn is handlers.create_benchmark
    assert handler.reason == kopf.Reason.CREATE
    assert handler.selector is not None and handler.selector.check(BENCHMARKS)
    assert not handler.selector.check(JOBS)
    assert REGISTRY._changing.has_handlers(BENCHMARKS)
    assert not handler.requires_finalizer
    # Bounded: kopf calls it with retry 0 to MAX_RETRIES at most, then stops.
    assert handler.retries == reconcile.MAX_RETRIES + 1


def test_one_event_handler_for_benchmark_jobs() -> None:
    (handler,) = resource_handlers()["watching"]
    assert handler.fn is handlers.job_event
    assert handler.selector is not None and handler.selector.check(JOBS)
    assert not handler.selector.check(BENCHMARKS) and not handler.selector.check(PODS)
    assert handler.labels == {
        "app.kubernetes.io/name": "trading-telemetry",
        "app.kubernetes.io/component": "benchmark",
    }
    assert handler.when is handlers.owned_by_benchmark


def test_no_daemons_webhooks_indexes_or_delete_handlers() -> None:
    families = resource_handlers()
    assert families["spawning"] == families["indexing"] == families["webhooks"] == []
    reasons = {h.reason for h in families["changing"]}
    assert kopf.Reason.DELETE not in reasons and None not in reasons
    # Only LatencyBenchmarks and Jobs are watched, so the Role needs list/watch on those only.
    watched = {
        (h.selector.group, h.selector.version, h.selector.any_name or h.selector.plural)
        for family in families.values()
        for h in family
        if h.selector is not None
    }
    assert watched == {(GROUP, VERSION, PLURAL), ("batch", "v1", "jobs")}
    for group, _, plural in watched:
        for verb in ("list", "watch"):
            assert Permission(group, plural, verb) in KOPF_NEEDS


def test_startup_configures_kopf_for_a_namespaced_least_privilege_install() -> None:
    (startup,) = [
        h for h in REGISTRY._activities.get_all_handlers() if h.activity == Activity.STARTUP
    ]
    assert startup.fn is handlers.configure
    settings = kopf.OperatorSettings()
    call(handlers.configure, settings=settings)
    storage = settings.persistence.progress_storage
    assert isinstance(storage, kopf.AnnotationsProgressStorage)
    assert storage.prefix == GROUP
    diffbase = settings.persistence.diffbase_storage
    assert isinstance(diffbase, kopf.AnnotationsDiffBaseStorage)
    assert diffbase.prefix == GROUP
    assert settings.posting.level == logging.WARNING
    assert settings.scanning.disabled is True
    assert settings.peering.standalone is True


def test_startup_bounds_every_watch_and_connection() -> None:
    """kopf's defaults wait forever on a watch; a silently dropped one would go unnoticed."""
    settings = kopf.OperatorSettings()
    assert settings.watching.client_timeout is None  # what the handler has to change
    call(handlers.configure, settings=settings)
    watching = settings.watching
    assert watching.server_timeout is not None and watching.client_timeout is not None
    assert 0 < watching.server_timeout < watching.client_timeout <= 600
    assert watching.connect_timeout is not None and 0 < watching.connect_timeout <= 30
    assert settings.networking.connect_timeout == watching.connect_timeout


def test_progress_annotations_are_kubernetes_valid_keys() -> None:
    settings = kopf.OperatorSettings()
    call(handlers.configure, settings=settings)
    storage = settings.persistence.progress_storage
    assert isinstance(storage, kopf.AnnotationsProgressStorage)
    patch = kopf.Patch()
    storage.store(
        body=body(benchmark()),
        patch=patch,
        key=kopf.HandlerId("create_benchmark"),
        record={"started": "2025-11-24T16:00:00Z", "retries": 1},
    )
    for key in patch["metadata"]["annotations"]:
        prefix, name = key.split("/")
        assert prefix == GROUP and len(name) <= 63


def test_job_filter_needs_a_latencybenchmark_owner() -> None:
    ref = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "LatencyBenchmark", "controller": True}
    owned = {"metadata": {"ownerReferences": [{**ref, "name": "lb", "uid": "u"}]}}
    assert handlers.owned_by_benchmark(body(owned)) is True
    assert handlers.owned_by_benchmark(body({"metadata": {}})) is False


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    cluster = FakeCluster(services={"demo-zmq": zmq_service()})
    monkeypatch.setattr(handlers, "cluster", lambda: cluster)
    settings = OperatorSettings(default_service="demo-zmq")
    monkeypatch.setattr(handlers, "operator_settings", lambda: settings)
    return cluster


def test_handlers_drive_a_benchmark_from_create_to_succeeded(fake: FakeCluster) -> None:
    cr = benchmark()
    fake.benchmarks["lb"] = cr
    call(handlers.create_benchmark, body=body(cr), retry=0)
    (job,) = fake.jobs.values()
    # kopf delivers every change of the Job; only the finished one matters.
    call(handlers.job_event, event={"type": "MODIFIED", "object": job}, body=body(job))
    assert fake.benchmarks["lb"]["status"]["state"] == "Running"
    done = fake.finish_job(job["metadata"]["name"], encode(RESULT).decode())
    call(handlers.job_event, event={"type": "MODIFIED", "object": done}, body=body(done))
    status = fake.benchmarks["lb"]["status"]
    assert (status["state"], status["p99Us"], status["job"]) == ("Succeeded", 4.0, "lb-bench")
    # Deleting the finished Job later (by hand, or a TTL) changes nothing.
    call(handlers.job_event, event={"type": "DELETED", "object": done}, body=body(done))
    assert fake.benchmarks["lb"]["status"] == status
    assert len(fake.events) == 2  # JobCreated, BenchmarkSucceeded


def test_a_running_job_deleted_by_hand_fails_its_benchmark(fake: FakeCluster) -> None:
    cr = benchmark()
    fake.benchmarks["lb"] = cr
    call(handlers.create_benchmark, body=body(cr), retry=0)
    job = fake.jobs.pop("lb-bench")
    call(handlers.job_event, event={"type": "DELETED", "object": job}, body=body(job))
    status = fake.benchmarks["lb"]["status"]
    assert (status["state"], status["reason"]) == ("Failed", "JobDeleted")
