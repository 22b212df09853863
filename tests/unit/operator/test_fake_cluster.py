"""The hand-written FakeCluster behaves as the API server does, for every call it stands in for.

The reconcile and handler tests drive the operator through ``operator_support.FakeCluster``
(fast, synchronous, failures injectable). Those tests only mean something while the fake
answers as a real API server would, so one scenario runs here against both: the fake, and
the real adapter (KubeCluster) on kmock's Kubernetes emulator. Same calls, same expected
answers: reads, 404s, the 409 of a retried create, label selectors, and the status patch,
which is a JSON merge patch (nested fields merge, ``None`` deletes), not a shallow update.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar, cast

import kmock
import kopf
import kubernetes
import pytest
from kubernetes.client import ApiException
from operator_support import NS, SETTINGS, FakeCluster, benchmark, zmq_service
from trading_operator.cluster import Cluster, KubeCluster
from trading_operator.job import owned_job, render_job
from trading_operator.resource import GROUP, PLURAL, VERSION
from trading_operator.spec import parse_spec

Obj = dict[str, Any]
T = TypeVar("T")


class Backend:
    """One Cluster and a way to put objects in it, as the test's setup."""

    def __init__(self, kind: str, api: kmock.KubernetesEmulator | None) -> None:
        self.kind = kind
        self.fake = FakeCluster()
        self.api = api

    def seed_service(self, obj: Obj) -> None:
        if self.api is None:
            self.fake.services[obj["metadata"]["name"]] = obj
        else:
            self.api.objects["v1/services", NS, obj["metadata"]["name"]] = {
                "apiVersion": "v1", "kind": "Service", **obj,
            }  # fmt: skip

    def seed_benchmark(self, obj: Obj) -> None:
        if self.api is None:
            self.fake.benchmarks[obj["metadata"]["name"]] = obj
        else:
            self.api.objects[f"{GROUP}/{VERSION}/{PLURAL}", NS, obj["metadata"]["name"]] = obj

    def seed_pod(self, name: str, labels: dict[str, str]) -> None:
        pod: Obj = {"metadata": {"name": name, "namespace": NS, "labels": labels}}
        if self.api is None:
            self.fake.pods.append(pod)
        else:
            self.api.objects["v1/pods", NS, name] = {"apiVersion": "v1", "kind": "Pod", **pod}


def benchmark_job() -> Obj:
    owner = kopf.Body(cast(kopf.RawBody, benchmark()))
    return owned_job(render_job(parse_spec({"mode": "burst"}, SETTINGS), "lb", NS, SETTINGS), owner)


async def call(fn: Callable[[], T]) -> T:
    """Synchronous calls in a thread, so kmock keeps serving on this loop."""
    return await asyncio.to_thread(fn)


async def status_of(cluster: Cluster, fn: Callable[[], object]) -> int:
    with pytest.raises(ApiException) as caught:
        await call(fn)
    return int(caught.value.status)


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["fake", "kmock"])
async def test_the_fake_answers_as_the_api_server_does(
    kind: str, kmock: kmock.KubernetesEmulator
) -> None:
    backend = Backend(kind, None if kind == "fake" else kmock)
    config = kubernetes.client.Configuration(host=str(kmock.url).rstrip("/"))
    with kubernetes.client.ApiClient(config) as api:
        cluster: Cluster = backend.fake if kind == "fake" else KubeCluster(api)

        assert await status_of(cluster, lambda: cluster.read_service(NS, "demo-zmq")) == 404
        backend.seed_service(zmq_service())
        service = await call(lambda: cluster.read_service(NS, "demo-zmq"))
        assert service["spec"]["ports"][0] == {"name": "zmq", "port": 5555}

        job = benchmark_job()
        name = job["metadata"]["name"]
        created = await call(lambda: cluster.create_job(NS, job))
        assert created["metadata"]["name"] == name
        assert created["spec"]["template"] == job["spec"]["template"]
        assert await status_of(cluster, lambda: cluster.create_job(NS, job)) == 409
        assert (await call(lambda: cluster.read_job(NS, name)))["metadata"]["name"] == name
        assert await status_of(cluster, lambda: cluster.read_job(NS, "nope")) == 404

        backend.seed_pod("both", {"app": "bench", "run": "lb"})
        pods = await call(lambda: cluster.list_pods(NS, "app=bench,run=lb"))
        assert [p["metadata"]["name"] for p in pods] == ["both"]
        if kind == "fake":
            # kmock lists every pod whatever the labelSelector (test_cluster checks the
            # selector is sent); the fake filters as the API server does: all must match.
            backend.seed_pod("one", {"app": "bench"})
            pods = await call(lambda: cluster.list_pods(NS, "app=bench,run=lb"))
            assert [p["metadata"]["name"] for p in pods] == ["both"]

        assert await status_of(cluster, lambda: cluster.read_benchmark(NS, "lb")) == 404
        cr = benchmark()
        cr["status"] = {"state": "Pending", "job": "x", "results": {"p50Us": 1.5, "p99Us": 4.0}}
        backend.seed_benchmark(cr)
        assert (await call(lambda: cluster.read_benchmark(NS, "lb")))["spec"] == cr["spec"]
        patch = {"state": "Running", "job": None, "results": {"p99Us": 5.0}}
        await call(lambda: cluster.patch_benchmark_status(NS, "lb", patch))
        status = (await call(lambda: cluster.read_benchmark(NS, "lb")))["status"]
        assert status == {"state": "Running", "results": {"p50Us": 1.5, "p99Us": 5.0}}
        assert (
            await status_of(cluster, lambda: cluster.patch_benchmark_status(NS, "no", {"a": 1}))
            == 404
        )
