"""Both dashboards, read by Grafana's own dashboard model (grafana-foundation-sdk, 11.x line).

The model is generated from Grafana's schemas, so what it drops on a round trip is a field
Grafana does not know (a typo, a field of another version), and a panel whose options stay
an untyped dict is a panel type it has no plugin schema for. Every panel must be a typed
panel with Prometheus queries through the datasource variable, and ``schemaVersion`` is the
one the model writes.
"""

from __future__ import annotations

import copy
import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import prometheus
from grafana_foundation_sdk.models.dashboard import Dashboard, Panel, RowPanel
from support import ROOT

DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))

register_default_plugins()


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def round_trip(source: dict[str, Any]) -> tuple[Dashboard, dict[str, Any]]:
    model = Dashboard.from_json(copy.deepcopy(source))
    written: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    return model, written


def lost(source: Any, written: Any, path: str = "") -> list[str]:
    """Every field of ``source`` that ``written`` drops or changes (added defaults are fine)."""
    if isinstance(source, dict) and isinstance(written, dict):
        problems: list[str] = []
        for key, value in source.items():
            if key not in written:
                problems.append(f"{path}/{key} dropped")
            else:
                problems += lost(value, written[key], f"{path}/{key}")
        return problems
    if isinstance(source, list) and isinstance(written, list):
        if len(source) != len(written):
            return [f"{path}: {len(source)} items became {len(written)}"]
        return [
            p
            for i, (a, b) in enumerate(zip(source, written, strict=True))
            for p in lost(a, b, f"{path}[{i}]")
        ]
    return [] if source == written else [f"{path}: {source!r} became {written!r}"]


def untyped(model: Dashboard) -> list[str]:
    """Panels the model could not type, and queries that are not Prometheus queries."""
    problems: list[str] = []
    panels: list[Panel | RowPanel] = list(model.panels or [])
    for row in [p for p in panels if isinstance(p, RowPanel)]:
        panels += list(row.panels or [])
    for panel in panels:
        if isinstance(panel, RowPanel):
            continue
        where = f"{panel.title} ({panel.type_val})"
        if panel.options is None or isinstance(panel.options, dict):
            problems.append(f"{where}: options untyped")
        if panel.datasource is None or panel.datasource.type_val != "prometheus":
            problems.append(f"{where}: datasource {panel.datasource}")
        if not panel.targets:
            problems.append(f"{where}: no query")
        for target in panel.targets or []:
            if not isinstance(target, prometheus.Dataquery) or not target.expr:
                problems.append(f"{where}: {type(target).__name__} is not a Prometheus query")
            elif target.datasource is None or target.datasource.type_val != "prometheus":
                problems.append(f"{where}/{target.ref_id}: datasource {target.datasource}")
    return problems


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_the_model_keeps_every_field(path: Path) -> None:
    source = load(path)
    _, written = round_trip(source)
    assert lost(source, written) == []


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_every_panel_is_typed_and_queries_prometheus(path: Path) -> None:
    model, _ = round_trip(load(path))
    assert untyped(model) == []
    assert len(model.panels or []) >= 10


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_schema_version_is_the_models(path: Path) -> None:
    assert load(path)["schemaVersion"] == Dashboard().schema_version


def test_the_compose_grafana_runs_the_line_the_model_comes_from() -> None:
    sdk = version("grafana-foundation-sdk").split("!")[-1]  # "<epoch>!11.6.0"
    compose = yaml.safe_load((ROOT / "docker-compose.infra.yml").read_text())
    image = compose["services"]["grafana"]["image"]
    assert image.startswith("grafana/grafana:11.")
    assert image.split(":")[1].split(".")[:2] == sdk.split(".")[:2], (image, sdk)


def test_both_dashboards_are_checked() -> None:
    assert [p.name for p in DASHBOARDS] == ["benchmark.json", "trading-telemetry.json"]


def test_the_checks_catch_a_typo_an_untyped_panel_and_a_foreign_query() -> None:
    """The checks can fail: each damage below is one Grafana would silently ignore."""
    source = load(ROOT / "dashboards" / "trading-telemetry.json")
    stat = next(i for i, p in enumerate(source["panels"]) if p["type"] == "stat")

    typo = copy.deepcopy(source)
    typo["panels"][stat]["fieldConfg"] = typo["panels"][stat].pop("fieldConfig")
    assert any("fieldConfg dropped" in p for p in lost(typo, round_trip(typo)[1]))

    old_graph = copy.deepcopy(source)
    old_graph["panels"][stat]["type"] = "graph"  # removed in Grafana 11: no schema
    assert any("options untyped" in p for p in untyped(round_trip(old_graph)[0]))

    loki = copy.deepcopy(source)
    loki["panels"][stat]["targets"][0]["datasource"] = {"type": "loki", "uid": "logs"}
    assert any("datasource" in p for p in untyped(round_trip(loki)[0]))
