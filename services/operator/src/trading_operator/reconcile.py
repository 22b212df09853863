"""What the handlers do, written against the :class:`~trading_operator.cluster.Cluster` port.

Three flows. :func:`start` turns a new LatencyBenchmark into a Job: it is safe to run again
at any point (kopf retries it), because the Job name is deterministic and an existing Job
owned by the same LatencyBenchmark counts as created. :func:`finish` turns a finished Job
into the LatencyBenchmark's final status and one Kubernetes Event; it does nothing for a
status that is already final, so replays of Job events are harmless. :func:`job_deleted`
ends a LatencyBenchmark whose Job was deleted before it finished.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

import kopf
import urllib3
from kubernetes.client import ApiException

from trading_operator.cluster import Cluster
from trading_operator.job import (
    owned_job,
    owner_of,
    pod_selector,
    render_job,
    run_id,
    target_problem,
)
from trading_operator.settings import OperatorSettings
from trading_operator.spec import SpecError, parse_spec
from trading_operator.status import (
    FAILED,
    RUNNING,
    SUCCEEDED,
    failed_status,
    is_terminal,
    job_outcome,
    running_status,
    status_from,
)

log = logging.getLogger(__name__)

#: Errors that say nothing about the benchmark, only about reaching the API right now.
TRANSIENT: Final = (ApiException, urllib3.exceptions.HTTPError, OSError)

#: kopf retries of :func:`start` before an unreachable API becomes state Failed.
MAX_START_RETRIES: Final = 8
#: The last retry of :func:`start`: a few more after MAX_START_RETRIES to record a failure;
#: if even that cannot be written, the handler stops with kopf.PermanentError (kopf logs
#: it) rather than retrying forever. The create handler's ``retries=`` backs this up.
MAX_RETRIES: Final = MAX_START_RETRIES + 4
#: In-handler attempts of :func:`finish`: kopf does not retry event handlers, and a Job
#: sends no further events once finished, so a lost attempt would leave status Running.
FINISH_ATTEMPTS: Final = 5


def retry_delay(retry: int) -> float | None:
    """Seconds before retry number ``retry + 1``, or None once it is time to give up."""
    if retry >= MAX_START_RETRIES:
        return None
    return float(min(5 * 2**retry, 300))


def _status_code(exc: BaseException) -> int | None:
    return exc.status if isinstance(exc, ApiException) else None


#: How the API server words an authorization denial: 'User "..." cannot create resource
#: "jobs" in API group "batch" in the namespace "..."'.
_RBAC_DENIAL: Final = re.compile(r'\bcannot [a-z]+ resource "')


def _api_message(exc: BaseException) -> str:
    """The API's own words: the ``message`` of the Status body, else the body, else ``exc``."""
    body = exc.body if isinstance(exc, ApiException) else None
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if not body:
        return str(exc)
    try:
        status = json.loads(body)
    except ValueError:
        return str(body)
    message = status.get("message") if isinstance(status, dict) else None
    return str(message) if message else str(body)


def _rbac_denied(exc: BaseException) -> bool:
    """A 403 from authorization ("... cannot create resource ..."), which a Role being
    installed right now may still fix, as opposed to one from admission: a ResourceQuota
    ("exceeded quota") or a LimitRange refusing this Job, which waiting does not change."""
    return _RBAC_DENIAL.search(_api_message(exc)) is not None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


def _meta(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or ""), str(meta.get("uid") or "")


def _fail(
    cluster: Cluster, benchmark: Mapping[str, Any], reason: str, message: str, retry: int
) -> None:
    namespace, name, _ = _meta(benchmark)
    try:
        cluster.patch_benchmark_status(namespace, name, failed_status(reason, message))
    except TRANSIENT as exc:
        text = f"cannot record failure {reason}: {_describe(exc)}"
        if retry >= MAX_RETRIES:
            raise kopf.PermanentError(f"{text}; giving up after {retry + 1} tries") from exc
        raise kopf.TemporaryError(text, delay=10) from exc
    cluster.post_event(benchmark, "Warning", "BenchmarkFailed", f"{reason}: {message}")


def _trouble(
    cluster: Cluster, benchmark: Mapping[str, Any], exc: BaseException, retry: int, doing: str
) -> None:
    """Retry later through kopf, or, after enough tries, end the benchmark as Failed."""
    delay = retry_delay(retry)
    if delay is None:
        text = f"{doing} failed {retry + 1} times: {_describe(exc)}"
        _fail(cluster, benchmark, "ApiError", text, retry)
        return
    raise kopf.TemporaryError(f"{doing}: {_describe(exc)}", delay=delay)


def start(
    cluster: Cluster, benchmark: Mapping[str, Any], settings: OperatorSettings, *, retry: int
) -> str:
    """Create the benchmark's Job; returns the state the LatencyBenchmark is left in.

    Raises ``kopf.TemporaryError`` to be called again later. Everything that cannot get
    better by waiting (a bad spec, a missing Service, a Job the API refuses) ends in
    state Failed with the reason, so a bad LatencyBenchmark never loops.
    """
    status = benchmark.get("status") or {}
    if is_terminal(status):
        return str(status["state"])
    namespace, name, uid = _meta(benchmark)
    try:
        spec = parse_spec(benchmark.get("spec") or {}, settings)
    except SpecError as exc:
        _fail(cluster, benchmark, exc.reason, exc.message, retry)
        return FAILED
    try:
        service = cluster.read_service(namespace, spec.service)
    except TRANSIENT as exc:
        if _status_code(exc) == 404:
            _fail(
                cluster, benchmark, "ServiceNotFound",
                f"Service {namespace}/{spec.service} does not exist; create it or set spec.service",
                retry,
            )  # fmt: skip
            return FAILED
        _trouble(cluster, benchmark, exc, retry, f"reading Service {spec.service}")
        return FAILED
    problem = target_problem(service, spec.port)
    if problem:
        _fail(cluster, benchmark, "ServicePortNotFound", problem, retry)
        return FAILED

    owner = kopf.Body(cast(kopf.RawBody, dict(benchmark)))
    job = owned_job(render_job(spec, name, namespace, settings), owner)
    job_name = str(job["metadata"]["name"])
    try:
        if status.get("job") != job_name:
            cluster.patch_benchmark_status(namespace, name, running_status(job_name, run_id(name)))
        cluster.create_job(namespace, job)
    except TRANSIENT as exc:
        code = _status_code(exc)
        if code in (400, 422) or (code == 403 and not _rbac_denied(exc)):
            text = f"the API refused the Job: {_api_message(exc)}"
            _fail(cluster, benchmark, "JobRejected", text, retry)
            return FAILED
        if code != 409:
            _trouble(cluster, benchmark, exc, retry, f"creating Job {job_name}")
            return FAILED
        # 409 Already Exists: a previous attempt created it, unless it belongs to a
        # deleted namesake that the garbage collector has not removed yet.
        try:
            existing = cluster.read_job(namespace, job_name)
        except TRANSIENT as again:
            _trouble(cluster, benchmark, again, retry, f"reading Job {job_name}")
            return FAILED
        holder = owner_of(existing)
        if holder == (name, uid):
            return RUNNING
        if holder is None:
            _fail(
                cluster, benchmark, "JobNameTaken",
                f"Job {job_name} exists and is not this LatencyBenchmark's; delete it or "
                "rename the LatencyBenchmark", retry,
            )  # fmt: skip
            return FAILED
        # A deleted namesake's Job: the garbage collector removes it shortly.
        delay = retry_delay(retry)
        if delay is None:
            text = f"Job {job_name} of a deleted namesake stays"
            _fail(cluster, benchmark, "JobNameTaken", text, retry)
            return FAILED
        raise kopf.TemporaryError(
            f"Job {job_name} belongs to a deleted namesake; waiting for it to go", delay=delay
        ) from None
    cluster.post_event(
        benchmark, "Normal", "JobCreated", f"benchmark Job {job_name} created ({spec.mode})"
    )
    return RUNNING


def _attempts(call: Callable[[], str | None], sleep: Callable[[float], None]) -> str | None:
    """``call`` with up to FINISH_ATTEMPTS tries on transient errors; None on a 404.

    A 404 means the LatencyBenchmark went away meanwhile, so there is nothing to report to.
    """
    for attempt in range(FINISH_ATTEMPTS):
        try:
            return call()
        except TRANSIENT as exc:
            if _status_code(exc) == 404:
                return None
            if attempt == FINISH_ATTEMPTS - 1:
                raise
            log.warning("reporting on a benchmark Job failed (%s); retrying", _describe(exc))
            sleep(float(2**attempt))
    return None  # unreachable: the loop returns or raises


def finish(
    cluster: Cluster, job: Mapping[str, Any], *, sleep: Callable[[float], None] = time.sleep
) -> str | None:
    """Report a finished Job in its LatencyBenchmark; returns the state written, if any.

    Transient API errors are retried here with a short backoff, because nothing else
    would call this again for a Job that has finished.
    """
    owner = owner_of(job)
    if owner is None or job_outcome(job)[0] == RUNNING:
        return None
    return _attempts(lambda: _report(cluster, job, owner), sleep)


def job_deleted(
    cluster: Cluster, job: Mapping[str, Any], *, sleep: Callable[[float], None] = time.sleep
) -> str | None:
    """A benchmark Job is gone; returns the state written into its LatencyBenchmark, if any.

    A finished Job is reported as usual (in case its last change was missed). An unfinished
    one was deleted by hand: no result will ever come, so unless its LatencyBenchmark is
    itself going away (the garbage collector deletes the Job then), the benchmark ends as
    Failed/JobDeleted instead of showing Running forever.
    """
    owner = owner_of(job)
    if owner is None:
        return None
    if job_outcome(job)[0] != RUNNING:
        return finish(cluster, job, sleep=sleep)
    return _attempts(lambda: _report_deleted(cluster, job, owner), sleep)


def _report_deleted(cluster: Cluster, job: Mapping[str, Any], owner: tuple[str, str]) -> str | None:
    namespace, job_name, _ = _meta(job)
    name, uid = owner
    benchmark = cluster.read_benchmark(namespace, name)
    deleting = (benchmark.get("metadata") or {}).get("deletionTimestamp")
    if _meta(benchmark)[2] != uid or deleting or is_terminal(benchmark.get("status")):
        return None
    message = f"benchmark Job {job_name} was deleted before it finished"
    cluster.patch_benchmark_status(
        namespace, name, failed_status("JobDeleted", message, job=job_name)
    )
    cluster.post_event(benchmark, "Warning", "BenchmarkFailed", f"JobDeleted: {message}")
    return FAILED


def _report(cluster: Cluster, job: Mapping[str, Any], owner: tuple[str, str]) -> str | None:
    namespace, job_name, _ = _meta(job)
    name, uid = owner
    benchmark = cluster.read_benchmark(namespace, name)
    if _meta(benchmark)[2] != uid or is_terminal(benchmark.get("status")):
        return None  # a newer namesake owns that name now, or this was reported already
    status = status_from(job, cluster.list_pods(namespace, pod_selector(job)))
    if status is None:
        return None
    status["job"] = job_name
    cluster.patch_benchmark_status(namespace, name, status)
    if status["state"] == SUCCEEDED:
        cluster.post_event(benchmark, "Normal", "BenchmarkSucceeded", str(status["message"]))
    else:
        text = f"{status['reason']}: {status['message']}"
        cluster.post_event(benchmark, "Warning", "BenchmarkFailed", text)
    return str(status["state"])
