"""Job + pods → LatencyBenchmark status, including a real benchmark's termination message.

A real benchmark's termination message, end to end, is in
tests/e2e/test_operator_benchmark_message.py.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from operator_support import COMPLETE, condition, job, pod
from telemetry_contract import BenchmarkResult, encode, encode_trade
from trading_operator.status import (
    FAILED,
    MAX_MESSAGE,
    RUNNING,
    SUCCEEDED,
    ResultError,
    is_terminal,
    job_outcome,
    pod_problem,
    read_result,
    result_status,
    running_status,
    status_from,
    summary,
    termination_message,
)

Obj = dict[str, Any]

RESULT = BenchmarkResult(
    run_id="nightly",
    mode="sustained",
    variant="client-10000",
    events=150_000,
    sent=150_000,
    dropped=3,
    received=149_990,
    lost=7,
    elapsed_s=15.0012345,
    rate=9_999.87654,
    target_rate=10_000.0,
    p50_us=1.23456,
    p90_us=2.5,
    p99_us=8.75,
    p999_us=31.0,
    max_us=120.5,
    started_at=1_764_000_000.25,
    finished_at=1_764_000_015.75,
)


# --- job outcome ----------------------------------------------------------------------


def test_a_job_without_terminal_conditions_is_running() -> None:
    assert job_outcome(job())[0] == RUNNING
    assert job_outcome({"metadata": {}})[0] == RUNNING
    # Interim conditions of newer Kubernetes versions are not the end yet.
    assert job_outcome(job(condition("SuccessCriteriaMet")))[0] == RUNNING
    assert job_outcome(job(condition("FailureTarget", reason="DeadlineExceeded")))[0] == RUNNING
    assert job_outcome(job(condition("Complete", status="False")))[0] == RUNNING
    assert status_from(job(condition("SuccessCriteriaMet")), [pod(encode(RESULT).decode())]) is None


def test_terminal_conditions_decide_the_outcome() -> None:
    assert job_outcome(job(COMPLETE)) == (SUCCEEDED, "Completed", "Job completed")
    failed = condition("Failed", reason="DeadlineExceeded", message="Job was active too long")
    assert job_outcome(job(failed)) == (FAILED, "DeadlineExceeded", "Job was active too long")
    assert job_outcome(job(condition("Failed"))) == (FAILED, "JobFailed", "Job failed")


# --- reading the result ---------------------------------------------------------------


def test_result_is_decoded_with_the_contract() -> None:
    assert read_result([pod(encode(RESULT).decode())]) == RESULT


def test_succeeded_pod_wins_over_a_newer_failed_one() -> None:
    pods = [
        pod("Traceback: boom", phase="Failed", created="2025-11-24T16:00:09Z"),
        pod(encode(RESULT).decode(), created="2025-11-24T16:00:01Z"),
    ]
    assert read_result(pods) == RESULT


def test_newest_pod_speaks_when_none_succeeded() -> None:
    pods = [
        pod("old failure", phase="Failed", created="2025-11-24T16:00:01Z"),
        pod("new failure", phase="Failed", created="2025-11-24T16:00:09Z"),
    ]
    assert termination_message(pods) == "new failure"


def test_only_the_benchmark_containers_message_counts() -> None:
    assert termination_message([pod("sidecar noise", container="istio-proxy")]) is None


@pytest.mark.parametrize(
    ("pods", "reason", "fragment"),
    [
        ([], "NoResult", "no termination message"),
        ([pod(None)], "NoResult", "no termination message"),
        ([pod("")], "NoResult", "no termination message"),
        ([pod("not json")], "InvalidResult", "malformed_json"),
        ([pod('{"type":"benchmark","run_id":"x"}')], "InvalidResult", "missing_field"),
        (
            [pod(encode_trade("buy", 1.0, 1_700_000_000.0).decode())],
            "InvalidResult",
            "a trade, not a benchmark result",
        ),
    ],
)
def test_missing_or_bad_results_say_why(pods: list[Obj], reason: str, fragment: str) -> None:
    with pytest.raises(ResultError) as caught:
        read_result(pods)
    assert caught.value.reason == reason
    assert fragment in caught.value.message


# --- status patches -------------------------------------------------------------------


def test_success_status_carries_every_figure_of_the_result() -> None:
    status = status_from(job(COMPLETE), [pod(encode(RESULT).decode())])
    assert status == {
        "state": SUCCEEDED,
        "reason": "Completed",
        "message": summary(RESULT),
        "runId": "nightly",
        "variant": "client-10000",
        "startedAt": "2025-11-24T16:00:00Z",
        "finishedAt": "2025-11-24T16:00:15Z",
        "events": 150_000,
        "sent": 150_000,
        "dropped": 3,
        "received": 149_990,
        "lost": 7,
        "elapsedSeconds": 15.001,
        "achievedRate": 9999.9,
        "targetRate": 10000.0,
        "p50Us": 1.235,
        "p90Us": 2.5,
        "p99Us": 8.75,
        "p999Us": 31.0,
        "maxUs": 120.5,
    }


def test_summary_reads_like_the_columns() -> None:
    assert summary(RESULT) == (
        "sustained/client-10000: p50 1.2µs p99 8.8µs p99.9 31.0µs, 10,000 events/s, "
        "dropped 3, lost 7"
    )
    unknown = msgspec.structs.replace(RESULT, lost=-1)
    assert summary(unknown).endswith("lost n/a")


def test_completed_job_without_a_result_is_a_failure_not_an_empty_success() -> None:
    status = status_from(job(COMPLETE), [pod(None)])
    assert status is not None
    assert (status["state"], status["reason"]) == (FAILED, "NoResult")
    assert status["startedAt"] == "2025-11-24T16:00:00Z"
    assert status["finishedAt"] == "2025-11-24T16:00:20Z"


def test_failed_job_reports_the_condition_and_the_last_output() -> None:
    failed = condition("Failed", reason="BackoffLimitExceeded", message="Job has reached the limit")
    status = status_from(job(failed), [pod("ConnectionRefused: sidecar", phase="Failed")])
    assert status is not None
    assert status["state"] == FAILED
    assert status["reason"] == "BackoffLimitExceeded"
    assert status["message"] == (
        "Job has reached the limit; container: exit code 1; "
        "benchmark output: ConnectionRefused: sidecar"
    )


def test_timed_out_job_whose_image_never_pulled_says_so() -> None:
    failed = condition("Failed", reason="DeadlineExceeded", message="Job was active too long")
    waiting = {"reason": "ErrImagePull", "message": "pull access denied"}
    status = status_from(job(failed, start=None), [pod(waiting=waiting, phase="Pending")])
    assert status is not None
    assert status["reason"] == "DeadlineExceeded"
    assert status["message"] == (
        "Job was active too long; container: ErrImagePull: pull access denied"
    )
    assert "startedAt" not in status
    assert pod_problem([pod(waiting={"reason": "ContainerCreating"}, phase="Pending")]) == (
        "ContainerCreating"
    )
    assert pod_problem([pod("done")]) is None


def test_a_killed_benchmark_says_how_it_was_killed() -> None:
    """OOMKilled leaves no output of its own; the kubelet's reason and exit code are the story."""
    failed = condition("Failed", reason="BackoffLimitExceeded", message="Job has reached the limit")
    killed = pod(phase="Failed", exit_code=137, reason="OOMKilled")
    status = status_from(job(failed), [killed])
    assert status is not None
    assert (status["state"], status["reason"]) == (FAILED, "BackoffLimitExceeded")
    assert status["message"] == "Job has reached the limit; container: OOMKilled, exit code 137"
    # With last log lines too, both are kept: the kubelet's verdict first.
    crashed = pod("Traceback ...\nMemoryError", phase="Failed", exit_code=1, reason="Error")
    status = status_from(job(failed), [crashed])
    assert status is not None
    assert status["message"] == (
        "Job has reached the limit; container: Error, exit code 1; "
        "benchmark output: Traceback ...\nMemoryError"
    )
    assert pod_problem([pod("done", reason="Completed")]) is None


def test_failure_messages_keep_the_end_of_a_long_log() -> None:
    failed = condition("Failed", reason="BackoffLimitExceeded", message="failed")
    log = "\n".join(f"line {i}" for i in range(500)) + "\nRuntimeError: the real cause"
    status = status_from(job(failed), [pod(log, phase="Failed")])
    assert status is not None
    assert len(status["message"]) <= MAX_MESSAGE
    assert status["message"].startswith("failed; container: exit code 1; benchmark output: …")
    assert status["message"].endswith("RuntimeError: the real cause")


def test_running_status_names_the_job() -> None:
    assert running_status("nightly-bench", "nightly") == {
        "state": RUNNING,
        "reason": "JobCreated",
        "message": "benchmark Job nightly-bench created",
        "job": "nightly-bench",
        "runId": "nightly",
    }
    assert not is_terminal(running_status("j", "r"))
    assert not is_terminal(None) and not is_terminal({})
    assert is_terminal({"state": SUCCEEDED}) and is_terminal({"state": FAILED})


def test_result_status_rounds_only_for_display() -> None:
    status = result_status(RESULT)
    assert status["p50Us"] == pytest.approx(RESULT.p50_us, abs=1e-3)
    assert status["achievedRate"] == pytest.approx(RESULT.rate, abs=0.1)
