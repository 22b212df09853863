"""Configuration docs, .env.sample, the chart and the Makefiles cannot drift from the
settings the code reads: every prefix, every variable, both directions."""

from __future__ import annotations

import dataclasses
import re
import typing

import config_docs
import pytest
from support import ROOT
from telemetry_contract.settings_source import (
    PARSE,
    load_settings,
    optional_inner,
    read_dotenv,
    variables,
)

DOC = ROOT / "docs" / "configuration.md"
KNOWN = {name for source in config_docs.SOURCES for name in variables(source.cls, source.prefix)}
PREFIXES = {source.prefix for source in config_docs.SOURCES}
#: Variables named with TT_ that are no service's setting: an extraEnv example in the
#: chart's tests, mk/common.mk's include guard, and the test suite's own knobs (TT_TEST_*).
NOT_SETTINGS = {"TT_EXTRA", "TT_COMMON_MK"}
TEST_KNOBS = "TT_TEST_"
TABLE_ROW = re.compile(r"^\| `(TT_[A-Z0-9_]+)` \|", re.M)
TT_NAME = re.compile(r"\bTT_[A-Z0-9_]*[A-Z0-9]\b")


def test_every_service_prefix_is_a_source() -> None:
    """A service that declares a prefix of its own is in the generated doc too."""
    declared = set()
    for path in [*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("scripts/*.py")]:
        declared |= set(re.findall(r'^\w*PREFIX = "(TT_[A-Z]+_)"', path.read_text(), re.M))
    assert declared == PREFIXES
    assert PREFIXES == {
        "TT_SIDECAR_",
        "TT_PUBLISHER_",
        "TT_BENCH_",
        "TT_OPERATOR_",
        "TT_PROMETHEUS_",
    }


def test_the_doc_tables_match_the_settings_classes() -> None:
    assert config_docs.main(["--check", "--doc", str(DOC)]) == 0, "run `make config-docs`"


def test_every_setting_is_documented_and_every_documented_variable_exists() -> None:
    documented = TABLE_ROW.findall(DOC.read_text())
    assert len(documented) == len(set(documented)), "a variable has two rows"
    assert set(documented) == KNOWN, (set(documented) - KNOWN, KNOWN - set(documented))


def test_a_changed_or_new_setting_is_caught() -> None:
    """The drift check can fail: an edited row, a removed table, a field without a doc."""
    text = DOC.read_text()
    edited = text.replace(
        "| `TT_SIDECAR_HTTP_PORT` | int | `8001` |", "| `TT_SIDECAR_HTTP_PORT` | int | `8011` |"
    )
    assert edited != text and config_docs.render(edited) == text
    start = config_docs.start_marker("TT_BENCH_")
    with pytest.raises(SystemExit, match="markers"):
        config_docs.render(text.replace(start, ""))

    undocumented = dataclasses.make_dataclass("Undocumented", [("port", int, 1)], frozen=True)
    with pytest.raises(SystemExit, match="TT_X_PORT: declare the field with setting"):
        config_docs.table(config_docs.Source("TT_X_", undocumented))


def test_every_tt_variable_the_repo_sets_is_a_real_setting() -> None:
    """The chart, the Makefiles and the docs set variables by name; a typo there would be
    ignored by the service (with a warning nobody reads in a pod log)."""
    places = [
        *ROOT.glob("charts/trading-telemetry/templates/*.yaml"),
        *ROOT.glob("charts/trading-telemetry/*.yaml"),
        ROOT / "Makefile",
        *ROOT.glob("mk/*.mk"),
        *ROOT.glob("docs/*.md"),
        ROOT / "README.md",
        ROOT / ".env.sample",
        ROOT / "docker-compose.infra.yml",
    ]
    unknown = {}
    for path in places:
        names = set(TT_NAME.findall(path.read_text())) - KNOWN - NOT_SETTINGS
        # `TT_BENCH_<OPTION>`-style patterns and prefixes are words, not variables.
        names = {n for n in names if f"{n}_" not in PREFIXES and not n.endswith("_ALERT")}
        names = {n for n in names if not n.startswith(TEST_KNOBS)}
        if names:
            unknown[str(path.relative_to(ROOT))] = sorted(names)
    assert not unknown, unknown


def test_env_sample_names_only_real_settings() -> None:
    sample = read_dotenv(ROOT / ".env.sample")
    assert sample, ".env.sample is empty"
    assert set(sample) <= KNOWN, set(sample) - KNOWN
    commented = set(re.findall(r"^# (TT_[A-Z_]+)=", (ROOT / ".env.sample").read_text(), re.M))
    assert commented <= KNOWN


def test_env_sample_values_load_into_the_settings() -> None:
    """The sample shows the defaults: loading it changes nothing, for every prefix."""
    sample = read_dotenv(ROOT / ".env.sample")
    for source in config_docs.SOURCES:
        assert load_settings(source.cls, source.prefix, sample) == source.cls(), source.prefix


@pytest.mark.parametrize("source", config_docs.SOURCES, ids=lambda s: s.prefix)
def test_every_numeric_setting_has_a_range_check(source: config_docs.Source) -> None:
    """A bare int/float field takes any number (a port of 99999, a size of -1) and fails
    later, deep inside a socket call: each one names its allowed range instead."""
    hints = typing.get_type_hints(source.cls)
    for name, field in variables(source.cls, source.prefix).items():
        kind = optional_inner(hints[field.name]) or hints[field.name]
        if kind in (int, float):
            assert PARSE in field.metadata, f"{name}: give it a range check (parse=...)"
