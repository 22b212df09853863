"""The console scripts' shared command-line layer: every option of every service is a
settings field, so ``overlay`` carries it, and the loaded settings are the defaults."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from telemetry_contract.cli import new_parser, overlay
from trading_bench import cli as bench_cli
from trading_bench import settings as bench_settings
from trading_publisher import settings as publisher_settings
from trading_publisher import trade_api, ui_launcher
from trading_sidecar import main as sidecar_main
from trading_sidecar import settings as sidecar_settings

#: script → (its parser over given settings, its settings loader, one env var and its value).
SCRIPTS: dict[str, tuple[Callable[[Any], argparse.ArgumentParser], Callable[..., Any], str]] = {
    "trading-sidecar": (sidecar_main.build_parser, sidecar_settings.load, "TT_SIDECAR_HTTP_PORT"),
    "trading-publisher-http": (
        trade_api.build_parser,
        publisher_settings.load,
        "TT_PUBLISHER_HTTP_PORT",
    ),
    "trading-ui": (ui_launcher.build_parser, publisher_settings.load, "TT_PUBLISHER_UI_PORT"),
    "trading-bench": (bench_cli.parser, bench_settings.load, "TT_BENCH_EVENTS"),
}
NOT_OPTIONS = {"help", "version", "mode"}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_option_is_a_settings_field(script: str) -> None:
    build, load, _ = SCRIPTS[script]
    defaults = load({})
    fields = {field.name for field in dataclasses.fields(defaults)}
    dests = {action.dest for action in build(defaults)._actions} - NOT_OPTIONS
    assert dests and dests <= fields, dests - fields


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_an_environment_value_is_the_option_default_and_survives_the_overlay(script: str) -> None:
    build, load, variable = SCRIPTS[script]
    loaded = load({variable: "4242"})
    argv = ["burst"] if script == "trading-bench" else []
    args, _ = build(loaded).parse_known_args(argv)
    assert overlay(loaded, args) == loaded
    field = variable.split("_", 2)[2].lower()
    assert getattr(overlay(loaded, args), field) == 4242


def test_new_parser_shows_defaults_and_says_what_unset_means(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = new_parser("demo", "A demo.", "trading-telemetry-not-installed")
    parser.add_argument("--port", type=int, default=80, help="a port")
    parser.add_argument("--url", default=None, help="unset: none")
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    out = capsys.readouterr().out
    assert "a port (default: 80)" in out and "unset: none\n" in out
    with pytest.raises(SystemExit) as caught:
        parser.parse_args(["--port", "x"])
    assert caught.value.code == 2
    assert capsys.readouterr().err.startswith("demo: error: argument --port")
