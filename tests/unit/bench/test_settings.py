"""``TT_BENCH_*`` settings and the ``trading-bench`` options over them: one set of checks."""

from __future__ import annotations

import dataclasses

import pytest
from telemetry_contract.cli import overlay
from trading_bench import settings
from trading_bench.cli import parser
from trading_bench.settings import BenchSettings


def test_every_option_is_a_setting_and_every_setting_an_option() -> None:
    fields = {field.name for field in dataclasses.fields(BenchSettings)}
    dests = {a.dest for a in parser()._actions} - {"help", "version", "mode"}
    assert dests == fields


def test_the_environment_sets_every_option() -> None:
    loaded = settings.load(
        {
            "TT_BENCH_ADDRESS": "tcp://sidecar:5555",
            "TT_BENCH_SIDECAR_URL": "http://a:8001,http://b:8001",
            "TT_BENCH_EVENTS": "20000",
            "TT_BENCH_RATE": "1000,0,2000",
            "TT_BENCH_DURATION": "2.5",
            "TT_BENCH_RUN_ID": "r1",
            "TT_BENCH_RESULTS_DIR": "/tmp/out",
            "TT_BENCH_TERMINATION_LOG": "/dev/termination-log",
            "TT_BENCH_SNDHWM": "0",
            "TT_BENCH_NO_REPORT": "1",
            "TT_BENCH_NO_PROGRESS": "true",
            "TT_BENCH_NO_PLOT": "yes",
        }
    )
    assert loaded == BenchSettings(
        address="tcp://sidecar:5555",
        sidecar_url="http://a:8001,http://b:8001",
        events=20000,
        rate=(1000.0, 2000.0),
        duration=2.5,
        run_id="r1",
        results_dir="/tmp/out",
        termination_log="/dev/termination-log",
        sndhwm=0,
        no_report=True,
        no_progress=True,
        no_plot=True,
    )
    # Parsed against those defaults, no option given: the environment's settings, as is.
    assert overlay(loaded, parser(loaded).parse_args(["burst"])) == loaded


def test_an_option_wins_over_the_environment() -> None:
    loaded = settings.load({"TT_BENCH_EVENTS": "20000", "TT_BENCH_NO_PLOT": "1"})
    args = parser(loaded).parse_args(["burst", "--events", "5", "--no-report"])
    assert overlay(loaded, args) == dataclasses.replace(loaded, events=5, no_report=True)


def test_empty_optional_values_mean_unset() -> None:
    assert settings.load({"TT_BENCH_ADDRESS": "", "TT_BENCH_EVENTS": ""}) == BenchSettings()


@pytest.mark.parametrize(
    ("name", "raw", "reason"),
    [
        ("TT_BENCH_EVENTS", "notanumber", "must be a whole number >= 1"),
        ("TT_BENCH_EVENTS", "0", "must be >= 1"),
        ("TT_BENCH_RATE", "1000,nan", "rates must be > 0"),
        ("TT_BENCH_RATE", "fast", "not a rate"),
        ("TT_BENCH_DURATION", "-1", "must be seconds > 0"),
        ("TT_BENCH_SNDHWM", "-1", "must be >= 0"),
        ("TT_BENCH_ADDRESS", "localhost:5555", "must be a ZeroMQ address"),
        ("TT_BENCH_SIDECAR_URL", "127.0.0.1:8001", "must be http(s)://host:port"),
        ("TT_BENCH_NO_PLOT", "please", "expected one of"),
    ],
)
def test_a_bad_value_is_refused_with_the_variable_and_the_reason(
    name: str, raw: str, reason: str
) -> None:
    with pytest.raises(ValueError) as caught:
        settings.load({name: raw})
    assert str(caught.value).startswith(f"{name}={raw!r}: ") and reason in str(caught.value)


def test_the_same_checks_refuse_a_bad_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["burst", "--events", "0"])
    assert "argument --events: must be >= 1, got '0'" in capsys.readouterr().err


@pytest.mark.parametrize("address", ["ipc:///tmp/x", "inproc://bench", "tcp://[::1]:5555"])
def test_zmq_addresses_other_than_tcp_host_port_are_accepted(address: str) -> None:
    assert settings.zmq_address(address) == address


def test_rate_takes_a_list_and_zero_keeps_meaning_the_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert parser().parse_args(["sustained", "--rate", "1000,10000"]).rate == (1000.0, 10000.0)
    from_env = settings.load({"TT_BENCH_RATE": "500"})
    assert parser(from_env).parse_args(["sustained"]).rate == (500.0,)
    assert parser().parse_args(["sustained", "--rate", "0"]).rate == ()  # -> the defaults
    with pytest.raises(SystemExit):
        parser().parse_args(["sustained", "--rate", "-1"])
    assert "rates must be > 0" in capsys.readouterr().err
