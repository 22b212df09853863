"""LatencyBenchmark spec → benchmark Job: parsing, naming, and the Kubernetes schema.

The Job is the operator's one write with consequences, so it is checked against the
real Kubernetes OpenAPI schema (kubernetes-validate, strict: unknown fields fail) and its
arguments are parsed back with the benchmark's own CLI parser where that exists.
"""

from __future__ import annotations

import re
from typing import Any

import kopf
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from telemetry_contract.events import BENCH_MODES, LABEL_VALUE_PATTERN
from trading_bench.cli import parser as bench_parser
from trading_operator.job import (
    MAX_JOB_NAME,
    bench_args,
    job_name,
    owned_job,
    owner_of,
    pod_selector,
    render_job,
    run_id,
    target_problem,
)
from trading_operator.resource import API_VERSION, KIND
from trading_operator.settings import OperatorSettings, load
from trading_operator.spec import DEFAULTS, BenchmarkSpec, SpecError, parse_spec

KUBE_VERSION = kubernetes_validate.latest_version()
SETTINGS = OperatorSettings(
    bench_image="registry.example/trading-telemetry-publisher:1.2.3",
    instance="demo",
    default_service="demo-trading-telemetry-zmq",
    zmq_port=5555,
    sidecar_url="http://demo-trading-telemetry-metrics:8001",
)
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def owner(name: str = "lb", uid: str = "uid-1") -> kopf.Body:
    return kopf.Body(
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": name, "namespace": "trading", "uid": uid},
        }
    )


# --- settings ---------------------------------------------------------------------------


def test_settings_come_from_tt_operator_env() -> None:
    loaded = load(
        {
            "TT_OPERATOR_BENCH_IMAGE": "img:9",
            "TT_OPERATOR_INSTANCE": "rel",
            "TT_OPERATOR_DEFAULT_SERVICE": "rel-zmq",
            "TT_OPERATOR_ZMQ_PORT": "6000",
            "TT_OPERATOR_SIDECAR_URL": "http://rel-metrics:8001",
        }
    )
    assert loaded == OperatorSettings(
        bench_image="img:9",
        instance="rel",
        default_service="rel-zmq",
        zmq_port=6000,
        sidecar_url="http://rel-metrics:8001",
    )


# --- spec -------------------------------------------------------------------------------


def test_minimal_spec_takes_defaults_and_the_operators_target() -> None:
    spec = parse_spec({"mode": "burst"}, SETTINGS)
    assert spec == BenchmarkSpec(
        mode="burst",
        events=int(DEFAULTS["events"]),
        rate=float(DEFAULTS["rate"]),
        duration=int(DEFAULTS["duration"]),
        timeout_seconds=int(DEFAULTS["timeoutSeconds"]),
        service=SETTINGS.default_service,
        port=SETTINGS.zmq_port,
        sidecar_url=SETTINGS.sidecar_url,
    )
    assert spec.address == "tcp://demo-trading-telemetry-zmq:5555"


def test_explicit_spec_wins_over_defaults() -> None:
    raw = {
        "mode": "sustained",
        "events": 5,
        "rate": 2500,
        "duration": 7,
        "timeoutSeconds": 60,
        "service": "other-zmq",
        "port": 6000,
        "sidecarUrl": "http://other:9000",
    }
    spec = parse_spec(raw, SETTINGS)
    assert (spec.events, spec.rate, spec.duration, spec.timeout_seconds) == (5, 2500.0, 7, 60)
    assert spec.address == "tcp://other-zmq:6000"
    assert spec.sidecar_url == "http://other:9000"
    assert isinstance(spec.events, int) and isinstance(spec.rate, float)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({}, "spec.mode must be one of hotpath, burst, sustained, ingest"),
        ({"mode": "warp"}, "spec.mode must be one of"),
        ({"mode": "burst", "events": "many"}, "spec.events must be a number"),
        ({"mode": "burst", "events": True}, "spec.events must be a number"),
        ({"mode": "burst", "events": 2.5}, "spec.events must be a whole number"),
        ({"mode": "burst", "rate": 0}, "spec.rate must be > 0"),
        (
            {"mode": "sustained", "duration": 60, "timeoutSeconds": 89},
            "spec.timeoutSeconds (89) must be at least spec.duration (60) + 30",
        ),
        (
            {"mode": "hotpath", "events": 2_000_001},
            "spec.events (2,000,001) must be at most 2,000,000 for a hotpath run",
        ),
        (
            {"mode": "sustained", "rate": 1_000_000, "duration": 21, "timeoutSeconds": 600},
            "spec.rate × spec.duration (21,000,000 events) must be at most 20,000,000",
        ),
    ],
)
def test_spec_that_cannot_run_says_why(raw: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(raw, SETTINGS)
    assert caught.value.reason == "InvalidSpec"
    assert fragment in caught.value.message


def test_timeout_shorter_than_duration_only_matters_for_sustained() -> None:
    spec = parse_spec({"mode": "burst", "duration": 60, "timeoutSeconds": 30}, SETTINGS)
    assert spec.timeout_seconds == 30


# --- names ------------------------------------------------------------------------------


def test_job_name_is_the_benchmark_name_plus_bench() -> None:
    assert job_name("nightly") == "nightly-bench"


def test_a_shortened_job_name_is_the_same_in_every_process() -> None:
    """A retried create (another operator process, another release) must hit 409, not
    make a second Job: the shortened name is pinned, so a per-process hash (``hash()``,
    salted per process) or a random suffix fails here."""
    long = "nightly-latency-benchmark-for-the-eu-equities-desk-" + "x" * 30
    assert job_name(long) == "nightly-latency-benchmark-for-the-eu-equities-de-486bdf45-bench"


@pytest.mark.parametrize("length", [57, 58, 63, 64, 120, 253])
def test_long_names_are_cut_to_a_unique_valid_job_name(length: int) -> None:
    name = ("a.b-" * 100)[: length - 1] + "z"
    other = name[:-1] + "y"
    shortened = job_name(name)
    assert len(shortened) <= MAX_JOB_NAME
    assert DNS_SUBDOMAIN.fullmatch(shortened), shortened
    assert shortened.endswith("-bench")
    assert job_name(other) != shortened  # a shared prefix does not collide


def test_run_id_is_a_valid_label_value_for_any_benchmark_name() -> None:
    assert run_id("nightly") == "nightly"
    for name in ("x" * 64, "x" * 65, "a." * 126 + "z"):
        assert re.fullmatch(LABEL_VALUE_PATTERN, run_id(name)), run_id(name)
    assert run_id("x" * 65) != run_id("x" * 64 + "y")


# --- the Job ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", BENCH_MODES)
def test_job_validates_against_the_kubernetes_schema(mode: str) -> None:
    spec = parse_spec({"mode": mode}, SETTINGS)
    job = owned_job(render_job(spec, "lb", "trading", SETTINGS), owner())
    kubernetes_validate.validate(job, KUBE_VERSION, strict=True)


def test_job_targets_the_zmq_service_and_reports_through_the_termination_log() -> None:
    spec = parse_spec({"mode": "sustained", "rate": 2000, "duration": 15}, SETTINGS)
    job = render_job(spec, "lb", "trading", SETTINGS)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert container["command"] == ["trading-bench"]
    assert args[0] == "sustained"
    opts = dict(zip(args[1::2], args[2::2], strict=False))
    assert opts["--address"] == "tcp://demo-trading-telemetry-zmq:5555"
    assert opts["--sidecar-url"] == SETTINGS.sidecar_url
    assert opts["--rate"] == "2000.0" and opts["--duration"] == "15"
    assert opts["--run-id"] == "lb"
    assert opts["--termination-log"] == container["terminationMessagePath"]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    # A failed run's last log lines become its message, so status can say why.
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert container["image"] == SETTINGS.bench_image
    # --results-dir lives on an emptyDir, so the root filesystem can stay read-only.
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {opts["--results-dir"], "/tmp"} <= mounts
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == spec.timeout_seconds


@pytest.mark.parametrize("mode", BENCH_MODES)
def test_the_benchmarks_own_parser_accepts_the_job_arguments(mode: str) -> None:
    spec = parse_spec({"mode": mode, "events": 321, "rate": 1500, "duration": 4}, SETTINGS)
    (container,) = render_job(spec, "lb", "trading", SETTINGS)["spec"]["template"]["spec"][
        "containers"
    ]
    args = bench_parser().parse_args(container["args"])
    # The CLI may take one rate or several (a tuple); the Job asks for exactly one.
    rates = args.rate if isinstance(args.rate, tuple) else (args.rate,)
    assert (args.mode, args.events, rates, args.duration) == (mode, 321, (1500.0,), 4.0)
    assert args.address == spec.address and args.sidecar_url == spec.sidecar_url
    assert args.termination_log == "/dev/termination-log"
    assert (args.no_report, args.no_progress, args.no_plot) == (False, True, True)


def test_every_mode_flag_is_passed_so_the_job_records_the_whole_spec() -> None:
    spec = parse_spec({"mode": "hotpath", "events": 123}, SETTINGS)
    args = bench_args(spec, "lb")
    for flag in ("--events", "--rate", "--duration", "--no-progress", "--no-plot"):
        assert flag in args
    assert args[args.index("--events") + 1] == "123"
    assert "--no-report" not in args  # results must reach the sidecar, hence Grafana


def test_job_and_pod_carry_the_labels_the_network_policy_admits() -> None:
    job = render_job(parse_spec({"mode": "burst"}, SETTINGS), "lb", "trading", SETTINGS)
    expected = {
        "app.kubernetes.io/name": "trading-telemetry",
        "app.kubernetes.io/instance": "demo",
        "app.kubernetes.io/component": "benchmark",
    }
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert expected.items() <= labels.items()
    assert job["metadata"]["name"] == "lb-bench"
    assert job["metadata"]["namespace"] == "trading"


def test_pull_policy_and_pull_secrets_come_from_the_operators_env() -> None:
    settings = load(
        {
            "TT_OPERATOR_BENCH_IMAGE": "registry.example/publisher:1.2.3",
            "TT_OPERATOR_IMAGE_PULL_POLICY": "Always",
            "TT_OPERATOR_IMAGE_PULL_SECRETS": " regcred, mirror-cred,,regcred ",
        },
        dotenv=None,
    )
    job = owned_job(
        render_job(parse_spec({"mode": "burst"}, settings), "lb", "trading", settings), owner()
    )
    kubernetes_validate.validate(job, KUBE_VERSION, strict=True)
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror-cred"}]


def test_without_pull_secrets_the_pod_names_none_and_pulls_if_not_present() -> None:
    settings = load({}, dotenv=None)
    pod = render_job(parse_spec({"mode": "burst"}, settings), "lb", "trading", settings)["spec"][
        "template"
    ]["spec"]
    assert "imagePullSecrets" not in pod
    assert pod["containers"][0]["imagePullPolicy"] == "IfNotPresent"


def test_owner_reference_makes_the_benchmark_the_jobs_controller() -> None:
    job = owned_job(
        render_job(parse_spec({"mode": "burst"}, SETTINGS), "lb", "trading", SETTINGS), owner()
    )
    (ref,) = job["metadata"]["ownerReferences"]
    assert ref == {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": "lb",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": False,
    }
    assert owner_of(job) == ("lb", "uid-1")
    owned_job(job, owner())  # adopting twice adds no second reference
    assert len(job["metadata"]["ownerReferences"]) == 1


@pytest.mark.parametrize(
    "refs",
    [
        [],
        [
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "name": "c",
                "uid": "u",
                "controller": True,
            }
        ],
        [{"apiVersion": "other.io/v1", "kind": KIND, "name": "x", "uid": "u", "controller": True}],
        [{"apiVersion": API_VERSION, "kind": KIND, "name": "x", "uid": "u", "controller": False}],
    ],
)
def test_jobs_not_controlled_by_a_latencybenchmark_have_no_owner(refs: list[Any]) -> None:
    assert owner_of({"metadata": {"name": "j", "ownerReferences": refs}}) is None


def test_pod_selector_reuses_the_job_controllers_selector() -> None:
    job = {
        "metadata": {"name": "lb-bench"},
        "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}}},
    }
    assert pod_selector(job) == "batch.kubernetes.io/controller-uid=abc"
    assert pod_selector({"metadata": {"name": "lb-bench"}, "spec": {}}) == "job-name=lb-bench"


def service(*ports: int) -> dict[str, Any]:
    return {
        "metadata": {"name": "demo-zmq"},
        "spec": {"ports": [{"name": f"p{p}", "port": p} for p in ports]},
    }


def test_target_service_must_expose_the_zmq_port() -> None:
    assert target_problem(service(5555), 5555) is None
    assert target_problem(service(8001, 5555), 5555) is None
    assert target_problem(service(8001), 5555) == (
        "Service demo-zmq does not expose port 5555 (ports: 8001)"
    )
    assert target_problem({"metadata": {"name": "ext"}, "spec": {}}, 5555) == (
        "Service ext does not expose port 5555 (ports: none)"
    )


def test_the_benchmark_waits_for_the_sidecar_to_be_ready_first() -> None:
    """The LatencyBenchmark is a release object: on a fresh install its Job can start before
    the sidecar, whose counts the benchmark reads first."""
    spec = parse_spec({"mode": "burst", "sidecarUrl": "http://elsewhere:8001"}, SETTINGS)
    pod = render_job(spec, "lb", "trading", SETTINGS)["spec"]["template"]["spec"]
    (wait,) = pod["initContainers"]
    (bench,) = pod["containers"]
    assert wait["image"] == bench["image"] == SETTINGS.bench_image
    assert wait["command"][:2] == ["python", "-c"]
    assert wait["command"][-1] == "http://elsewhere:8001" == spec.sidecar_url
    assert "/readyz" in wait["command"][2]
    assert wait["securityContext"] == bench["securityContext"]
    assert wait["securityContext"] is not bench["securityContext"]
    assert wait["resources"]["requests"] and wait["resources"]["limits"]
    assert {m["mountPath"] for m in wait["volumeMounts"]} == {"/tmp"}
