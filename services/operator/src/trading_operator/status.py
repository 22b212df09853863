"""What a LatencyBenchmark's status says, computed from its Job and the Job's pods.

The result travels in the benchmark pod's termination message: the benchmark writes one
``telemetry_contract.encode(BenchmarkResult)`` frame to /dev/termination-log (< 4 KiB, the
kubelet's limit), and it is read back here with ``telemetry_contract.decode``, so the
operator and the sidecar share one parser. Pure functions: the handlers fetch, these decide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from telemetry_contract import BenchmarkResult, InvalidMessage, decode

from trading_operator.resource import CONTAINER

RUNNING: Final = "Running"
SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"
TERMINAL: Final = frozenset({SUCCEEDED, FAILED})

#: Long enough for the last lines of a traceback, short enough for ``kubectl describe``.
MAX_MESSAGE: Final = 1024

Status = dict[str, Any]


class ResultError(ValueError):
    """The Job completed but left no readable result; ``reason`` goes into status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def is_terminal(status: Mapping[str, Any] | None) -> bool:
    return bool(status) and (status or {}).get("state") in TERMINAL


def _clip(text: str, limit: int = MAX_MESSAGE) -> str:
    """The end of ``text``: the last lines of a log say more than the first."""
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def running_status(job: str, run_id: str) -> Status:
    return {
        "state": RUNNING,
        "reason": "JobCreated",
        "message": f"benchmark Job {job} created",
        "job": job,
        "runId": run_id,
    }


def failed_status(reason: str, message: str, **extra: Any) -> Status:
    return {"state": FAILED, "reason": reason, "message": _clip(message), **extra}


def job_outcome(job: Mapping[str, Any]) -> tuple[str, str, str]:
    """``(state, reason, message)`` from the Job's terminal conditions.

    Only ``Complete`` and ``Failed`` count: newer Kubernetes versions first add
    ``SuccessCriteriaMet``/``FailureTarget`` while pods are still terminating, and the
    termination message is only certain once the Job is really done.
    """
    for condition in (job.get("status") or {}).get("conditions") or ():
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return SUCCEEDED, "Completed", condition.get("message") or "Job completed"
        if condition.get("type") == "Failed":
            reason = condition.get("reason") or "JobFailed"
            return FAILED, reason, condition.get("message") or "Job failed"
    return RUNNING, "", ""


def _finished_at(job: Mapping[str, Any]) -> str | None:
    for condition in (job.get("status") or {}).get("conditions") or ():
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            stamp = condition.get("lastTransitionTime")
            return str(stamp) if stamp else None
    return None


def _container_state(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        if status.get("name") == CONTAINER:
            state: Mapping[str, Any] = status.get("state") or {}
            return state
    return {}


def _newest_first(pods: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Succeeded pods first, then by creation time, newest first (RFC 3339 sorts as text)."""
    return sorted(
        pods,
        key=lambda pod: (
            (pod.get("status") or {}).get("phase") == "Succeeded",
            str(pod.get("metadata", {}).get("creationTimestamp") or ""),
        ),
        reverse=True,
    )


def termination_message(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """The benchmark container's termination message from the Job's best pod, if any."""
    for pod in _newest_first(pods):
        message = (_container_state(pod).get("terminated") or {}).get("message")
        if message:
            return str(message)
    return None


def pod_problem(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """What the kubelet says went wrong with the benchmark container, if anything.

    A container that never started is ``waiting`` with a reason (e.g. ErrImagePull); one
    that ended badly is ``terminated`` with a reason and exit code (e.g. OOMKilled, 137),
    which its own output cannot tell: a killed process writes no last words.
    """
    for pod in _newest_first(pods):
        state = _container_state(pod)
        waiting = state.get("waiting") or {}
        if waiting.get("reason"):
            detail = waiting.get("message") or ""
            return f"{waiting['reason']}: {detail}".rstrip(": ")
        terminated = state.get("terminated") or {}
        code = terminated.get("exitCode")
        reason = terminated.get("reason") or ""
        if code not in (None, 0) or reason not in ("", "Completed"):
            exit_code = f"exit code {code}" if code is not None else ""
            return ", ".join(part for part in (reason, exit_code) if part)
    return None


def read_result(pods: Sequence[Mapping[str, Any]]) -> BenchmarkResult:
    """Decode the result frame the benchmark left, or raise :class:`ResultError`."""
    message = termination_message(pods)
    if message is None:
        raise ResultError("NoResult", "the benchmark pod left no termination message")
    try:
        events = decode(message.encode("utf-8")).events
    except InvalidMessage as exc:
        raise ResultError("InvalidResult", f"termination message is not a result: {exc}") from None
    if len(events) != 1 or not isinstance(events[0], BenchmarkResult):
        raise ResultError("InvalidResult", "termination message is a trade, not a benchmark result")
    return events[0]


def result_status(result: BenchmarkResult) -> Status:
    """The status fields of a finished run; latencies in µs, rates in events/s."""
    return {
        "state": SUCCEEDED,
        "reason": "Completed",
        "message": summary(result),
        "runId": result.run_id,
        "variant": result.variant,
        "startedAt": _rfc3339(result.started_at),
        "finishedAt": _rfc3339(result.finished_at),
        "events": result.events,
        "sent": result.sent,
        "dropped": result.dropped,
        "received": result.received,
        "lost": result.lost,
        "elapsedSeconds": round(result.elapsed_s, 3),
        "achievedRate": round(result.rate, 1),
        "targetRate": round(result.target_rate, 1),
        "p50Us": round(result.p50_us, 3),
        "p90Us": round(result.p90_us, 3),
        "p99Us": round(result.p99_us, 3),
        "p999Us": round(result.p999_us, 3),
        "maxUs": round(result.max_us, 3),
    }


def summary(result: BenchmarkResult) -> str:
    """One line for the Kubernetes Event and ``status.message``."""
    lost = "n/a" if result.lost < 0 else str(result.lost)
    return (
        f"{result.mode}/{result.variant}: p50 {result.p50_us:.1f}µs p99 {result.p99_us:.1f}µs "
        f"p99.9 {result.p999_us:.1f}µs, {result.rate:,.0f} events/s, "
        f"dropped {result.dropped}, lost {lost}"
    )


def status_from(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> Status | None:
    """The status patch for a finished Job, or None while it is still running.

    A completed Job without a decodable result is a failure: the columns would otherwise
    show Succeeded with nothing in them.
    """
    state, reason, message = job_outcome(job)
    if state == RUNNING:
        return None
    timing: Status = {}
    started = (job.get("status") or {}).get("startTime")
    finished = _finished_at(job)
    if started:
        timing["startedAt"] = str(started)
    if finished:
        timing["finishedAt"] = str(finished)
    if state == FAILED:
        problem = pod_problem(pods)
        if problem:
            message = f"{message}; container: {_clip(problem, MAX_MESSAGE // 4)}"
        output = termination_message(pods)
        if output:
            head = f"{message}; benchmark output: "
            message = head + _clip(output, max(MAX_MESSAGE - len(head), 80))
        return failed_status(reason, message, **timing)
    try:
        return result_status(read_result(pods))
    except ResultError as exc:
        return failed_status(exc.reason, exc.message, **timing)
