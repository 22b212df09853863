"""The bare client stays lean: what ``pip install trading-publisher`` brings, read from the lock.

A trading host imports the client and nothing else; Streamlit and friends (~275 MB with
pandas and pyarrow) belong to the UI extra, the ASGI stack to the HTTP extra. The wheel
``uv build`` makes is installed into a fresh venv, README's example runs there, and a real
sidecar counts what it sent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT, Sidecar, value, wait_for
from telemetry_contract import metric_names as names

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


def readme_example() -> str:
    """The Python block of README's "Use it from your trading code" section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Use it from your trading code", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README's section has no python example"
    return match.group(1)


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding the two wheels ``uv build`` makes and their third-party deps, only.

    Dependencies come from uv's cache, or the index uv is configured with when the
    cache does not hold them: what a user's ``pip install`` of the wheels does.
    """
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    for package in ("telemetry-contract", "trading-publisher"):
        subprocess.run(
            [*_uv(), "build", "--package", package, "--wheel", "--out-dir", str(dist)],
            cwd=ROOT, check=True, capture_output=True, timeout=300, env=env,
        )  # fmt: skip
    wheels = sorted(str(w) for w in dist.glob("*.whl"))
    assert [Path(w).name.split("-")[0] for w in wheels] == [
        "telemetry_contract",
        "trading_publisher",
    ]
    venv = root / "venv"
    subprocess.run(
        [*_uv(), "venv", "--python", sys.executable, str(venv)],
        cwd=root, check=True, capture_output=True, timeout=120, env=env,
    )  # fmt: skip
    python = str(venv / "bin" / "python")
    install = [*_uv(), "pip", "install", "--python", python, *wheels]
    done = subprocess.run(
        [*install, "--offline"], cwd=root, capture_output=True, timeout=300, env=env
    )
    if done.returncode != 0:
        subprocess.run(install, cwd=root, check=True, capture_output=True, timeout=300, env=env)
    return venv


def test_the_wheel_alone_sends_trades_a_real_sidecar_counts(
    fresh_venv: Path, sidecar: Sidecar, tmp_path: Path
) -> None:
    python = str(fresh_venv / "bin" / "python")
    listed = subprocess.run(
        [python, "-c", "import importlib.metadata as m; "
         "print('\\n'.join(sorted(d.metadata['Name'].lower() for d in m.distributions())))"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()  # fmt: skip
    assert not set(listed) & HEAVY, f"the wheel pulled {sorted(set(listed) & HEAVY)}"
    assert {"trading-publisher", "telemetry-contract", "pyzmq", "msgspec"} <= set(listed)
    repo_parts = {"trading-sidecar", "trading-bench", "trading-operator", "trading-telemetry"}
    assert not set(listed) & repo_parts, listed

    # README's example, run as a user would: outside the checkout, in the fresh venv.
    example = tmp_path / "example.py"
    example.write_text(readme_example())
    env = {
        "PATH": os.environ.get("PATH", ""),
        "TT_PUBLISHER_ZMQ_CONNECT": sidecar.zmq_address,
    }
    done = subprocess.run(
        [python, "-I", str(example)], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "dropped=0" in done.stdout, done.stdout

    # The package face, from the wheel, not from this checkout.
    where = subprocess.run(
        [python, "-I", "-c", "import trading_publisher as t; from trading_publisher import "
         "Publisher, PublisherStats; print(t.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    assert where.startswith(str(fresh_venv)), where

    def counted() -> bool:
        s = sidecar.scrape()
        return value(s, names.TRADES, side="buy") == 3 and value(s, names.TRADES, side="sell") == 1

    wait_for(counted, what="the example's 3 buys and 1 sell counted by the sidecar")
    s = sidecar.scrape()
    assert value(s, names.VOLUME, side="buy") == 6
    assert value(s, names.VOLUME, side="sell") == 2.5
    assert value(s, names.LOST) == 0
