"""KubeCluster, the real adapter, against kmock's Kubernetes emulator on a real socket.

The official client really serializes, sends and parses here; only the API server is
emulated (nolar/kmock, the mock server kopf's own examples test with: objects in memory,
every request recorded). Each request is turned back into the RBAC permission it needs (verb
from the HTTP method, resource from the URL), which must be the one
``operator_rbac.CLUSTER_CALLS`` lists for the method that sent it, so the Role is derived from
what goes over the wire, not from intentions. KubeCluster is synchronous (it runs in kopf's
handler threads), so the tests call it in a thread while kmock serves on the test's loop.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import kmock
import kopf
import kubernetes
import pytest
import urllib3
import yaml
from kopf._core.engines import posting
from kubernetes.client import ApiException
from kubernetes.config import kube_config
from operator_rbac import CLUSTER_CALLS, Permission
from trading_operator.cluster import REQUEST_TIMEOUT, KubeCluster, load_client_config
from trading_operator.job import owned_job, render_job
from trading_operator.reconcile import TRANSIENT
from trading_operator.resource import API_VERSION, GROUP, KIND, PLURAL, VERSION
from trading_operator.settings import OperatorSettings
from trading_operator.spec import parse_spec

Obj = dict[str, Any]
T = TypeVar("T")
NS = "trading"
CR_PATH = f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}/lb"
CR_META = {"name": "lb", "namespace": NS, "uid": "u1"}
BENCHMARKS = f"{GROUP}/{VERSION}/{PLURAL}"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: Any


def permission(seen: Seen) -> Permission:
    """The RBAC permission a request needs, as the API server's authorizer derives it."""
    parts = seen.path.strip("/").split("/")
    if parts[0] == "api":  # /api/v1/namespaces/NS/RESOURCE[/NAME[/SUB]]
        group, rest = "", parts[4:]
    else:  # /apis/GROUP/VERSION/namespaces/NS/RESOURCE[/NAME[/SUB]]
        group, rest = parts[1], parts[5:]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    named = len(rest) > 1
    verb = {
        ("GET", True): "get",
        ("GET", False): "watch" if seen.query.get("watch") == ["true"] else "list",
        ("POST", False): "create",
        ("PATCH", True): "patch",
        ("PUT", True): "update",
        ("DELETE", True): "delete",
    }[(seen.method, named)]
    return Permission(group, resource, verb)


def seen_requests(api: kmock.KubernetesEmulator) -> list[Seen]:
    return [
        Seen(
            str(r.method).split(".")[-1].upper(),
            r.url.path,
            {key: r.url.query.getall(key) for key in r.url.query},
            next((v for k, v in r.headers.items() if k.lower() == "content-type"), ""),
            r.data,
        )
        for r in api
    ]


class Requests:
    """The requests kmock recorded, consumed one call at a time."""

    def __init__(self, api: kmock.KubernetesEmulator) -> None:
        self.api = api
        self.done = 0

    def only(self, method: str) -> Seen:
        """The single request ``method`` sent, checked against the permission listed for it."""
        seen = seen_requests(self.api)[self.done :]
        self.done += len(seen)
        assert len(seen) == 1, seen
        assert permission(seen[0]) == CLUSTER_CALLS[method], seen[0]
        return seen[0]


@pytest.fixture
def kube(kmock: kmock.KubernetesEmulator) -> Iterator[KubeCluster]:
    config = kubernetes.client.Configuration(host=str(kmock.url).rstrip("/"))
    with kubernetes.client.ApiClient(config) as api:
        yield KubeCluster(api)


async def call(fn: Callable[[], T]) -> T:
    """The synchronous client in a thread, so kmock keeps serving on this loop."""
    return await asyncio.to_thread(fn)


@pytest.mark.asyncio
async def test_read_service(kmock: kmock.KubernetesEmulator, kube: KubeCluster) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "demo-zmq", "namespace": NS},
        "spec": {"ports": [{"name": "zmq", "port": 5555, "targetPort": "zmq"}]},
    }
    kmock.objects["v1/services", NS, "demo-zmq"] = service
    requests = Requests(kmock)
    got = await call(lambda: kube.read_service(NS, "demo-zmq"))
    requests.only("read_service")
    assert got["spec"]["ports"][0]["port"] == 5555  # plain camelCase dicts, as kopf gives
    assert got["spec"]["ports"][0]["targetPort"] == "zmq"
    with pytest.raises(ApiException) as caught:
        await call(lambda: kube.read_service(NS, "nope"))
    assert caught.value.status == 404


def benchmark_job() -> Obj:
    settings = OperatorSettings()
    owner = kopf.Body(
        cast(kopf.RawBody, {"apiVersion": API_VERSION, "kind": KIND, "metadata": CR_META})
    )
    return owned_job(render_job(parse_spec({"mode": "burst"}, settings), "lb", NS, settings), owner)


@pytest.mark.asyncio
async def test_create_job_sends_the_manifest_unchanged(
    kmock: kmock.KubernetesEmulator, kube: KubeCluster
) -> None:
    job = benchmark_job()
    requests = Requests(kmock)
    created = await call(lambda: kube.create_job(NS, job))
    seen = requests.only("create_job")
    # The client's model round trip must not drop or rename a single field.
    assert seen.body == job
    assert created["metadata"]["name"] == "lb-bench"
    # A retried create finds the Job there: the API's 409, for the caller to handle.
    with pytest.raises(ApiException) as caught:
        await call(lambda: kube.create_job(NS, job))
    assert caught.value.status == 409


@pytest.mark.asyncio
async def test_read_job_and_list_its_pods(
    kmock: kmock.KubernetesEmulator, kube: KubeCluster
) -> None:
    kmock.objects["batch/v1/jobs", NS, "lb-bench"] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "lb-bench", "namespace": NS},
    }
    requests = Requests(kmock)
    assert (await call(lambda: kube.read_job(NS, "lb-bench")))["metadata"]["name"] == "lb-bench"
    requests.only("read_job")

    kmock.objects["v1/pods", NS, "lb-bench-x1"] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "lb-bench-x1", "namespace": NS},
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [
                {
                    "name": "benchmark",
                    "image": "i",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "message": '{"type":"benchmark"}'}},
                }
            ],
        },
    }
    got = await call(lambda: kube.list_pods(NS, "batch.kubernetes.io/controller-uid=abc"))
    seen = requests.only("list_pods")
    assert seen.query["labelSelector"] == ["batch.kubernetes.io/controller-uid=abc"]
    terminated = got[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["message"] == '{"type":"benchmark"}'


@pytest.mark.asyncio
async def test_read_and_patch_the_benchmark(
    kmock: kmock.KubernetesEmulator, kube: KubeCluster
) -> None:
    cr = {"apiVersion": API_VERSION, "kind": KIND, "metadata": CR_META}
    kmock.objects[BENCHMARKS, NS, "lb"] = cr
    requests = Requests(kmock)
    assert await call(lambda: kube.read_benchmark(NS, "lb")) == cr
    requests.only("read_benchmark")

    await call(
        lambda: kube.patch_benchmark_status(NS, "lb", {"state": "Running", "job": "lb-bench"})
    )
    seen = requests.only("patch_benchmark_status")
    # A merge patch: fields not in it (e.g. results written earlier) stay as they are.
    assert seen.content_type == "application/merge-patch+json"
    assert seen.body == {"status": {"state": "Running", "job": "lb-bench"}}


def test_events_are_queued_for_kopf_to_post_on_the_benchmark() -> None:
    cr = {"apiVersion": API_VERSION, "kind": KIND, "metadata": CR_META}

    async def post() -> posting.K8sEvent:
        queue: posting.K8sEventQueue = asyncio.Queue()
        posting.settings_var.set(kopf.OperatorSettings())
        posting.event_queue_var.set(queue)
        posting.event_queue_loop_var.set(asyncio.get_running_loop())
        with kubernetes.client.ApiClient() as api:
            KubeCluster(api).post_event(cr, "Normal", "BenchmarkSucceeded", "p99 4µs")
        return await asyncio.wait_for(queue.get(), timeout=5)

    event = asyncio.run(post())
    assert (event.type, event.reason, event.message) == ("Normal", "BenchmarkSucceeded", "p99 4µs")
    assert event.ref["kind"] == KIND and event.ref["name"] == "lb" and event.ref["uid"] == "u1"
    assert (
        permission(Seen("POST", f"/api/v1/namespaces/{NS}/events", {}, "", None))
        == (CLUSTER_CALLS["post_event"])
    )


# --- timeouts and configuration -----------------------------------------------------------


def test_every_call_has_a_finite_default_timeout() -> None:
    default = inspect.signature(KubeCluster).parameters["request_timeout"].default
    assert default == REQUEST_TIMEOUT == (5.0, 30.0)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A socket that accepts connections (the kernel's backlog does) and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_every_call_gives_up_on_a_server_that_does_not_answer(silent_server: str) -> None:
    """A silent API server ends each call with a transient error instead of a stuck handler."""
    job = benchmark_job()
    calls: dict[str, Callable[[KubeCluster], object]] = {
        "read_service": lambda k: k.read_service(NS, "demo-zmq"),
        "create_job": lambda k: k.create_job(NS, job),
        "read_job": lambda k: k.read_job(NS, "lb-bench"),
        "list_pods": lambda k: k.list_pods(NS, "job-name=lb-bench"),
        "read_benchmark": lambda k: k.read_benchmark(NS, "lb"),
        "patch_benchmark_status": lambda k: k.patch_benchmark_status(NS, "lb", {"state": "x"}),
    }
    assert set(calls) == set(CLUSTER_CALLS) - {"post_event"}  # Events go through kopf
    config = kubernetes.client.Configuration(host=silent_server)
    with kubernetes.client.ApiClient(config) as api:
        kube = KubeCluster(api, request_timeout=(2.0, 0.03))
        for name, fn in calls.items():
            with pytest.raises(urllib3.exceptions.HTTPError) as caught:
                fn(kube)
            assert isinstance(caught.value, TRANSIENT), name
            # Reads end after urllib3's own retries; a POST is not retried on a read timeout.
            error = caught.value
            cause = error.reason if isinstance(error, urllib3.exceptions.MaxRetryError) else error
            assert isinstance(cause, urllib3.exceptions.ReadTimeoutError), name


@pytest.fixture
def default_configuration() -> Iterator[None]:
    """load_*_config() replaces the client's process-wide default; put it back afterwards."""
    saved = kubernetes.client.Configuration.get_default_copy()
    try:
        yield
    finally:
        kubernetes.client.Configuration.set_default(saved)


def test_outside_a_cluster_the_local_kubeconfig_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default_configuration: None
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "dev",
            }
        ),
        encoding="utf-8",
    )
    # The client reads $KUBECONFIG once, at import; this is where it keeps it.
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    load_client_config()
    assert kubernetes.client.Configuration.get_default_copy().host == "https://127.0.0.1:6443"


def test_without_a_cluster_or_a_kubeconfig_start_up_fails_loudly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default_configuration: None
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "missing"))
    with pytest.raises(kubernetes.config.ConfigException):
        load_client_config()
