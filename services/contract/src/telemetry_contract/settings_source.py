"""Typed settings from the environment, with an optional ``.env`` file as fallback.

Each service declares a frozen dataclass; this reads it once at start-up so the rest of
the code never touches ``os.environ``. Tests pass a plain mapping instead.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


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


def _convert(name: str, kind: Any, raw: str) -> Any:
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
    return raw


def load_settings(
    cls: type[T],
    prefix: str,
    environ: Mapping[str, str] | None = None,
    dotenv: Path | None = Path(".env"),
) -> T:
    """Build ``cls`` from ``PREFIX_FIELD`` variables; unset fields keep their defaults.

    With ``environ=None`` the process environment wins over ``.env``; a mapping given
    explicitly is used alone, so tests are hermetic.
    """
    if environ is None:
        source: dict[str, str] = read_dotenv(dotenv) if dotenv is not None else {}
        source.update(os.environ)
    else:
        source = dict(environ)
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = f"{prefix}{field.name.upper()}"
        if key in source:
            kwargs[field.name] = _convert(key, hints[field.name], source[key])
    return cls(**kwargs)
