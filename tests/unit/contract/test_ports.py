"""Ports and names are spelled once, in ``telemetry_contract.ports``.

What can import them does (checked by scanning for the literals); what cannot — the
Makefiles, ``.env.sample``, the standard-library-only ``prometheus_local`` — is compared
against them here. The chart is checked on its rendered output in
tests/unit/chart/test_chart.py (test_ports_and_names_follow_the_shared_interface).
"""

from __future__ import annotations

import ast
import re

import prometheus_local
from support import ROOT
from telemetry_contract import ports
from telemetry_contract.settings_source import read_dotenv

PORTS = {
    ports.DEFAULT_ZMQ_PORT,
    ports.DEFAULT_SIDECAR_HTTP_PORT,
    ports.DEFAULT_PUBLISHER_HTTP_PORT,
    ports.DEFAULT_SIDECAR_PROBE_PORT,
    ports.DEFAULT_UI_PORT,
    ports.DEFAULT_PROMETHEUS_PORT,
}


def make_variables(text: str) -> dict[str, str]:
    """``NAME := value`` / ``NAME ?= value`` lines of a Makefile."""
    return dict(re.findall(r"^([A-Z_]+) *[:?]?= *(.*?) *$", text, re.M))


def test_every_port_is_distinct() -> None:
    assert len(PORTS) == 6


def spelled_ports(source: str) -> list[tuple[int, str]]:
    """(line, text) of every port number in code: an int literal, or a string (docstrings
    aside) with ``:PORT`` in it, as in an address or URL."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or id(node) in docstrings:
            continue
        value = node.value
        if isinstance(value, int) and not isinstance(value, bool) and value in PORTS:
            found.append((node.lineno, str(value)))
        elif isinstance(value, str) and re.search(rf":({'|'.join(map(str, PORTS))})\b", value):
            found.append((node.lineno, value))
    return found


def test_spelled_ports_finds_numbers_and_addresses_but_not_prose() -> None:
    source = '''"""Module doc: port 8001."""
def f():
    """Listens on tcp://127.0.0.1:5555."""
    port = 8501  # 8002 in a comment is fine
    url = "http://svc:8001"
    other = 80010
'''
    assert spelled_ports(source) == [(4, "8501"), (5, "http://svc:8001")]


def test_product_code_imports_the_ports_instead_of_spelling_them() -> None:
    """No port number spelled in product Python, outside ports.py itself.

    ``prometheus_local`` is standard-library only (it runs before the venv exists), so it
    spells its compose target; the next test pins it to the contract.
    """
    skip = {"ports.py", "prometheus_local.py"}
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for path in [*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("scripts/*.py")]
        if path.name not in skip
        for line, text in spelled_ports(path.read_text())
    ]
    assert not offenders, "\n".join(offenders)


def test_the_compose_target_is_the_sidecar_http_port() -> None:
    assert prometheus_local.COMPOSE_TARGET.endswith(f":{ports.DEFAULT_SIDECAR_HTTP_PORT}")


def test_the_makefiles_agree_with_the_contract() -> None:
    common = make_variables((ROOT / "mk" / "common.mk").read_text())
    assert common["RELEASE"] == ports.CHART_NAME
    assert common["SIDECAR_HTTP_PORT"] == str(ports.DEFAULT_SIDECAR_HTTP_PORT)
    assert common["UI_SERVICE_PORT"] == str(ports.DEFAULT_UI_PORT)
    assert common["BENCH_SERVICE"] == f"$(FULLNAME){ports.BENCH_SERVICE_SUFFIX}"
    # The other Makefiles use those variables rather than spelling the numbers again.
    for path in [ROOT / "Makefile", *ROOT.glob("mk/*.mk")]:
        recipes = [
            line
            for line in path.read_text().splitlines()
            if not line.lstrip().startswith("#") and "## " not in line
        ]
        for port in (ports.DEFAULT_SIDECAR_HTTP_PORT, ports.DEFAULT_UI_PORT):
            spelled = [line for line in recipes if re.search(rf"\b{port}\b", line)]
            if path.name == "common.mk":
                assert len(spelled) == 1, spelled
            else:
                assert not spelled, (path.name, spelled)


def test_env_sample_shows_the_contract_defaults() -> None:
    sample = read_dotenv(ROOT / ".env.sample")
    assert sample["TT_SIDECAR_ZMQ_BIND"] == ports.DEFAULT_ZMQ_ADDRESS
    assert sample["TT_PUBLISHER_ZMQ_CONNECT"] == ports.DEFAULT_ZMQ_ADDRESS
    assert sample["TT_SIDECAR_HTTP_PORT"] == str(ports.DEFAULT_SIDECAR_HTTP_PORT)
    # Off unless set (the chart sets it): a sample that set it would pin every local
    # sidecar made from it to one probe port.
    assert "TT_SIDECAR_PROBE_PORT" not in sample
    assert sample["TT_PUBLISHER_SIDECAR_URL"] == ports.DEFAULT_SIDECAR_URL
    assert sample["TT_PUBLISHER_UI_PORT"] == str(ports.DEFAULT_UI_PORT)
    assert sample["TT_PUBLISHER_HTTP_PORT"] == str(ports.DEFAULT_PUBLISHER_HTTP_PORT)
    assert sample["TT_PROMETHEUS_PORT"] == str(ports.DEFAULT_PROMETHEUS_PORT)


def test_readmes_ports_table_lists_every_port_a_local_run_opens() -> None:
    """Each port's row names its setting and, where the default is a fixed port, that port."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Ports", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("|")]
    expected = {
        "TT_SIDECAR_ZMQ_BIND": ports.DEFAULT_ZMQ_PORT,
        "TT_SIDECAR_HTTP_PORT": ports.DEFAULT_SIDECAR_HTTP_PORT,
        "TT_SIDECAR_PROBE_PORT": ports.DEFAULT_SIDECAR_PROBE_PORT,
        "TT_PUBLISHER_HTTP_PORT": ports.DEFAULT_PUBLISHER_HTTP_PORT,
        "TT_PUBLISHER_UI_PORT": ports.DEFAULT_UI_PORT,
        "TT_PROMETHEUS_PORT": ports.DEFAULT_PROMETHEUS_PORT,
        "docker-compose.infra.yml": ports.INFRA_GRAFANA_PORT,
    }
    for setting_name, port in expected.items():
        found = [row for row in rows if setting_name in row]
        assert found, f"README's ports table has no row for {setting_name}"
        if isinstance(port, int) and port > 0:
            assert str(port) in found[0], f"{setting_name}: {port} not in {found[0]}"
    infra = next(row for row in rows if "docker-compose.infra.yml" in row)
    assert str(ports.INFRA_PROMETHEUS_PORT) in infra, infra
    compose = (ROOT / "docker-compose.infra.yml").read_text()
    for port in (ports.INFRA_GRAFANA_PORT, ports.INFRA_PROMETHEUS_PORT):
        assert f"127.0.0.1:{port}:" in compose, port


def test_operations_doc_describes_the_sidecar_as_the_statefulset_the_chart_renders() -> None:
    chart = ROOT / "charts" / "trading-telemetry" / "templates" / "sidecar-statefulset.yaml"
    assert "kind: StatefulSet" in chart.read_text()
    doc = " ".join((ROOT / "docs" / "operations.md").read_text().split())
    assert "would need a PersistentVolume" not in doc and "would be needed" not in doc
    assert "runs as a StatefulSet" in doc and "sidecar.stateDir.persistence.enabled" in doc
