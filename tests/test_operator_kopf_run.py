"""The operator as it runs: ``kopf run -m trading_operator.handlers`` against a fake API server.

Everything is real except the Kubernetes API (there is no API server here): the kopf CLI and
engine, its login through the kubeconfig, discovery, list and watch streams, its progress
annotations, Event posting, the liveness endpoint, and the operator's own client calls. The
fake API server keeps objects in memory, streams watch events, and plays the Job controller
and kubelet when told to. Every request kopf and the operator send must be allowed by the
Role the chart renders: least privilege checked on the wire, kopf's own calls included.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python
import httpx2 as httpx
import pytest
import yaml
from aiohttp import web
from operator_rbac import RBAC_RULES, Permission, permissions_of
from support import BIN, ROOT, Proc, free_port, start_process, wait_for
from telemetry_contract import encode
from test_operator_reconcile import RESULT
from trading_operator.resource import API_VERSION, GROUP, KIND, PLURAL, VERSION

NS = "trading"
#: Not a watch event type: tells a watch stream of the fake server to end.
CLOSE = "CLOSE"
RELEASE = "demo"
Obj = dict[str, Any]

#: (group, version, plural, kind, namespaced, verbs, subresources) the fake API serves.
RESOURCES = [
    ("", "v1", "namespaces", "Namespace", False, ["get", "list", "watch"], []),
    ("", "v1", "pods", "Pod", True, ["get", "list", "watch", "patch"], []),
    ("", "v1", "services", "Service", True, ["get", "list", "watch", "patch"], []),
    ("", "v1", "events", "Event", True, ["create", "get", "list", "watch"], []),
    ("batch", "v1", "jobs", "Job", True, ["create", "get", "list", "watch", "patch"], []),
    (GROUP, VERSION, PLURAL, KIND, True, ["get", "list", "watch", "patch"], ["status"]),
]


def merge(target: Obj, patch: Obj) -> Obj:
    """RFC 7386 JSON merge patch, as the API server applies ``application/merge-patch+json``."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]


@dataclass
class FakeApi:
    """Objects by plural and name, a resourceVersion counter, and open watch streams."""

    objects: dict[str, dict[str, Obj]] = field(default_factory=dict)
    watchers: dict[str, list[asyncio.Queue[Obj]]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    events: list[Obj] = field(default_factory=list)
    version: int = 1
    loop: asyncio.AbstractEventLoop | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, plural: str, obj: Obj, kind: str = "ADDED") -> Obj:
        """Store ``obj`` and tell the watchers; call on the server's loop."""
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects.setdefault(plural, {})[obj["metadata"]["name"]] = obj
        for queue in self.watchers.get(plural, []):
            queue.put_nowait({"type": kind, "object": copy.deepcopy(obj)})
        return obj

    def snapshot(self, plural: str, name: str) -> Obj | None:
        with self.lock:
            found = self.objects.get(plural, {}).get(name)
            return copy.deepcopy(found) if found else None

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn`` on the server's loop from the test thread and wait for it."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(_call(fn, *args), self.loop).result(timeout=10)


async def _call(fn: Any, *args: Any) -> Any:
    return fn(*args)


def discovery(group: str, version: str) -> Obj:
    resources = []
    for g, v, plural, kind, namespaced, verbs, subs in RESOURCES:
        if (g, v) != (group, version):
            continue
        entry = {"name": plural, "singularName": "", "namespaced": namespaced, "kind": kind}
        resources.append({**entry, "verbs": verbs})
        resources += [
            {**entry, "name": f"{plural}/{sub}", "verbs": ["get", "patch"]} for sub in subs
        ]
    return {
        "kind": "APIResourceList",
        "groupVersion": f"{group}/{version}".lstrip("/"),
        "resources": resources,
    }


def make_app(api: FakeApi) -> web.Application:
    async def record(request: web.Request) -> None:
        with api.lock:
            api.seen.append(Seen(request.method, request.path, dict(request.query)))

    async def core(request: web.Request) -> web.StreamResponse:
        await record(request)
        return web.json_response({"kind": "APIVersions", "versions": ["v1"]})

    async def groups(request: web.Request) -> web.StreamResponse:
        await record(request)
        listed = []
        for group, version in {(g, v) for g, v, *_ in RESOURCES if g}:
            gv = {"groupVersion": f"{group}/{version}", "version": version}
            listed.append({"name": group, "versions": [gv], "preferredVersion": gv})
        return web.json_response({"kind": "APIGroupList", "groups": listed})

    async def group_version(request: web.Request) -> web.StreamResponse:
        await record(request)
        info = request.match_info
        return web.json_response(discovery(info.get("group", ""), info["version"]))

    async def collection(request: web.Request) -> web.StreamResponse:
        await record(request)
        plural = request.match_info["plural"]
        if request.method == "POST":
            obj = await request.json()
            meta = obj.setdefault("metadata", {})
            name = meta.get("name") or f"{meta.get('generateName', 'x-')}{api.version}"
            meta["name"] = name
            if name in api.objects.get(plural, {}):
                return web.json_response({"kind": "Status", "code": 409}, status=409)
            obj["metadata"].update(uid=f"uid-{plural}-{name}", namespace=NS)
            if plural == "jobs":
                uid = obj["metadata"]["uid"]
                obj["spec"]["selector"] = {"matchLabels": {"controller-uid": uid}}
            with api.lock:
                if plural == "events":
                    api.events.append(obj)
                api.put(plural, obj)
            return web.json_response(obj, status=201)
        if request.query.get("watch") == "true":
            return await watch(request, plural)
        items = list(api.objects.get(plural, {}).values())
        return web.json_response(
            {"kind": "List", "metadata": {"resourceVersion": str(api.version)}, "items": items}
        )

    async def watch(request: web.Request, plural: str) -> web.StreamResponse:
        queue: asyncio.Queue[Obj] = asyncio.Queue()
        api.watchers.setdefault(plural, []).append(queue)
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        try:
            while True:
                event = await queue.get()
                if event.get("type") == CLOSE:
                    break
                await response.write(json.dumps(event).encode() + b"\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            api.watchers[plural].remove(queue)
        return response

    async def item(request: web.Request) -> web.StreamResponse:
        await record(request)
        info = request.match_info
        plural, name = info["plural"], info["name"]
        found = api.objects.get(plural, {}).get(name)
        if found is None:
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        if request.method == "PATCH":
            kind = request.content_type
            if kind != "application/merge-patch+json":
                return web.json_response({"kind": "Status", "code": 415}, status=415)
            patch = await request.json()
            if info.get("sub") == "status":
                patch = {"status": patch.get("status", {})}
            else:
                patch.pop("status", None)  # the status subresource owns it
            with api.lock:
                api.put(plural, merge(found, patch), "MODIFIED")
        return web.json_response(found)

    app = web.Application()
    app.router.add_get("/api", core)
    app.router.add_get("/apis", groups)
    app.router.add_get("/api/{version}", group_version)
    app.router.add_get("/apis/{group}/{version}", group_version)
    for prefix in ("/api/{version}", "/apis/{group}/{version}"):
        base = prefix + "/namespaces/{ns}/{plural}"
        app.router.add_route("*", base, collection)
        app.router.add_route("*", base + "/{name}", item)
        app.router.add_route("*", base + "/{name}/{sub}", item)
        app.router.add_route("*", prefix + "/{plural}", collection)  # cluster-wide lists
    return app


@pytest.fixture
def fake_api() -> Iterator[tuple[FakeApi, int]]:
    api = FakeApi()
    port = free_port()
    started = threading.Event()
    runner_box: list[web.AppRunner] = []

    async def serve() -> None:
        runner = web.AppRunner(make_app(api), handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runner_box.append(runner)
        started.set()

    loop = asyncio.new_event_loop()
    api.loop = loop
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop).result(timeout=10)
    assert started.wait(10)
    try:
        yield api, port
    finally:

        async def close_watches() -> None:
            for queues in api.watchers.values():
                for queue in queues:
                    queue.put_nowait({"type": CLOSE})

        asyncio.run_coroutine_threadsafe(close_watches(), loop).result(timeout=10)
        asyncio.run_coroutine_threadsafe(runner_box[0].cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def kubeconfig(path: Path, port: int) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "operator", "user": {"token": "fake-token"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "operator"}}],
        "current-context": "fake",
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def chart_role() -> frozenset[Permission]:
    with helm_python.Chart.load(str(ROOT / "charts" / "trading-telemetry")) as chart:
        manifests = chart.render({"operator": {"enabled": True}}, name=RELEASE, namespace=NS)
    for template, text in manifests.items():
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc and doc["kind"] == "Role":
                return permissions_of(doc["rules"])
    raise AssertionError("the chart renders no Role")


def permission(seen: Seen) -> Permission | None:
    """The RBAC permission a request needs; None for discovery (allowed to every user).

    Also cluster-scoped requests (e.g. listing namespaces) map to a permission, which the
    namespaced Role cannot grant, so kopf trying one fails the test.
    """
    parts = seen.path.strip("/").split("/")
    core = parts[0] == "api"
    rest = parts[2 if core else 3 :]
    if not rest:
        return None  # /api, /api/v1, /apis, /apis/GROUP/VERSION
    group = "" if core else parts[1]
    if rest[0] == "namespaces" and len(rest) > 2:
        rest = rest[2:]  # namespaces/NS/RESOURCE[/NAME[/SUB]]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    named = len(rest) > 1
    listing = "watch" if seen.query.get("watch") == "true" else "list"
    verbs = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}
    verb = ("get" if named else listing) if seen.method == "GET" else verbs[seen.method]
    return Permission(group, resource, verb)


def test_kopf_run_takes_a_benchmark_from_create_to_succeeded(
    fake_api: tuple[FakeApi, int], tmp_path: Path
) -> None:
    api, port = fake_api
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "demo-zmq", "namespace": NS},
        "spec": {"ports": [{"name": "zmq", "port": 5555}]},
    }
    benchmark: Obj = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "lb", "namespace": NS, "uid": "uid-lb"},
        "spec": {"mode": "burst", "events": 1000},
    }
    # A second one that passes the schema but cannot run: it must end Failed, not loop.
    stray = copy.deepcopy(benchmark)
    stray["metadata"].update(name="stray", uid="uid-stray")
    stray["spec"]["service"] = "no-such-service"
    api.call(api.put, "services", service)
    api.call(api.put, PLURAL, benchmark)
    api.call(api.put, PLURAL, stray)

    live = free_port()
    env = {
        "KUBECONFIG": str(kubeconfig(tmp_path / "kubeconfig", port)),
        "HOME": str(tmp_path),
        "TT_OPERATOR_DEFAULT_SERVICE": "demo-zmq",
        "TT_OPERATOR_INSTANCE": RELEASE,
    }
    liveness = f"--liveness=http://127.0.0.1:{live}/healthz"
    command = [str(BIN / "kopf"), "run", "--standalone", "--namespace", NS, liveness]
    command += ["-m", "trading_operator.handlers"]
    proc: Proc = start_process(command, tmp_path / "kopf.log", env)
    try:
        job = wait_for(lambda: api.snapshot("jobs", "lb-bench"), timeout=30, what="the Job")
        assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-lb"
        assert (
            job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
        )
        status = wait_for(lambda: (api.snapshot(PLURAL, "lb") or {}).get("status"), what="Running")
        assert status["state"] == "Running"
        assert httpx.get(f"http://127.0.0.1:{live}/healthz", timeout=5).status_code == 200

        def complete() -> None:  # the Job controller and the kubelet
            stored = api.objects["jobs"]["lb-bench"]
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "lb-bench-x1",
                    "namespace": NS,
                    "labels": dict(stored["spec"]["selector"]["matchLabels"]),
                },
                "status": {
                    "phase": "Succeeded",
                    "containerStatuses": [
                        {
                            "name": "benchmark",
                            "image": "bench",
                            "imageID": "",
                            "ready": False,
                            "restartCount": 0,
                            "state": {
                                "terminated": {"exitCode": 0, "message": encode(RESULT).decode()}
                            },
                        }
                    ],
                },
            }
            api.put("pods", pod)
            stored["status"] = {
                "startTime": "2025-11-24T16:00:00Z",
                "succeeded": 1,
                "conditions": [{"type": "Complete", "status": "True"}],
            }
            api.put("jobs", stored, "MODIFIED")

        api.call(complete)

        def succeeded() -> Obj | None:
            current = (api.snapshot(PLURAL, "lb") or {}).get("status") or {}
            return current if current.get("state") == "Succeeded" else None

        final = wait_for(succeeded, timeout=30, what="state Succeeded")
        assert (final["p50Us"], final["p99Us"], final["lost"]) == (1.5, 4.0, 0)

        def reasons(name: str) -> list[str]:
            with api.lock:
                return [e["reason"] for e in api.events if e["involvedObject"]["name"] == name]

        wait_for(lambda: len(reasons("lb")) >= 2, what="Events on lb")
        assert reasons("lb") == ["JobCreated", "BenchmarkSucceeded"]
        # kopf's progress lives in annotations under the project's prefix, not in status.
        annotations = (api.snapshot(PLURAL, "lb") or {})["metadata"].get("annotations", {})
        assert f"{GROUP}/last-handled-configuration" in annotations
        assert "kopf" not in final

        failed = wait_for(lambda: (api.snapshot(PLURAL, "stray") or {}).get("status"), what="stray")
        assert (failed["state"], failed["reason"]) == ("Failed", "ServiceNotFound")
        assert api.snapshot("jobs", "stray-bench") is None
        wait_for(lambda: reasons("stray"), what="Event on stray")
        assert reasons("stray") == ["BenchmarkFailed"]
    except AssertionError as exc:
        proc.stop()
        raise AssertionError(f"{exc}\n--- kopf log ---\n{proc.log()}") from None
    finally:
        code = proc.stop()
    log = proc.log()
    assert "Traceback" not in log, log
    assert code == 0, log

    # Least privilege on the wire: every request was one the chart's Role allows.
    role = chart_role()
    needed = {p for p in (permission(s) for s in api.seen) if p is not None}
    assert needed <= role, sorted(needed - role)
    # ... and the operator's declared needs are what it used (a 409 never happened here).
    assert needed == RBAC_RULES - {Permission("batch", "jobs", "get")}, sorted(needed)
    assert len(api.objects["jobs"]) == 1
    # One handler run per benchmark: the stray one was not retried.
    assert log.count("Handler 'create_benchmark' succeeded") == 2, log
    assert "Handler 'create_benchmark' failed" not in log
