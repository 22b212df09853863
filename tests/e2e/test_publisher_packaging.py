"""The bare client stays lean: what ``pip install trading-publisher`` brings, read from the lock.

A trading host imports the client and nothing else; Streamlit and friends (~275 MB with
pandas and pyarrow) belong to the UI extra, the ASGI stack to the HTTP extra.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from support import ROOT

#: Never in the bare client's dependency closure.
HEAVY = {"streamlit", "pandas", "pyarrow", "starlette", "uvicorn"}


def _uv() -> list[str]:
    found = os.environ.get("UV") or shutil.which("uv")
    return [found] if found else ["python3", "-m", "uv"]


def locked_packages(package: str, *extras: str) -> set[str]:
    """Package names ``uv export`` resolves for ``package`` (+ extras) from uv.lock."""
    args = [*_uv(), "export", "--package", package, "--no-dev", "--frozen", "--no-hashes"]
    for extra in extras:
        args += ["--extra", extra]
    out = subprocess.run(
        args, cwd=ROOT, check=True, capture_output=True, text=True, timeout=120
    ).stdout
    names = set()
    for line in out.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-e "):
            names.add(line.rsplit("/", 1)[-1].replace("_", "-"))
            continue
        names.add(re.split(r"[=<>~!; \[]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_the_bare_client_pulls_nothing_heavy() -> None:
    bare = locked_packages("trading-publisher")
    assert not bare & HEAVY, f"reach the bare client: {sorted(bare & HEAVY)}"
    assert {"pyzmq", "msgspec"} <= bare
    # The check can fail: the extras do bring them.
    assert {"streamlit", "pandas", "pyarrow"} <= locked_packages("trading-publisher", "ui")
    assert {"starlette", "uvicorn"} <= locked_packages("trading-publisher", "http")


def test_the_contract_does_not_pull_pyzmq() -> None:
    assert "pyzmq" not in locked_packages("telemetry-contract")


@pytest.mark.parametrize(
    ("hidden", "command"),
    [
        ("starlette", "trading_publisher.extras:http_main"),
        ("streamlit", "trading_publisher.ui_launcher:main"),
    ],
)
def test_a_missing_extra_is_one_clear_line(hidden: str, command: str) -> None:
    module, func = command.split(":")
    code = f"import sys; sys.modules[{hidden!r}] = None\nfrom {module} import {func}; {func}([])"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    extra = "http" if hidden == "starlette" else "ui"
    assert f"trading-publisher[{extra}]" in lines[0] and hidden in lines[0]
