"""reconcile.start / reconcile.finish against an in-memory cluster: every branch, retries too.

The Kubernetes API is the one thing faked (there is no API server here). The fake keeps
objects as the API would (409 on a second create, 404 for what is missing, merge-patched
status) and can be told to fail a call; every call it sees must be one the chart's Role
grants (``tests/operator_rbac.py``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import kopf
import pytest
import urllib3
from kubernetes.client import ApiException
from operator_rbac import CLUSTER_CALLS, RBAC_RULES
from operator_support import (
    RESULT,
    SETTINGS,
    FakeCluster,
    Obj,
    api_error,
    benchmark,
    zmq_service,
)
from telemetry_contract import encode
from trading_operator import handlers, reconcile
from trading_operator.job import job_name, owner_of
from trading_operator.status import FAILED, RUNNING, SUCCEEDED


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    fake = FakeCluster(services={"demo-zmq": zmq_service()})
    yield fake
    # Least privilege: every call the reconciler made is one the Role grants.
    used = {CLUSTER_CALLS[method] for method in fake.calls}
    assert used <= RBAC_RULES


def store(cluster: FakeCluster, cr: Obj) -> Obj:
    cluster.benchmarks[cr["metadata"]["name"]] = copy.deepcopy(cr)
    return cr


def current(cluster: FakeCluster, name: str = "lb") -> Obj:
    return copy.deepcopy(cluster.benchmarks[name])


def no_sleep(_: float) -> None:
    return None


# --- start ------------------------------------------------------------------------------


def test_start_creates_one_owned_job_and_records_running(cluster: FakeCluster) -> None:
    cr = store(cluster, benchmark())
    assert reconcile.start(cluster, cr, SETTINGS, retry=0) == RUNNING
    (job,) = cluster.jobs.values()
    assert job["metadata"]["name"] == "lb-bench"
    assert owner_of(job) == ("lb", "uid-lb")
    assert "tcp://demo-zmq:5555" in job["spec"]["template"]["spec"]["containers"][0]["args"]
    status = current(cluster)["status"]
    assert (status["state"], status["job"], status["runId"]) == (RUNNING, "lb-bench", "lb")
    assert cluster.events == [
        ("lb", "Normal", "JobCreated", "benchmark Job lb-bench created (burst)")
    ]
    # Running is recorded before the Job exists, so a fast Job cannot be overwritten by it.
    assert cluster.calls.index("patch_benchmark_status") < cluster.calls.index("create_job")


def test_a_retried_start_never_creates_a_second_job(cluster: FakeCluster) -> None:
    store(cluster, benchmark())
    reconcile.start(cluster, current(cluster), SETTINGS, retry=0)
    cluster.calls.clear()
    # kopf calls again (e.g. its progress annotation was lost) with the stored object.
    assert reconcile.start(cluster, current(cluster), SETTINGS, retry=1) == RUNNING
    assert len(cluster.jobs) == 1
    assert cluster.calls == ["read_service", "create_job", "read_job"]  # 409, then owner check
    assert len(cluster.events) == 1


def test_job_of_a_deleted_namesake_is_waited_for_not_adopted(cluster: FakeCluster) -> None:
    store(cluster, benchmark(uid="old"))
    reconcile.start(cluster, current(cluster), SETTINGS, retry=0)
    cluster.benchmarks.clear()
    cr = store(cluster, benchmark(uid="new"))
    with pytest.raises(kopf.TemporaryError, match="belongs to a deleted namesake"):
        reconcile.start(cluster, cr, SETTINGS, retry=0)
    assert owner_of(cluster.jobs["lb-bench"]) == ("lb", "old")
    assert "status" not in current(cluster) or current(cluster)["status"]["state"] == RUNNING
    # If the garbage collector never removes it, the wait ends as Failed.
    retry = reconcile.MAX_START_RETRIES
    assert reconcile.start(cluster, current(cluster), SETTINGS, retry=retry) == FAILED
    assert current(cluster)["status"]["reason"] == "JobNameTaken"


def test_a_job_someone_else_made_under_that_name_ends_failed(cluster: FakeCluster) -> None:
    cluster.jobs["lb-bench"] = {"metadata": {"name": "lb-bench", "labels": {}}}
    cr = store(cluster, benchmark())
    assert reconcile.start(cluster, cr, SETTINGS, retry=0) == FAILED
    status = current(cluster)["status"]
    assert status["reason"] == "JobNameTaken"
    assert "is not this LatencyBenchmark's" in status["message"]
    assert cluster.jobs["lb-bench"] == {"metadata": {"name": "lb-bench", "labels": {}}}


def test_unknown_service_ends_failed_without_a_job(cluster: FakeCluster) -> None:
    cr = store(cluster, benchmark(service="nope"))
    assert reconcile.start(cluster, cr, SETTINGS, retry=0) == FAILED
    status = current(cluster)["status"]
    assert status["state"] == FAILED
    assert status["reason"] == "ServiceNotFound"
    assert "Service trading/nope does not exist" in status["message"]
    assert cluster.jobs == {}
    assert cluster.events == [
        ("lb", "Warning", "BenchmarkFailed", f"ServiceNotFound: {status['message']}")
    ]
    # Terminal: kopf calling again (resume after a restart) does nothing at all.
    cluster.calls.clear()
    assert reconcile.start(cluster, current(cluster), SETTINGS, retry=0) == FAILED
    assert cluster.calls == []


def test_service_without_the_zmq_port_ends_failed(cluster: FakeCluster) -> None:
    cluster.services["metrics"] = zmq_service("metrics", 8001)
    cr = store(cluster, benchmark(service="metrics"))
    assert reconcile.start(cluster, cr, SETTINGS, retry=0) == FAILED
    status = current(cluster)["status"]
    assert status["reason"] == "ServicePortNotFound"
    assert status["message"] == "Service metrics does not expose port 5555 (ports: 8001)"
    assert cluster.jobs == {}


def test_spec_that_cannot_run_ends_failed(cluster: FakeCluster) -> None:
    cr = store(cluster, benchmark(mode="sustained", duration=900, timeoutSeconds=600))
    assert reconcile.start(cluster, cr, SETTINGS, retry=0) == FAILED
    status = current(cluster)["status"]
    assert status["reason"] == "InvalidSpec"
    assert "timeoutSeconds (600)" in status["message"]
    assert "read_service" not in cluster.calls


@pytest.mark.parametrize(
    "error",
    [
        api_error(500, "Internal Server Error"),
        api_error(403, "Forbidden"),
        urllib3.exceptions.ProtocolError("Connection aborted"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
    ids=["500", "403", "aborted", "refused"],
)
def test_api_trouble_is_retried_with_backoff(cluster: FakeCluster, error: Exception) -> None:
    cr = store(cluster, benchmark())
    cluster.failures["read_service"] = [error]
    with pytest.raises(kopf.TemporaryError) as caught:
        reconcile.start(cluster, cr, SETTINGS, retry=2)
    assert caught.value.delay == reconcile.retry_delay(2) == 20.0
    assert "status" not in current(cluster)
    # The next attempt goes through.
    assert reconcile.start(cluster, cr, SETTINGS, retry=3) == RUNNING
    assert len(cluster.jobs) == 1


def test_retry_delays_grow_then_give_up() -> None:
    delays = [reconcile.retry_delay(n) for n in range(reconcile.MAX_START_RETRIES + 1)]
    assert delays[:3] == [5.0, 10.0, 20.0]
    assert all(0 < d <= 300 for d in delays[:-1] if d is not None)
    assert delays[-1] is None


def test_api_trouble_that_persists_ends_failed(cluster: FakeCluster) -> None:
    cr = store(cluster, benchmark())
    cluster.failures["create_job"] = [api_error(503, "Service Unavailable")]
    assert reconcile.start(cluster, cr, SETTINGS, retry=reconcile.MAX_START_RETRIES) == FAILED
    status = current(cluster)["status"]
    assert status["reason"] == "ApiError"
    assert "creating Job lb-bench failed 9 times: HTTP 503 Service Unavailable" in status["message"]


def test_service_unreadable_for_every_retry_ends_failed(cluster: FakeCluster) -> None:
    cr = store(cluster, benchmark())
    cluster.failures["read_service"] = [api_error(500, "Internal Server Error")]
    assert reconcile.start(cluster, cr, SETTINGS, retry=reconcile.MAX_START_RETRIES) == FAILED
    status = current(cluster)["status"]
    assert status["reason"] == "ApiError"
    assert status["message"] == (
        "reading Service demo-zmq failed 9 times: HTTP 500 Internal Server Error"
    )
    assert cluster.jobs == {}
    assert cluster.events[-1][1:3] == ("Warning", "BenchmarkFailed")


def test_existing_job_unreadable_for_every_retry_ends_failed(cluster: FakeCluster) -> None:
    store(cluster, benchmark())
    reconcile.start(cluster, current(cluster), SETTINGS, retry=0)
    cluster.benchmarks["lb"].pop("status")  # as if the Running patch was lost
    cluster.failures["read_job"] = [urllib3.exceptions.ProtocolError("Connection aborted")]
    retry = reconcile.MAX_START_RETRIES
    assert reconcile.start(cluster, current(cluster), SETTINGS, retry=retry) == FAILED
    status = current(cluster)["status"]
    assert status["reason"] == "ApiError"
    assert status["message"].startswith("reading Job lb-bench failed 9 times: ProtocolError")
    assert len(cluster.jobs) == 1


def kopf_retries(cluster: FakeCluster, cr: Obj) -> tuple[list[type[Exception]], int]:
    """Call start the way kopf does, up to the create handler's ``retries`` calls."""
    (handler,) = [
        h for h in kopf.get_default_registry()._changing.get_all_handlers()
        if h.fn is handlers.create_benchmark
    ]  # fmt: skip
    calls = handler.retries
    assert calls is not None, "the create handler must bound its retries"
    outcomes: list[type[Exception]] = []
    for retry in range(calls):
        try:
            reconcile.start(cluster, current(cluster), SETTINGS, retry=retry)
            break
        except kopf.TemporaryError as exc:
            outcomes.append(type(exc))
        except kopf.PermanentError as exc:
            outcomes.append(type(exc))
            break
    return outcomes, calls


def test_retries_end_even_when_the_failure_cannot_be_recorded(cluster: FakeCluster) -> None:
    cr = store(cluster, benchmark())
    # The API answers nothing usefully, for ever.
    cluster.failures["read_service"] = [api_error(503)] * 100
    cluster.failures["patch_benchmark_status"] = [api_error(503)] * 100
    outcomes, calls = kopf_retries(cluster, cr)
    # Retried up to MAX_START_RETRIES, then a few tries to record Failed, then it stops
    # on its own, before kopf's limit would stop it.
    assert outcomes[:-1] == [kopf.TemporaryError] * reconcile.MAX_RETRIES
    assert outcomes[-1] is kopf.PermanentError
    assert len(outcomes) == reconcile.MAX_RETRIES + 1 == calls
    assert "status" not in current(cluster)
    assert cluster.jobs == {}


def test_a_failure_recorded_late_still_ends_the_benchmark_failed(cluster: FakeCluster) -> None:
    cr = store(cluster, benchmark(service="nope"))
    cluster.failures["patch_benchmark_status"] = [api_error(503)] * reconcile.MAX_RETRIES
    outcomes, _ = kopf_retries(cluster, cr)
    assert outcomes == [kopf.TemporaryError] * reconcile.MAX_RETRIES
    assert current(cluster)["status"]["reason"] == "ServiceNotFound"


def test_job_the_api_refuses_ends_failed_with_the_apis_words(cluster: FakeCluster) -> None:
    cr = store(cluster, benchmark())
    refusal = 'Job.batch "lb-bench" is invalid: spec.template.spec.containers[0].image: Required'
    cluster.failures["create_job"] = [api_error(422, "Unprocessable Entity", refusal)]
    assert reconcile.start(cluster, cr, SETTINGS, retry=0) == FAILED
    status = current(cluster)["status"]
    assert status["reason"] == "JobRejected"
    assert refusal in status["message"]


def test_failure_to_read_the_existing_job_is_retried(cluster: FakeCluster) -> None:
    store(cluster, benchmark())
    reconcile.start(cluster, current(cluster), SETTINGS, retry=0)
    cluster.failures["read_job"] = [api_error(500)]
    with pytest.raises(kopf.TemporaryError, match="reading Job lb-bench"):
        reconcile.start(cluster, current(cluster), SETTINGS, retry=0)


def test_failure_that_cannot_be_recorded_is_retried(cluster: FakeCluster) -> None:
    cr = store(cluster, benchmark(service="nope"))
    cluster.failures["patch_benchmark_status"] = [api_error(500)]
    with pytest.raises(kopf.TemporaryError, match="cannot record failure ServiceNotFound"):
        reconcile.start(cluster, cr, SETTINGS, retry=0)
    assert cluster.events == []  # no Event for a failure the status does not show yet
    assert reconcile.start(cluster, cr, SETTINGS, retry=1) == FAILED


def test_kopf_style_retry_loop_ends_with_exactly_one_job(cluster: FakeCluster) -> None:
    """Failures at every step, retried the way kopf would, still make one Job."""
    store(cluster, benchmark())
    cluster.failures = {
        "read_service": [api_error(500)],
        "patch_benchmark_status": [api_error(500)],
        "create_job": [api_error(504)],
    }
    retry = 0
    while True:
        try:
            state = reconcile.start(cluster, current(cluster), SETTINGS, retry=retry)
            break
        except kopf.TemporaryError:
            retry += 1
    assert (state, retry) == (RUNNING, 3)
    assert list(cluster.jobs) == ["lb-bench"]


# --- finish -----------------------------------------------------------------------------


def started(cluster: FakeCluster, **spec: Any) -> str:
    store(cluster, benchmark(**spec))
    reconcile.start(cluster, current(cluster), SETTINGS, retry=0)
    cluster.events.clear()
    return job_name("lb")


def test_finished_job_reports_its_result_once(cluster: FakeCluster) -> None:
    name = started(cluster)
    job = cluster.finish_job(name, encode(RESULT).decode())
    assert reconcile.finish(cluster, job, sleep=no_sleep) == SUCCEEDED
    status = current(cluster)["status"]
    assert status["state"] == SUCCEEDED
    assert status["job"] == name
    assert (status["p50Us"], status["p99Us"], status["p999Us"]) == (1.5, 4.0, 9.0)
    assert (status["achievedRate"], status["dropped"], status["lost"]) == (100_000.0, 0, 0)
    ((_, kind, reason, text),) = cluster.events
    assert (kind, reason) == ("Normal", "BenchmarkSucceeded")
    assert "p99 4.0µs" in text
    # The same event replayed (relist, restart) changes nothing and posts nothing.
    assert reconcile.finish(cluster, job, sleep=no_sleep) is None
    assert len(cluster.events) == 1


def test_failed_job_reports_failed_with_the_reason(cluster: FakeCluster) -> None:
    name = started(cluster)
    job = cluster.finish_job(name, "Traceback ...\nConnectionError: sidecar", succeeded=False)
    assert reconcile.finish(cluster, job, sleep=no_sleep) == FAILED
    status = current(cluster)["status"]
    assert (status["state"], status["reason"]) == (FAILED, "DeadlineExceeded")
    assert status["message"].endswith("ConnectionError: sidecar")
    assert cluster.events[0][1:3] == ("Warning", "BenchmarkFailed")


def test_running_or_foreign_jobs_are_left_alone(cluster: FakeCluster) -> None:
    name = started(cluster)
    cluster.calls.clear()
    assert reconcile.finish(cluster, cluster.jobs[name], sleep=no_sleep) is None
    foreign = cluster.finish_job(name, encode(RESULT).decode())
    foreign["metadata"]["ownerReferences"] = []
    assert reconcile.finish(cluster, foreign, sleep=no_sleep) is None
    assert cluster.calls == []


def test_job_of_a_deleted_or_replaced_benchmark_is_ignored(cluster: FakeCluster) -> None:
    name = started(cluster)
    job = cluster.finish_job(name, encode(RESULT).decode())
    cluster.benchmarks["lb"]["metadata"]["uid"] = "a-newer-namesake"
    assert reconcile.finish(cluster, job, sleep=no_sleep) is None
    assert current(cluster)["status"]["state"] == RUNNING
    del cluster.benchmarks["lb"]
    assert reconcile.finish(cluster, job, sleep=no_sleep) is None
    assert cluster.events == []


def test_transient_errors_while_reporting_are_retried_in_place(cluster: FakeCluster) -> None:
    name = started(cluster)
    job = cluster.finish_job(name, encode(RESULT).decode())
    cluster.failures["list_pods"] = [api_error(500), urllib3.exceptions.ProtocolError("reset")]
    slept: list[float] = []
    assert reconcile.finish(cluster, job, sleep=slept.append) == SUCCEEDED
    assert slept == [1.0, 2.0]


def test_reporting_gives_up_loudly_after_its_attempts(cluster: FakeCluster) -> None:
    name = started(cluster)
    job = cluster.finish_job(name, encode(RESULT).decode())
    cluster.failures["read_benchmark"] = [api_error(500)] * reconcile.FINISH_ATTEMPTS
    slept: list[float] = []
    with pytest.raises(ApiException):
        reconcile.finish(cluster, job, sleep=slept.append)
    assert len(slept) == reconcile.FINISH_ATTEMPTS - 1
    assert current(cluster)["status"]["state"] == RUNNING


def test_benchmark_deleted_while_reporting(cluster: FakeCluster) -> None:
    name = started(cluster)
    job = cluster.finish_job(name, encode(RESULT).decode())
    cluster.failures["patch_benchmark_status"] = [api_error(404, "Not Found")]
    assert reconcile.finish(cluster, job, sleep=no_sleep) is None
    assert cluster.events == []


def test_completed_job_without_result_is_failed(cluster: FakeCluster) -> None:
    name = started(cluster)
    job = cluster.finish_job(name, None)
    assert reconcile.finish(cluster, job, sleep=no_sleep) == FAILED
    assert current(cluster)["status"]["reason"] == "NoResult"


# --- a Job deleted by hand ---------------------------------------------------------------


def test_job_deleted_while_running_ends_the_benchmark_failed(cluster: FakeCluster) -> None:
    name = started(cluster)
    gone = cluster.jobs.pop(name)
    assert reconcile.job_deleted(cluster, gone, sleep=no_sleep) == FAILED
    status = current(cluster)["status"]
    assert (status["state"], status["reason"], status["job"]) == (FAILED, "JobDeleted", name)
    assert status["message"] == f"benchmark Job {name} was deleted before it finished"
    assert cluster.events == [
        ("lb", "Warning", "BenchmarkFailed", f"JobDeleted: {status['message']}")
    ]
    # Replayed (e.g. after a restart): the status is final, nothing more is written.
    cluster.calls.clear()
    assert reconcile.job_deleted(cluster, gone, sleep=no_sleep) is None
    assert cluster.calls == ["read_benchmark"]


def test_deleting_a_finished_job_reports_its_result_not_a_failure(cluster: FakeCluster) -> None:
    name = started(cluster)
    done = cluster.finish_job(name, encode(RESULT).decode())
    # The Job's last change was missed; its deletion still carries the final state.
    assert reconcile.job_deleted(cluster, done, sleep=no_sleep) == SUCCEEDED
    assert current(cluster)["status"]["state"] == SUCCEEDED
    assert reconcile.job_deleted(cluster, done, sleep=no_sleep) is None
    assert len(cluster.events) == 1


def test_job_deleted_with_its_benchmark_changes_nothing(cluster: FakeCluster) -> None:
    name = started(cluster)
    job = cluster.jobs[name]
    # Foreground deletion: the benchmark still exists, marked for deletion.
    cluster.benchmarks["lb"]["metadata"]["deletionTimestamp"] = "2025-11-24T16:00:30Z"
    assert reconcile.job_deleted(cluster, job, sleep=no_sleep) is None
    assert current(cluster)["status"]["state"] == RUNNING
    # Background deletion: the benchmark is already gone.
    del cluster.benchmarks["lb"]
    assert reconcile.job_deleted(cluster, job, sleep=no_sleep) is None
    # A newer namesake is not the deleted Job's benchmark.
    store(cluster, benchmark(uid="newer"))
    assert reconcile.job_deleted(cluster, job, sleep=no_sleep) is None
    assert "status" not in current(cluster)
    assert cluster.events == []
    # A Job no LatencyBenchmark controls is not the operator's business.
    foreign = {**job, "metadata": {**job["metadata"], "ownerReferences": []}}
    cluster.calls.clear()
    assert reconcile.job_deleted(cluster, foreign, sleep=no_sleep) is None
    assert cluster.calls == []


def test_job_deleted_is_retried_in_place_then_gives_up_loudly(cluster: FakeCluster) -> None:
    name = started(cluster)
    gone = cluster.jobs.pop(name)
    cluster.failures["patch_benchmark_status"] = [api_error(503)]
    slept: list[float] = []
    assert reconcile.job_deleted(cluster, gone, sleep=slept.append) == FAILED
    assert slept == [1.0]
    cluster.benchmarks["lb"].pop("status")
    cluster.failures["read_benchmark"] = [api_error(500)] * reconcile.FINISH_ATTEMPTS
    with pytest.raises(ApiException):
        reconcile.job_deleted(cluster, gone, sleep=no_sleep)


def test_every_cluster_method_has_a_permission() -> None:
    methods = {name for name in vars(FakeCluster) if not name.startswith("_")} - {"finish_job"}
    assert methods == set(CLUSTER_CALLS)


def status_body(message: str, reason: str = "Forbidden", code: int = 403) -> str:
    """A Status object as the API server returns it with an error."""
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }  # fmt: skip
    )


QUOTA = (
    'jobs.batch "lb-bench" is forbidden: exceeded quota: jobs, requested: count/jobs.batch=1, '
    "used: count/jobs.batch=2, limited: count/jobs.batch=2"
)
LIMIT_RANGE = 'jobs.batch "lb-bench" is forbidden: maximum memory usage per Container is 256Mi'
RBAC = (
    'jobs.batch is forbidden: User "system:serviceaccount:trading:demo-operator" cannot create '
    'resource "jobs" in API group "batch" in the namespace "trading"'
)


@pytest.mark.parametrize("refusal", [QUOTA, LIMIT_RANGE], ids=["quota", "limitrange"])
def test_a_job_refused_by_admission_ends_job_rejected_at_once(
    cluster: FakeCluster, refusal: str
) -> None:
    """A 403 from a ResourceQuota or LimitRange does not get better by waiting."""
    cr = store(cluster, benchmark())
    cluster.failures["create_job"] = [api_error(403, "Forbidden", status_body(refusal))]
    assert reconcile.start(cluster, cr, SETTINGS, retry=0) == FAILED
    status = current(cluster)["status"]
    assert (status["state"], status["reason"]) == ("Failed", "JobRejected")
    assert status["message"] == f"the API refused the Job: {refusal}"
    assert cluster.calls.count("create_job") == 1


def test_a_job_denied_by_rbac_is_retried(cluster: FakeCluster) -> None:
    """Authorization may be catching up (the Role installed in the same helm install)."""
    cr = store(cluster, benchmark())
    cluster.failures["create_job"] = [api_error(403, "Forbidden", status_body(RBAC))]
    with pytest.raises(kopf.TemporaryError, match="HTTP 403"):
        reconcile.start(cluster, cr, SETTINGS, retry=0)
    assert current(cluster)["status"]["state"] == "Running"
