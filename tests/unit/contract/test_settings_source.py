"""The one settings loader every service reads its prefix through, and the CLI overlay."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from telemetry_contract.cli import USAGE_ERROR, argument_type, load_or_exit, overlay
from telemetry_contract.settings_source import (
    DOC,
    load_settings,
    number,
    port,
    port_or_off,
    read_dotenv,
    setting,
    variables,
    whole_number,
    zmq_bind,
    zmq_connect,
)

PREFIX = "TT_DEMO_"


def _even(text: str) -> int:
    number = int(text)
    if number % 2:
        raise ValueError(f"must be even, got {number}")
    return number


@dataclass(frozen=True)
class Demo:
    name: str = setting("demo", "a string")
    port: int = setting(1234, "an int")
    ratio: float = setting(0.5, "a float")
    verbose: bool = setting(False, "a flag")
    limit: int | None = setting(None, "optional: empty means unset")
    pairs: int = setting(2, "checked by its own parse function", parse=_even)


def load(environ: dict[str, str]) -> Demo:
    return load_settings(Demo, PREFIX, environ)


def test_unset_variables_keep_the_defaults() -> None:
    assert load({}) == Demo()
    assert load({"OTHER": "1", "TT_OTHER_PORT": "9"}) == Demo()


def test_each_type_is_converted_from_its_variable() -> None:
    loaded = load(
        {
            "TT_DEMO_NAME": "x",
            "TT_DEMO_PORT": "80",
            "TT_DEMO_RATIO": "1e-3",
            "TT_DEMO_VERBOSE": "Yes",
            "TT_DEMO_LIMIT": "7",
            "TT_DEMO_PAIRS": "4",
        }
    )
    assert loaded == Demo("x", 80, 0.001, True, 7, 4)
    assert load({"TT_DEMO_VERBOSE": "off"}).verbose is False


def test_an_empty_optional_value_means_unset() -> None:
    assert load({"TT_DEMO_LIMIT": ""}).limit is None
    assert load({"TT_DEMO_LIMIT": "  "}).limit is None


@pytest.mark.parametrize(
    ("name", "raw", "reason"),
    [
        ("TT_DEMO_PORT", "eighty", "expected int"),
        ("TT_DEMO_RATIO", "half", "expected float"),
        ("TT_DEMO_VERBOSE", "maybe", "expected one of"),
        ("TT_DEMO_LIMIT", "many", "expected int"),
        ("TT_DEMO_PAIRS", "3", "must be even, got 3"),
        ("TT_DEMO_PAIRS", "two", "invalid literal"),
    ],
)
def test_a_bad_value_names_the_variable_its_value_and_why(name: str, raw: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        load({name: raw})
    message = str(caught.value)
    assert message.startswith(f"{name}={raw!r}: ") and reason in message, message


def test_a_type_without_a_conversion_is_a_programming_error() -> None:
    @dataclass(frozen=True)
    class Listy:
        items: tuple[int, ...] = ()

    assert load_settings(Listy, PREFIX, {}) == Listy()  # unset: never converted
    with pytest.raises(TypeError, match="TT_DEMO_ITEMS"):
        load_settings(Listy, PREFIX, {"TT_DEMO_ITEMS": "1,2"})


def test_dotenv_is_a_fallback_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# comment\n\nexport TT_DEMO_PORT='9202'\nTT_DEMO_NAME=\"from file\"\nTT_DEMO_RATIO=2\n"
    )
    monkeypatch.delenv("TT_DEMO_PORT", raising=False)
    monkeypatch.delenv("TT_DEMO_NAME", raising=False)
    monkeypatch.setenv("TT_DEMO_RATIO", "3")
    loaded = load_settings(Demo, PREFIX, None, dotenv)
    assert (loaded.port, loaded.name, loaded.ratio) == (9202, "from file", 3.0)
    # No .env: the environment alone; an explicit mapping: that mapping alone.
    assert load_settings(Demo, PREFIX, None, None).port == 1234
    assert load_settings(Demo, PREFIX, None, tmp_path / "missing.env").port == 1234
    assert load_settings(Demo, PREFIX, {}, dotenv) == Demo()


def test_read_dotenv_strips_quotes_exports_and_comments(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("# c\nA=1\nexport B = 'two'\nC=\"3\"\nnot a pair\n  \nD=a=b\n")
    assert read_dotenv(path) == {"A": "1", "B": "two", "C": "3", "D": "a=b"}
    assert read_dotenv(tmp_path / "absent") == {}


def test_an_unknown_variable_with_the_prefix_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="telemetry_contract.settings_source"):
        assert load({"TT_DEMO_PROT": "80", "TT_DEMO_ZZZ": "1", "TT_OTHER_X": "1"}) == Demo()
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "TT_DEMO_PROT is not a setting and is ignored; did you mean TT_DEMO_PORT?",
        "TT_DEMO_ZZZ is not a setting and is ignored",
    ]


def test_variables_lists_every_field_in_order_with_its_doc() -> None:
    names = variables(Demo, PREFIX)
    assert list(names) == [f"TT_DEMO_{f.name.upper()}" for f in dataclasses.fields(Demo)]
    assert names["TT_DEMO_PORT"].metadata[DOC] == "an int"


def test_load_or_exit_turns_a_bad_value_into_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        load_or_exit(lambda: load({"TT_DEMO_PORT": "x"}), "demo-prog")
    assert caught.value.code == USAGE_ERROR
    assert capsys.readouterr().err == "demo-prog: bad setting: TT_DEMO_PORT='x': expected int\n"


def test_overlay_replaces_the_options_given_and_keeps_every_other_field() -> None:
    """The bug a field-by-field rebuild invites: a setting without a flag lost on the way."""
    loaded = load({"TT_DEMO_NAME": "env", "TT_DEMO_PORT": "80", "TT_DEMO_LIMIT": "9"})
    parser = argparse.ArgumentParser()
    parser.add_argument("mode")  # an argument that is no field is left alone
    parser.add_argument("--port", type=int, default=loaded.port)
    parser.add_argument("--verbose", action="store_true", default=loaded.verbose)
    merged = overlay(loaded, parser.parse_args(["run", "--port", "81"]))
    assert merged == dataclasses.replace(loaded, port=81)
    assert merged.name == "env" and merged.limit == 9
    # Without the option, the environment's value stands.
    assert overlay(loaded, parser.parse_args(["run"])) == loaded


# --- the range checks every service's numeric settings use -----------------------------


@pytest.mark.parametrize(
    ("parse", "raw", "expected"),
    [
        (port, "1", 1),
        (port, "65535", 65535),
        (port, " 8001 ", 8001),
        (port_or_off, "0", 0),
        (whole_number(1), "1000000", 1_000_000),
        (whole_number(1, 1024), "1024", 1024),
        (number(0), "0.001", 0.001),
        (number(0, 1, low_open=False), "0", 0.0),
        (number(0, 1, low_open=False), "1", 1.0),
        (zmq_bind, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*"),
        (zmq_bind, "tcp://[::1]:5555", "tcp://[::1]:5555"),
        (zmq_bind, "ipc:///tmp/sidecar", "ipc:///tmp/sidecar"),
        (zmq_connect, "tcp://a:1,tcp://b:2", "tcp://a:1,tcp://b:2"),
    ],
)
def test_range_checks_accept_what_they_promise(parse: Any, raw: str, expected: Any) -> None:
    assert parse(raw) == expected


@pytest.mark.parametrize(
    ("parse", "raw", "rule"),
    [
        (port, "99999", "must be a port 1-65535"),  # was an OverflowError traceback
        (port, "65536", "must be a port 1-65535"),
        (port, "0", "must be a port 1-65535"),
        (port, "-1", "must be a port 1-65535"),
        (port, "1_000", "must be a port 1-65535"),  # int() takes it
        (port, "\u0668\u0660\u0660\u0661", "must be a port 1-65535"),  # Arabic-Indic 8001
        (port, "80.0", "must be a port 1-65535"),
        (port_or_off, "70000", "or 0 for none"),
        (whole_number(1), "0", "must be >= 1"),
        (whole_number(1, 1024), "1025", "must be a whole number 1-1024"),
        (number(0), "0", "must be a number > 0"),
        (number(0), "nan", "must be a number > 0"),
        (number(0), "inf", "must be a number > 0"),
        (number(0), "1_0", "must be a number > 0"),
        (number(0, 1, low_open=False), "1.5", "must be a number >= 0 and <= 1"),
        (zmq_bind, "tcp://127.0.0.1:99999", "port 1-65535 or *"),
        (zmq_bind, "127.0.0.1:5555", "must be tcp://host:port"),
        (zmq_connect, "tcp://b:*", "port 1-65535"),
    ],
)
def test_range_checks_name_the_allowed_range(parse: Any, raw: str, rule: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse(raw)
    assert rule in str(caught.value) and repr(raw) in str(caught.value)


def test_plain_numbers_take_ascii_digits_only() -> None:
    with pytest.raises(ValueError, match="expected int"):
        load({"TT_DEMO_PORT": "1_234"})
    with pytest.raises(ValueError, match="expected float"):
        load({"TT_DEMO_RATIO": "\u0660.5"})


def test_a_range_error_is_one_line_naming_the_setting_and_the_range() -> None:
    @dataclass(frozen=True)
    class Ports:
        http_port: int = setting(8001, "a port", parse=port)

    with pytest.raises(ValueError) as caught:
        load_settings(Ports, PREFIX, {"TT_DEMO_HTTP_PORT": "99999"})
    assert str(caught.value) == "TT_DEMO_HTTP_PORT='99999': must be a port 1-65535"


def test_argument_type_turns_the_rule_into_the_usage_error() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=argument_type(port))
    assert parser.parse_args(["--port", "8001"]).port == 8001
    with pytest.raises(argparse.ArgumentTypeError, match="must be a port 1-65535"):
        argument_type(port)("99999")
