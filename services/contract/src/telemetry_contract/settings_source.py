"""Typed settings from the environment, with an optional ``.env`` file as fallback.

The one configuration story of every service (sidecar, publisher, benchmark, operator and
``make run``'s Prometheus): each declares a frozen dataclass whose fields are its settings,
declared with :func:`setting` so the field carries its own documentation, and reads it once
at start-up through :func:`load_settings`, so the rest of the code never touches
``os.environ``. Tests pass a plain mapping instead. Command-line flags are overlaid on the
loaded object with ``dataclasses.replace`` (:func:`telemetry_contract.cli.overlay`), so a
field added here is read from its variable whether or not it also gets a flag.

``docs/configuration.md`` is generated from the same dataclasses (``make config-docs``).
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

#: Field metadata keys read by the loader and the docs generator.
DOC = "doc"
PARSE = "parse"
SHOWN_DEFAULT = "shown_default"
SHOWN_TYPE = "shown_type"


def setting(
    default: T,
    doc: str,
    *,
    parse: Callable[[str], Any] | None = None,
    shown_default: str | None = None,
    shown_type: str | None = None,
) -> T:
    """A settings field with its documentation (the row ``docs/configuration.md`` shows).

    ``parse`` turns the variable's text into the value for fields a plain ``int``/``float``
    /``bool`` conversion does not fit (lists, URLs, bounded numbers) and raises
    ``ValueError`` with the reason for a bad one. ``shown_default`` / ``shown_type`` replace
    what the docs print when the literal value would mislead (``""`` meaning "derived").
    """
    metadata: dict[str, Any] = {DOC: doc}
    if parse is not None:
        metadata[PARSE] = parse
    if shown_default is not None:
        metadata[SHOWN_DEFAULT] = shown_default
    if shown_type is not None:
        metadata[SHOWN_TYPE] = shown_type
    # The Field stands in for the default, as dataclasses.field does; typed as the value.
    return dataclasses.field(default=default, metadata=metadata)


#: The largest TCP port number.
MAX_PORT = 65535


def port(text: str) -> int:
    """A TCP port to listen on or connect to: 1-65535 (refused here, not by an
    ``OverflowError`` deep inside the socket layer)."""
    return _whole(text, 1, MAX_PORT, "must be a port 1-65535")


def port_or_off(text: str) -> int:
    """A port that may be turned off: 0 (none), or 1-65535."""
    return _whole(text, 0, MAX_PORT, "must be a port 1-65535, or 0 for none")


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """A parser for a whole number in ``[low, high]`` (no upper bound without ``high``)."""
    rule = f"must be a whole number {low}-{high}" if high is not None else f"must be >= {low}"

    def parse(text: str) -> int:
        return _whole(text, low, high, rule)

    return parse


def number(
    low: float, high: float | None = None, *, low_open: bool = True
) -> Callable[[str], float]:
    """A parser for a finite number above ``low`` (or at least it, ``low_open=False``),
    at most ``high``."""
    rule = f"must be a number {'>' if low_open else '>='} {low:g}"
    if high is not None:
        rule += f" and <= {high:g}"

    def parse(text: str) -> float:
        try:
            value = _float(text)
        except ValueError:
            raise ValueError(f"{rule}, got {text!r}") from None
        below = value <= low if low_open else value < low
        if not math.isfinite(value) or below or (high is not None and value > high):
            raise ValueError(f"{rule}, got {text!r}")
        return value

    return parse


def zmq_bind(text: str) -> str:
    """A ZeroMQ bind address: ``tcp://host:port`` (port 1-65535, or ``*`` for any free
    one), ``ipc://path`` or ``inproc://name``."""
    return _zmq_endpoint(text.strip(), any_port=True)


def zmq_connect(text: str) -> str:
    """One or more comma-separated ZeroMQ addresses to connect to (port 1-65535)."""
    for part in text.split(","):
        _zmq_endpoint(part.strip(), any_port=False)
    return text


def _zmq_endpoint(text: str, *, any_port: bool) -> str:
    scheme, sep, rest = text.partition("://")
    if sep and scheme in ("ipc", "inproc") and rest:
        return text
    host, colon, port_text = rest.rpartition(":")
    ports = "1-65535" + (" or *" if any_port else "")
    rule = f"must be tcp://host:port with port {ports} (or ipc://, inproc://)"
    if not (sep and scheme == "tcp" and colon and host):
        raise ValueError(f"{rule}, got {text!r}")
    if not (any_port and port_text == "*"):
        try:
            port(port_text)
        except ValueError:
            raise ValueError(f"{rule}, got {text!r}") from None
    return text


def _float(text: str) -> float:
    """``float()`` on ASCII text without digit-group underscores (``float`` takes both)."""
    if not text.isascii() or "_" in text:
        raise ValueError(text)
    return float(text)


def _whole(text: str, low: int, high: int | None, rule: str) -> int:
    # ASCII digits only: int() would also take "1_000" and other scripts' digits.
    stripped = text.strip()
    digits = stripped.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"{rule}, got {text!r}")
    value = int(stripped)
    if value < low or (high is not None and value > high):
        raise ValueError(f"{rule}, got {text!r}")
    return value


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse ``KEY=value`` lines; comments, blanks and surrounding quotes are ignored."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def optional_inner(kind: Any) -> Any | None:
    """``X`` for ``X | None`` (or ``Optional[X]``); None for any other type."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        if len(args) == 1 and len(typing.get_args(kind)) == 2:
            return args[0]
    return None


def _convert(name: str, field: dataclasses.Field[Any], kind: Any, raw: str) -> Any:
    inner = optional_inner(kind)
    if inner is not None:
        if not raw.strip():
            return None  # set but empty: unset, as the chart writes an optional value
        kind = inner
    parse = field.metadata.get(PARSE)
    if parse is not None:
        try:
            return parse(raw)
        except ValueError as exc:
            reason = str(exc).removesuffix(f", got {raw!r}")  # the value is shown once
            raise ValueError(f"{name}={raw!r}: {reason}") from None
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"{name}={raw!r}: expected one of {sorted(_TRUE | _FALSE)}")
    if kind is int:
        try:
            return _whole(raw, -(2**63), 2**63, "expected int")
        except ValueError:
            raise ValueError(f"{name}={raw!r}: expected int") from None
    if kind is float:
        try:
            return _float(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r}: expected float") from None
    if kind is str:
        return raw
    raise TypeError(f"{name}: no conversion for {kind!r}; give the field a parse function")


def variables(cls: type[Any], prefix: str) -> dict[str, dataclasses.Field[Any]]:
    """Every variable ``cls`` reads, ``PREFIX_FIELD`` → its field, in declaration order."""
    return {f"{prefix}{field.name.upper()}": field for field in dataclasses.fields(cls)}


def load_settings(
    cls: type[T],
    prefix: str,
    environ: Mapping[str, str] | None = None,
    dotenv: Path | None = Path(".env"),
) -> T:
    """Build ``cls`` from ``PREFIX_FIELD`` variables; unset fields keep their defaults.

    With ``environ=None`` the process environment wins over ``.env``; a mapping given
    explicitly is used alone, so tests are hermetic. A bad value raises ``ValueError``
    naming the variable (``load_or_exit`` turns it into one line and exit 2). A variable
    with the prefix that is no field (a typo, a renamed setting) would otherwise be
    ignored without a word: it is logged as a warning, with the closest real name.
    """
    if environ is None:
        source: dict[str, str] = read_dotenv(dotenv) if dotenv is not None else {}
        source.update(os.environ)
    else:
        source = dict(environ)
    known = variables(cls, prefix)
    for key in sorted(source):
        if key.startswith(prefix) and key not in known:
            # Compared without the prefix, which every candidate shares.
            suffixes = [name.removeprefix(prefix) for name in known]
            close = difflib.get_close_matches(key.removeprefix(prefix), suffixes, n=1)
            hint = f"; did you mean {prefix}{close[0]}?" if close else ""
            log.warning("%s is not a setting and is ignored%s", key, hint)
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, field in known.items():
        if key in source:
            kwargs[field.name] = _convert(key, field, hints[field.name], source[key])
    return cls(**kwargs)
