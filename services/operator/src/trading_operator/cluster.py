"""The operator's only door to the Kubernetes API, as a small port with one real adapter.

The reconciler talks to :class:`Cluster`; :class:`KubeCluster` implements it with the
official client. Objects cross the port as plain dicts in the API's own camelCase shape,
the same shape kopf hands to handlers, so the pure functions see one format. Errors cross
it as ``kubernetes.client.ApiException`` (``.status`` is the HTTP code). Each method costs
exactly the permission listed for it in ``CLUSTER_CALLS`` in tests/operator_rbac.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Protocol, cast

import kopf
import kubernetes

from trading_operator.resource import GROUP, PLURAL, VERSION

Obj = dict[str, Any]

#: (connect, read) seconds for every call: the official client waits forever by default,
#: and a handler stuck on a dead connection would hold its LatencyBenchmark indefinitely.
#: A timeout surfaces as urllib3's HTTPError, which the reconciler retries as transient.
REQUEST_TIMEOUT: Final[tuple[float, float]] = (5.0, 30.0)


class Cluster(Protocol):
    def read_service(self, namespace: str, name: str) -> Obj: ...

    def create_job(self, namespace: str, job: Obj) -> Obj: ...

    def read_job(self, namespace: str, name: str) -> Obj: ...

    def list_pods(self, namespace: str, selector: str) -> list[Obj]: ...

    def read_benchmark(self, namespace: str, name: str) -> Obj: ...

    def patch_benchmark_status(self, namespace: str, name: str, status: Obj) -> None: ...

    def post_event(self, benchmark: Mapping[str, Any], kind: str, reason: str, text: str) -> None:
        """``kind`` is the Event type: Normal or Warning."""
        ...


def load_client_config() -> None:
    """In-cluster service account first, the local kubeconfig second (``make operator-dev``)."""
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]


class KubeCluster:
    """The real adapter: the official client for reads and writes, kopf for Events.

    Events go through ``kopf.event`` rather than the client because kopf queues them off
    the handler's path, retries them, and fills in the reporting component.
    """

    def __init__(
        self,
        api: kubernetes.client.ApiClient | None = None,
        request_timeout: tuple[float, float] = REQUEST_TIMEOUT,
    ) -> None:
        self._timeout = request_timeout
        self._api = api or kubernetes.client.ApiClient()
        self._core = kubernetes.client.CoreV1Api(self._api)
        self._batch = kubernetes.client.BatchV1Api(self._api)
        self._custom = kubernetes.client.CustomObjectsApi(self._api)

    def _plain(self, model: object) -> Any:
        return self._api.sanitize_for_serialization(model)  # type: ignore[no-untyped-call]

    def read_service(self, namespace: str, name: str) -> Obj:
        service = self._core.read_namespaced_service(
            name, namespace, _request_timeout=self._timeout
        )
        return cast(Obj, self._plain(service))

    def create_job(self, namespace: str, job: Obj) -> Obj:
        model = kubernetes.client.V1Job.from_dict(job)
        if model is None:  # from_dict only returns None for a None input
            raise ValueError("empty Job manifest")
        created = self._batch.create_namespaced_job(
            namespace, model, _request_timeout=self._timeout
        )
        return cast(Obj, self._plain(created))

    def read_job(self, namespace: str, name: str) -> Obj:
        job = self._batch.read_namespaced_job(name, namespace, _request_timeout=self._timeout)
        return cast(Obj, self._plain(job))

    def list_pods(self, namespace: str, selector: str) -> list[Obj]:
        pods = self._core.list_namespaced_pod(
            namespace, label_selector=selector, _request_timeout=self._timeout
        )
        return cast(list[Obj], self._plain(pods.items))

    def read_benchmark(self, namespace: str, name: str) -> Obj:
        found = self._custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _request_timeout=self._timeout
        )
        return cast(Obj, found)

    def patch_benchmark_status(self, namespace: str, name: str, status: Obj) -> None:
        # A dict body is sent as a JSON merge patch: only the given status fields change.
        self._custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": status},
            _request_timeout=self._timeout,
        )  # fmt: skip

    def post_event(self, benchmark: Mapping[str, Any], kind: str, reason: str, text: str) -> None:
        body = kopf.Body(cast(kopf.RawBody, dict(benchmark)))
        kopf.event(body, type=kind, reason=reason, message=text)
