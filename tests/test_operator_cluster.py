"""KubeCluster, the real adapter, against a fake Kubernetes API server on a real socket.

The official client really serializes, sends and parses here; only the server is fake.
Each request is turned back into the RBAC permission it needs (verb from the HTTP method,
resource from the URL), which must be the one ``operator_rbac.CLUSTER_CALLS`` lists for the method
that sent it, so the Role is derived from what goes over the wire, not from intentions.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

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
NS = "trading"
CR_PATH = f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}/lb"
CR_META = {"name": "lb", "namespace": NS, "uid": "u1"}


def status_body(code: int, reason: str, message: str) -> Obj:
    """An API error body, as the API server sends it."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "code": code,
        "message": message,
    }


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


@dataclass
class FakeApiServer:
    """Routes → (status, JSON body); records every request it gets."""

    routes: dict[tuple[str, str], Callable[[Seen], tuple[int, Obj]]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def handle(self, seen: Seen) -> tuple[int, Obj]:
        self.seen.append(seen)
        route = self.routes.get((seen.method, seen.path))
        if route is None:
            return 404, status_body(404, "NotFound", f"{seen.path} not found")
        return route(seen)


@pytest.fixture
def server() -> Iterator[tuple[FakeApiServer, str]]:
    fake = FakeApiServer()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            seen = Seen(
                self.command,
                url.path,
                parse_qs(url.query),
                self.headers.get("Content-Type", ""),
                json.loads(raw) if raw else None,
            )
            code, body = fake.handle(seen)
            payload = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            try:
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (the timeout test)

        do_GET = do_POST = do_PATCH = _serve  # noqa: N815 - http.server's naming

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def kube(server: tuple[FakeApiServer, str]) -> Iterator[KubeCluster]:
    config = kubernetes.client.Configuration(host=server[1])
    with kubernetes.client.ApiClient(config) as api:
        yield KubeCluster(api)


def ok(body: Obj, code: int = 200) -> Callable[[Seen], tuple[int, Obj]]:
    return lambda _: (code, body)


def only_request(fake: FakeApiServer, method: str) -> Seen:
    """The single request ``method`` sent, checked against the permission listed for it."""
    (seen,) = fake.seen
    assert permission(seen) == CLUSTER_CALLS[method], seen
    fake.seen.clear()
    return seen


def test_read_service(server: tuple[FakeApiServer, str], kube: KubeCluster) -> None:
    fake, _ = server
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "demo-zmq", "namespace": NS},
        "spec": {"ports": [{"name": "zmq", "port": 5555, "targetPort": "zmq"}]},
    }
    fake.routes[("GET", f"/api/v1/namespaces/{NS}/services/demo-zmq")] = ok(service)
    got = kube.read_service(NS, "demo-zmq")
    only_request(fake, "read_service")
    assert got["spec"]["ports"][0]["port"] == 5555  # plain camelCase dicts, as kopf gives
    assert got["spec"]["ports"][0]["targetPort"] == "zmq"
    with pytest.raises(ApiException) as caught:
        kube.read_service(NS, "nope")
    assert caught.value.status == 404


def test_create_job_sends_the_manifest_unchanged(
    server: tuple[FakeApiServer, str], kube: KubeCluster
) -> None:
    fake, _ = server
    settings = OperatorSettings()
    owner = kopf.Body(
        cast(kopf.RawBody, {"apiVersion": API_VERSION, "kind": KIND, "metadata": CR_META})
    )
    job = owned_job(render_job(parse_spec({"mode": "burst"}, settings), "lb", NS, settings), owner)
    path = f"/apis/batch/v1/namespaces/{NS}/jobs"
    fake.routes[("POST", path)] = lambda seen: (201, {**seen.body, "status": {}})
    created = kube.create_job(NS, job)
    seen = only_request(fake, "create_job")
    # The client's model round trip must not drop or rename a single field.
    assert seen.body == job
    assert created["metadata"]["name"] == "lb-bench"

    fake.routes[("POST", path)] = ok(status_body(409, "AlreadyExists", "already exists"), 409)
    with pytest.raises(ApiException) as caught:
        kube.create_job(NS, job)
    assert caught.value.status == 409


def test_read_job_and_list_its_pods(server: tuple[FakeApiServer, str], kube: KubeCluster) -> None:
    fake, _ = server
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "lb-bench", "namespace": NS},
    }
    fake.routes[("GET", f"/apis/batch/v1/namespaces/{NS}/jobs/lb-bench")] = ok(job)
    assert kube.read_job(NS, "lb-bench")["metadata"]["name"] == "lb-bench"
    only_request(fake, "read_job")

    pod = {
        "metadata": {"name": "lb-bench-x1"},
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
    pods = {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [pod]}
    fake.routes[("GET", f"/api/v1/namespaces/{NS}/pods")] = ok(pods)
    got = kube.list_pods(NS, "batch.kubernetes.io/controller-uid=abc")
    seen = only_request(fake, "list_pods")
    assert seen.query["labelSelector"] == ["batch.kubernetes.io/controller-uid=abc"]
    terminated = got[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["message"] == '{"type":"benchmark"}'


def test_read_and_patch_the_benchmark(server: tuple[FakeApiServer, str], kube: KubeCluster) -> None:
    fake, _ = server
    cr = {"apiVersion": API_VERSION, "kind": KIND, "metadata": CR_META}
    fake.routes[("GET", CR_PATH)] = ok(cr)
    assert kube.read_benchmark(NS, "lb") == cr
    only_request(fake, "read_benchmark")

    fake.routes[("PATCH", f"{CR_PATH}/status")] = lambda seen: (200, {**cr, **seen.body})
    kube.patch_benchmark_status(NS, "lb", {"state": "Running", "job": "lb-bench"})
    seen = only_request(fake, "patch_benchmark_status")
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


def test_every_call_gives_up_on_a_server_that_does_not_answer(
    server: tuple[FakeApiServer, str],
) -> None:
    """A silent API server ends each call with a transient error instead of a stuck handler."""
    fake, url = server

    def silent(seen: Seen) -> tuple[int, Obj]:
        time.sleep(0.6)
        return 200, {}

    for method, path in [
        ("GET", f"/api/v1/namespaces/{NS}/services/demo-zmq"),
        ("POST", f"/apis/batch/v1/namespaces/{NS}/jobs"),
        ("GET", f"/apis/batch/v1/namespaces/{NS}/jobs/lb-bench"),
        ("GET", f"/api/v1/namespaces/{NS}/pods"),
        ("GET", CR_PATH),
        ("PATCH", f"{CR_PATH}/status"),
    ]:
        fake.routes[(method, path)] = silent
    settings = OperatorSettings()
    owner = kopf.Body(
        cast(kopf.RawBody, {"apiVersion": API_VERSION, "kind": KIND, "metadata": CR_META})
    )
    job = owned_job(render_job(parse_spec({"mode": "burst"}, settings), "lb", NS, settings), owner)
    calls: dict[str, Callable[[KubeCluster], object]] = {
        "read_service": lambda k: k.read_service(NS, "demo-zmq"),
        "create_job": lambda k: k.create_job(NS, job),
        "read_job": lambda k: k.read_job(NS, "lb-bench"),
        "list_pods": lambda k: k.list_pods(NS, "job-name=lb-bench"),
        "read_benchmark": lambda k: k.read_benchmark(NS, "lb"),
        "patch_benchmark_status": lambda k: k.patch_benchmark_status(NS, "lb", {"state": "x"}),
    }
    assert set(calls) == set(CLUSTER_CALLS) - {"post_event"}  # Events go through kopf
    config = kubernetes.client.Configuration(host=url)
    with kubernetes.client.ApiClient(config) as api:
        kube = KubeCluster(api, request_timeout=(2.0, 0.1))
        for name, call in calls.items():
            with pytest.raises(urllib3.exceptions.HTTPError) as caught:
                call(kube)
            assert isinstance(caught.value, TRANSIENT), name
            # Reads end after urllib3's own retries; a POST is not retried on a read timeout.
            error = caught.value
            cause = error.reason if isinstance(error, urllib3.exceptions.MaxRetryError) else error
            assert isinstance(cause, urllib3.exceptions.ReadTimeoutError), name
    assert {(seen.method, seen.path) for seen in fake.seen} == set(fake.routes)


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
