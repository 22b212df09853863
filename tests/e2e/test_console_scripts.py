"""Every console script as a newcomer meets it: ``--version``, ``--help`` with defaults,
one help style, and a bad setting or argument as one line with exit code 2, no traceback."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
from pathlib import Path

import pytest
from support import BIN, ROOT

#: script → (distribution it reports the version of, a bad setting for it).
SCRIPTS = {
    "trading-sidecar": ("trading-sidecar", {"TT_SIDECAR_HTTP_PORT": "notaport"}),
    "trading-ui": ("trading-publisher", {"TT_PUBLISHER_UI_PORT": "notaport"}),
    "trading-publisher-http": ("trading-publisher", {"TT_PUBLISHER_HTTP_PORT": "notaport"}),
    "trading-bench": ("trading-bench", {"TT_BENCH_EVENTS": "notanumber"}),
    # Reads no environment: its bad input is an --out that is a file, not a folder.
    "trading-sidecar-keys": ("trading-sidecar", {}),
}


def run(
    script: str, *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_version(script: str) -> None:
    result = run(script, "--version")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(rf"{script} \d+\.\d+\.\d+\S*\n", result.stdout), result.stdout


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_shows_defaults_in_one_style(script: str) -> None:
    result = run(script, "--help")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"usage: {script} "), out
    assert "--version" in out and "options:" in out, out
    assert "(default" in out, f"{script} --help shows no defaults:\n{out}"
    assert "TT_" in out, f"{script} --help does not say which env vars it reads:\n{out}"


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_a_bad_setting_is_one_line_and_exit_2(script: str, tmp_path: Path) -> None:
    _, bad = SCRIPTS[script]
    args = {"trading-bench": ["burst"], "trading-sidecar-keys": ["--out", "a-file"]}
    (tmp_path / "a-file").write_text("not a folder")
    result = run(script, *args.get(script, []), env=bad, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    value = next(iter(bad.values()), "a-file")
    assert script in lines[0] and value in lines[0], lines[0]
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["burst", "--events", "-5"],
        ["burst", "--events", "0"],
        ["hotpath", "--events", "1.5"],
        ["sustained", "--rate", "-1000"],
        ["sustained", "--rate", "1000,nan"],
        ["sustained", "--rate", "inf"],
        ["sustained", "--duration", "0"],
        ["sustained", "--duration", "-2"],
        ["burst", "--sndhwm", "-1"],
        ["burst", "--run-id", "has space"],
        ["burst", "--address", "localhost:5555"],
        ["burst", "--address", "tcp://127.0.0.1:notaport"],
        ["burst", "--address", "tcp://127.0.0.1:5555", "--sidecar-url", "127.0.0.1:8001"],
        ["nomode"],
    ],
    ids=lambda a: " ".join(a),
)
def test_bench_refuses_invalid_arguments_before_running_anything(
    args: list[str], tmp_path: Path
) -> None:
    results = tmp_path / "results"
    result = run("trading-bench", *args, "--results-dir", str(results), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("trading-bench: error: "), result.stderr
    assert result.stdout == "" and not results.exists(), "something ran"


def test_bench_refuses_invalid_settings_from_the_environment(tmp_path: Path) -> None:
    result = run("trading-bench", "sustained", env={"TT_BENCH_DURATION": "-1"}, cwd=tmp_path)
    # The variable that was set, and why it was refused.
    assert result.returncode == 2 and "TT_BENCH_DURATION" in result.stderr, result.stderr
    assert "must be seconds > 0" in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""


def test_bench_progress_bars_only_on_a_terminal(tmp_path: Path) -> None:
    """A bar redraws with \\r: a terminal shows one line, a piped log would keep them all."""
    args = ["burst", "--events", "30000", "--no-report", "--no-plot"]
    piped = run("trading-bench", *args, "--results-dir", str(tmp_path / "a"), cwd=tmp_path)
    assert piped.returncode == 0, piped.stderr
    assert "\r" not in piped.stderr + piped.stdout

    # The same run with stderr on a pseudo-terminal draws its bar.
    leader, follower = pty.openpty()
    # 24 x 120: a fresh pty is 0 columns wide, and a 0-wide bar draws nothing.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    try:
        with subprocess.Popen(
            [str(BIN / "trading-bench"), *args, "--results-dir", str(tmp_path / "b")],
            stdout=subprocess.DEVNULL,
            stderr=follower,
            cwd=tmp_path,
        ) as proc:
            os.close(follower)
            drawn = b""
            while True:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                drawn += chunk
            assert proc.wait(120) == 0, drawn
    finally:
        os.close(leader)
    assert b"\r" in drawn and b"burst" in drawn, drawn


#: script → out-of-range settings (each once): a port above 65535 was an OverflowError
#: traceback; a size or duration out of range failed later or not at all.
OUT_OF_RANGE: list[tuple[str, dict[str, str], list[str], str]] = [
    ("trading-sidecar", {"TT_SIDECAR_HTTP_PORT": "99999"}, [], "1-65535"),
    ("trading-sidecar", {"TT_SIDECAR_PROBE_PORT": "70000"}, [], "or 0 for none"),
    ("trading-sidecar", {"TT_SIDECAR_ZMQ_BIND": "tcp://127.0.0.1:99999"}, [], "1-65535"),
    ("trading-sidecar", {"TT_SIDECAR_RCVHWM": "0"}, [], ">= 1"),
    ("trading-sidecar", {"TT_SIDECAR_STALL_SECONDS": "-1"}, [], "> 0"),
    ("trading-sidecar", {"TT_SIDECAR_METRICS_CONCURRENCY": "0"}, [], "1-1000"),
    ("trading-sidecar", {}, ["--http-port", "99999"], "1-65535"),
    ("trading-ui", {"TT_PUBLISHER_UI_PORT": "99999"}, [], "1-65535"),
    ("trading-ui", {}, ["--ui-port", "1_000"], "1-65535"),
    ("trading-ui", {"TT_PUBLISHER_MAX_QUEUE_BYTES": "-5"}, [], ">= 1024"),
    ("trading-publisher-http", {"TT_PUBLISHER_HTTP_PORT": "99999"}, [], "1-65535"),
    ("trading-publisher-http", {"TT_PUBLISHER_BATCH_SIZE": "0"}, [], "1-1024"),
    ("trading-publisher-http", {}, ["--zmq-connect", "tcp://127.0.0.1:0"], "1-65535"),
    ("trading-bench", {"TT_BENCH_ADDRESS": "tcp://127.0.0.1:99999"}, ["burst"], "tcp://host"),
    ("trading-bench", {"TT_BENCH_EVENTS": "0"}, ["burst"], ">= 1"),
]


@pytest.mark.parametrize(
    ("script", "env", "args", "allowed"),
    OUT_OF_RANGE,
    ids=[f"{s}-{next(iter(e), ' '.join(a))}" for s, e, a, _ in OUT_OF_RANGE],
)
def test_an_out_of_range_setting_names_it_and_the_range_before_anything_starts(
    script: str, env: dict[str, str], args: list[str], allowed: str, tmp_path: Path
) -> None:
    result = run(script, *args, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stdout + result.stderr, result.stderr
    named = next(iter(env), args[0] if args and args[0].startswith("--") else "")
    assert named in lines[0] and allowed in lines[0], lines[0]
    assert result.stdout == "" and not (tmp_path / "results").exists(), "something ran"
