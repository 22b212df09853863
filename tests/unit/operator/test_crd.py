"""The LatencyBenchmark CRD: valid for Kubernetes, structural, and in step with the operator.

Without an API server, the CRD's own openAPIV3Schema is applied here with jsonschema, with
unknown fields forbidden (kubectl's default strict field validation) and the schema's
defaults filled in first (as the API server does before the operator sees an object).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from cel_expr_python import cel  # type: ignore[import-untyped]
from support import ROOT
from telemetry_contract import BenchmarkResult
from telemetry_contract.events import BENCH_MODES
from trading_operator import resource
from trading_operator.job import RESOURCES, owned_job, render_job
from trading_operator.settings import OperatorSettings
from trading_operator.spec import (
    BYTES_PER_EVENT,
    DEFAULTS,
    MAX_EVENTS,
    MAX_SUSTAINED_EVENTS,
    START_AND_DRAIN_SECONDS,
    SpecError,
    parse_spec,
)
from trading_operator.status import failed_status, result_status, running_status

CRD_PATH = ROOT / "charts" / "trading-telemetry" / "crds" / "latencybenchmarks.yaml"
SAMPLES = sorted((ROOT / "examples").glob("latencybenchmark*.yaml"))
KUBE_VERSION = kubernetes_validate.latest_version()

Obj = dict[str, Any]


def load_crd() -> Obj:
    crd: Obj = yaml.safe_load(CRD_PATH.read_text(encoding="utf-8"))
    return crd


CRD = load_crd()
(VERSION_ENTRY,) = CRD["spec"]["versions"]
SCHEMA: Obj = VERSION_ENTRY["schema"]["openAPIV3Schema"]


def strict(schema: Any) -> Any:
    """Forbid unknown fields wherever the schema lists fields (kubectl --validate=strict)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(item) for key, item in schema.items()}
    if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    return out


VALIDATOR = jsonschema.Draft4Validator(strict(SCHEMA))


def with_defaults(schema: Obj, obj: Any) -> Any:
    """What the API server stores: ``obj`` with the schema's defaults filled in."""
    if not isinstance(obj, dict):
        return obj
    out = dict(obj)
    for key, sub in (schema.get("properties") or {}).items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if key in out:
            out[key] = with_defaults(sub, out[key])
    return out


def errors(obj: Obj) -> list[jsonschema.ValidationError]:
    return sorted(VALIDATOR.iter_errors(obj), key=lambda e: list(e.absolute_path))


def sample(name: str = "s", **spec: Any) -> Obj:
    return {
        "apiVersion": resource.API_VERSION,
        "kind": resource.KIND,
        "metadata": {"name": name, "namespace": "trading"},
        "spec": spec,
    }


def walk(schema: Obj, path: str = "") -> Iterator[tuple[str, Obj]]:
    yield path, schema
    for key, sub in (schema.get("properties") or {}).items():
        yield from walk(sub, f"{path}.{key}")
    if "items" in schema:
        yield from walk(schema["items"], f"{path}[]")


# --- the CRD itself -------------------------------------------------------------------


def test_crd_validates_against_the_kubernetes_schema() -> None:
    kubernetes_validate.validate(CRD, KUBE_VERSION, strict=True)


def test_crd_names_match_the_operator_and_the_interfaces() -> None:
    assert CRD["metadata"]["name"] == f"{resource.PLURAL}.{resource.GROUP}"
    spec = CRD["spec"]
    assert spec["group"] == resource.GROUP
    assert spec["scope"] == "Namespaced"
    names = spec["names"]
    assert (names["kind"], names["plural"], names["singular"]) == (
        resource.KIND,
        resource.PLURAL,
        resource.SINGULAR,
    )
    assert resource.SHORT_NAME in names["shortNames"]
    assert VERSION_ENTRY["name"] == resource.VERSION
    assert VERSION_ENTRY["served"] and VERSION_ENTRY["storage"]
    # The operator patches /status; without the subresource those patches 404.
    assert VERSION_ENTRY["subresources"] == {"status": {}}


def test_schema_is_structural() -> None:
    """Every node has a type; nothing is left open, so the API server prunes nothing."""
    for path, node in walk(SCHEMA):
        assert "type" in node, f"{path or '<root>'} has no type"
        if node["type"] == "object" and path not in (".metadata",):
            assert "properties" in node, f"{path} is an open object"
        assert not node.get("x-kubernetes-preserve-unknown-fields"), path


def test_spec_is_immutable_so_a_benchmark_never_silently_ignores_an_edit() -> None:
    rules = SCHEMA["properties"]["spec"]["x-kubernetes-validations"]
    assert {"rule": "self == oldSelf"}.items() <= rules[0].items()
    assert "delete and re-create" in rules[0]["message"]


def test_schema_defaults_and_modes_are_the_operators() -> None:
    spec_schema = SCHEMA["properties"]["spec"]
    props = spec_schema["properties"]
    assert tuple(props["mode"]["enum"]) == BENCH_MODES
    assert spec_schema["required"] == ["mode"]
    assert {key: sub["default"] for key, sub in props.items() if "default" in sub} == DEFAULTS
    for key, default in DEFAULTS.items():
        assert props[key]["minimum"] <= default <= props[key]["maximum"], key


def test_printer_columns_show_mode_state_latency_rate_and_lost() -> None:
    columns = {c["name"]: c for c in VERSION_ENTRY["additionalPrinterColumns"]}
    default_view = [c["jsonPath"] for c in columns.values() if not c.get("priority")]
    assert default_view == [
        ".spec.mode",
        ".status.state",
        ".status.p50Us",
        ".status.p99Us",
        ".status.achievedRate",
        ".status.lost",
        ".metadata.creationTimestamp",
    ]
    wide = [c["jsonPath"] for c in columns.values() if c.get("priority")]
    assert ".status.p999Us" in wide and ".status.dropped" in wide
    for column in columns.values():
        if column["jsonPath"].startswith(".metadata"):
            continue
        _, top, field = column["jsonPath"].split(".")
        node = SCHEMA["properties"][top]["properties"][field]
        assert node["type"] == column["type"], column["name"]


# --- samples --------------------------------------------------------------------------


def test_samples_exist() -> None:
    assert SAMPLES, "examples/latencybenchmark*.yaml is missing"


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: Path(p).name)
def test_sample_validates_and_becomes_a_valid_job(path: Path) -> None:
    (cr,) = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    assert errors(cr) == []
    stored = with_defaults(SCHEMA, cr)
    stored["metadata"].update(namespace="trading", uid="0b7c5c1e-1111-2222-3333-444455556666")
    settings = OperatorSettings()
    spec = parse_spec(stored["spec"], settings)
    job = owned_job(render_job(spec, stored["metadata"]["name"], "trading", settings), stored)
    kubernetes_validate.validate(job, KUBE_VERSION, strict=True)


@pytest.mark.parametrize(
    ("cr", "path", "fragment"),
    [
        (sample(), ["spec"], "'mode' is a required property"),
        (sample(mode="warp"), ["spec", "mode"], "is not one of"),
        (sample(mode="burst", events=0), ["spec", "events"], "less than the minimum"),
        (sample(mode="burst", events=10**8), ["spec", "events"], "greater than the maximum"),
        (sample(mode="burst", events=5_000_001), ["spec", "events"], "greater than the maximum"),
        (sample(mode="burst", events="1000"), ["spec", "events"], "is not of type 'integer'"),
        (sample(mode="burst", events=1.5), ["spec", "events"], "is not of type 'integer'"),
        (sample(mode="sustained", rate=-5), ["spec", "rate"], "less than the minimum"),
        (sample(mode="sustained", duration=7200), ["spec", "duration"], "greater than"),
        (sample(mode="burst", timeoutSeconds=5), ["spec", "timeoutSeconds"], "less than"),
        (sample(mode="burst", service="Sidecar_ZMQ"), ["spec", "service"], "does not match"),
        (sample(mode="burst", service="z" * 64), ["spec", "service"], "is too long"),
        (sample(mode="burst", port=70000), ["spec", "port"], "greater than the maximum"),
        (sample(mode="burst", sidecarUrl="sidecar:8001"), ["spec", "sidecarUrl"], "match"),
        (sample(mode="burst", evnts=10), ["spec"], "'evnts' was unexpected"),
        ({**sample(mode="burst"), "spec": None}, ["spec"], "is not of type 'object'"),
    ],
)
def test_bad_specs_are_refused_by_the_schema(cr: Obj, path: list[str], fragment: str) -> None:
    found = errors(cr)
    assert found, f"schema accepted {cr['spec']}"
    assert [list(e.absolute_path) for e in found] == [path]
    assert fragment in found[0].message
    # The API server shows the field's description in `kubectl explain`; every spec field
    # that can be refused has one.
    if len(path) == 2:
        assert SCHEMA["properties"]["spec"]["properties"][path[1]].get("description")


def test_the_whole_crd_schema_accepts_what_the_defaults_make() -> None:
    assert errors(with_defaults(SCHEMA, sample(mode="ingest"))) == []


# --- CEL rules (x-kubernetes-validations) --------------------------------------------------
#
# No API server here, but a real CEL runtime: Google's cel-cpp through cel-expr-python. Each
# rule is compiled (a syntax or type error fails the test) and evaluated with ``self`` bound
# the way the API server binds it: every field converted to the CEL type its schema declares
# (``number`` is always a double, ``integer`` an int), so ``rate: 1000`` from YAML is a double
# as it is in a cluster and an int × double rule fails here as it would there.

SPEC_SCHEMA: Obj = SCHEMA["properties"]["spec"]
SPEC_RULES = SPEC_SCHEMA["x-kubernetes-validations"]
#: The rules that look at one object; ``oldSelf`` rules only run on updates.
CREATE_RULES = [rule for rule in SPEC_RULES if "oldSelf" not in rule["rule"]]
CEL_ENV = cel.NewEnv(
    variables={
        "self": cel.Type.Map(cel.Type.STRING, cel.Type.DYN),
        "oldSelf": cel.Type.Map(cel.Type.STRING, cel.Type.DYN),
    }
)


def as_cel(schema: Obj, value: Any) -> Any:
    """``value`` as the API server hands it to CEL, by the schema's declared type."""
    kind = schema.get("type")
    if kind == "number":
        return float(value)
    if kind == "integer":
        return int(value)
    if kind == "object":
        props = schema.get("properties") or {}
        return {key: as_cel(props.get(key, {}), item) for key, item in value.items()}
    return value


def cel_allows(rule: str, spec: Obj, old: Obj | None = None) -> bool:
    """``rule`` on ``spec`` as the API server stores it (defaults filled in)."""
    data = {"self": as_cel(SPEC_SCHEMA, spec)}
    if old is not None:
        data["oldSelf"] = as_cel(SPEC_SCHEMA, old)
    result = CEL_ENV.compile(rule).eval(data=data).value()
    assert isinstance(result, bool), f"{rule!r} gave {result!r}, not a bool"
    return result


def stored_spec(**spec: Any) -> Obj:
    stored: Obj = with_defaults(SCHEMA, sample(**spec))["spec"]
    return stored


def test_every_rule_compiles_to_a_bool_with_a_message() -> None:
    for rule in SPEC_RULES:
        assert CEL_ENV.compile(rule["rule"]).return_type() == cel.Type.BOOL, rule["rule"]
        assert rule["message"].strip(), rule["rule"]


def test_the_cel_runtime_refuses_what_an_api_server_would() -> None:
    """The evaluator is not a rubber stamp: a broken rule and an int × double both fail."""
    with pytest.raises(RuntimeError, match="Syntax error"):
        CEL_ENV.compile("self.mode !=")
    with pytest.raises(AssertionError, match="not a bool"):
        cel_allows("self.rate * self.duration <= 1.0", stored_spec(mode="sustained"))


def test_the_immutability_rule_refuses_an_edited_spec() -> None:
    (rule,) = [r["rule"] for r in SPEC_RULES if "oldSelf" in r["rule"]]
    spec = stored_spec(mode="burst")
    assert cel_allows(rule, spec, old=dict(spec))
    assert not cel_allows(rule, {**spec, "events": spec["events"] + 1}, old=spec)


CROSS_FIELD_CASES = [
    {"mode": mode, "events": events}
    for mode in ("hotpath", "burst", "ingest")
    for events in (1, 2_000_000, 2_000_001, 5_000_000)
] + [
    {"mode": "sustained", "rate": rate, "duration": duration, "timeoutSeconds": timeout}
    for rate, duration, timeout in [
        (1000, 10, 600),
        (1_000_000, 20, 600),
        (1_000_000, 21, 600),
        (5555.5, 3600, 3601),
        (5555.6, 3600, 3601),
        (2000, 60, 60),
        (2000, 60, 89),
        (2000, 60, 90),
        (2000, 570, 600),
        (2000, 571, 600),
        (1_000_000, 3600, 86400),
    ]
]


def test_cross_field_rules_are_in_the_crd() -> None:
    rules = {rule["rule"] for rule in CREATE_RULES}
    margin = START_AND_DRAIN_SECONDS
    assert f"self.mode != 'sustained' || self.timeoutSeconds >= self.duration + {margin}" in rules
    # The events maximum is the largest mode's; the smaller ones are rules.
    assert SCHEMA["properties"]["spec"]["properties"]["events"]["maximum"] == max(
        MAX_EVENTS.values()
    )


@pytest.mark.parametrize("spec", CROSS_FIELD_CASES, ids=lambda s: "-".join(map(str, s.values())))
def test_crd_rules_and_the_operators_check_agree(spec: Obj) -> None:
    """Both refuse the same specs: the API server where it runs CEL, the operator always."""
    stored = stored_spec(**spec)
    assert errors(sample(**stored)) == []
    refused_by = [rule["message"] for rule in CREATE_RULES if not cel_allows(rule["rule"], stored)]
    try:
        parse_spec(stored, OperatorSettings())
    except SpecError as exc:
        assert refused_by, f"the CRD admits what the operator refuses: {exc.message}"
    else:
        assert refused_by == [], f"the CRD refuses what the operator runs: {refused_by}"


def test_the_cases_cover_both_outcomes_for_every_rule() -> None:
    for rule in CREATE_RULES:
        outcomes = {cel_allows(rule["rule"], stored_spec(**spec)) for spec in CROSS_FIELD_CASES}
        assert outcomes == {True, False}, rule["rule"]


def test_the_largest_run_of_every_mode_fits_the_jobs_memory_limit() -> None:
    """Peak memory (measured bytes per event, plus the process itself) within 80 % of the limit."""
    limit = RESOURCES["limits"]["memory"]
    units = {"Mi": 2**20, "Gi": 2**30}
    limit_bytes = int(limit[:-2]) * units[limit[-2:]]
    base = 64 * 2**20  # RSS of the benchmark with no events: ~40-55 MB measured
    largest = {**MAX_EVENTS, "sustained": MAX_SUSTAINED_EVENTS}
    assert set(largest) == set(BENCH_MODES) == set(BYTES_PER_EVENT)
    for mode, events in largest.items():
        assert base + events * BYTES_PER_EVENT[mode] <= 0.8 * limit_bytes, mode


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: Path(p).name)
def test_samples_pass_the_crd_rules(path: Path) -> None:
    (cr,) = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    stored = with_defaults(SCHEMA, cr)["spec"]
    assert all(cel_allows(rule["rule"], stored) for rule in CREATE_RULES)


# --- status ---------------------------------------------------------------------------

RESULT = BenchmarkResult(
    run_id="r", mode="burst", variant="client", events=10, sent=10, dropped=0, received=10,
    lost=0, elapsed_s=0.5, rate=20.0, target_rate=0.0, p50_us=1.0, p90_us=2.0, p99_us=3.0,
    p999_us=4.0, max_us=5.0, started_at=1.7e9, finished_at=1.7e9 + 1,
)  # fmt: skip


@pytest.mark.parametrize(
    "status",
    [
        running_status("s-bench", "s"),
        {**result_status(RESULT), "job": "s-bench"},
        failed_status("ServiceNotFound", "Service trading/x does not exist"),
        failed_status("DeadlineExceeded", "too long", startedAt="2025-11-24T16:00:00Z"),
    ],
    ids=["running", "succeeded", "failed", "timed-out"],
)
def test_every_status_the_operator_writes_fits_the_schema(status: Obj) -> None:
    """A field the schema does not list would be pruned from the patch without a word."""
    assert errors({**sample(mode="burst"), "status": status}) == []
