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
            raise ValueError(f"{name}={raw!r}: {exc}") from None
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"{name}={raw!r}: expected one of {sorted(_TRUE | _FALSE)}")
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r}: expected {kind.__name__}") from None
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
