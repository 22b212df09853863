"""`make help` is complete and aligned; `make infra-up` says, in one line, which of
docker, its compose plugin or a running engine is missing (a stand-in ``docker`` on
PATH plays each failure: no engine can run on the test machines). The MVP's
`make apps-up` and `make open` still work; the first `make sync` says what it does."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support import ROOT, free_port


def make(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"PATH": path} if path is not None else {})}
    return subprocess.run(
        [shutil.which("make") or "make", "--no-print-directory", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def phony_targets() -> set[str]:
    names: set[str] = set()
    for makefile in [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))]:
        for line in makefile.read_text().splitlines():
            if line.startswith(".PHONY:"):
                names.update(line.removeprefix(".PHONY:").split())
    return names


def test_help_lists_every_target_aligned() -> None:
    result = make("help")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    listed = {line.split()[1] for line in lines}
    missing = phony_targets() - listed
    assert not missing, f"make help omits {sorted(missing)}"
    assert "clean" in listed
    columns = {re.match(r"  make \S+\s+", line).end() for line in lines}  # type: ignore[union-attr]
    assert len(columns) == 1, f"descriptions start at columns {columns}:\n{result.stdout}"


def _bin_with(tmp_path: Path, docker_script: str | None) -> str:
    """A PATH with bash (make's SHELL) and, optionally, a stand-in ``docker``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "uv", "python3"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    if docker_script is not None:
        docker = bin_dir / "docker"
        docker.write_text("#!/bin/bash\n" + docker_script)
        docker.chmod(0o755)
    return str(bin_dir)


@pytest.mark.parametrize(
    ("docker_script", "expected"),
    [
        (None, "docker is not installed"),
        ('[ "$1" = compose ] && { echo "unknown shorthand flag: \'f\'" >&2; exit 1; }\n',
         "compose plugin is missing"),
        ('[ "$1" = info ] && { echo "Cannot connect to the Docker daemon" >&2; exit 1; }\n'
         "exit 0\n", "engine is not running"),
    ],
    ids=["no-docker", "no-compose", "no-engine"],
)  # fmt: skip
@pytest.mark.parametrize("target", ["infra-up", "infra-down"])
def test_infra_targets_name_what_is_missing_in_one_line(
    tmp_path: Path, target: str, docker_script: str | None, expected: str
) -> None:
    result = make(target, path=_bin_with(tmp_path, docker_script))
    assert result.returncode != 0
    ours = [line for line in result.stdout.splitlines() if line.strip()]
    assert ours == [f"{target}: " + ours[0].split(": ", 1)[1]] and expected in ours[0], (
        result.stdout + result.stderr
    )
    assert "unknown shorthand" not in result.stdout + result.stderr


def test_apps_up_is_make_run_under_the_mvps_name() -> None:
    """``make apps-up`` runs exactly the commands ``make run`` runs."""
    run, apps_up = make("-n", "run"), make("-n", "apps-up")
    assert run.returncode == 0 and apps_up.returncode == 0, apps_up.stderr
    assert "run_local.py" in run.stdout
    assert apps_up.stdout == run.stdout


class _Ok(BaseHTTPRequestHandler):
    """Stands in for a running UI: every path answers 200."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def running_ui() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _open_env(ui_port: int, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")
    }
    return {
        **env,
        "TT_PUBLISHER_UI_PORT": str(ui_port),
        "TT_PROMETHEUS_PORT": str(free_port()),  # nothing listens there
        **extra,
    }


def test_make_open_prints_the_urls_where_no_browser_can_be_opened(running_ui: int) -> None:
    done = subprocess.run(
        ["make", "--no-print-directory", "open"], cwd=ROOT, env=_open_env(running_ui),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    ui = next(line for line in lines if "Trading UI" in line)
    assert f"http://127.0.0.1:{running_ui}" in ui and "(running)" in ui, done.stdout
    prometheus = next(line for line in lines if "Prometheus (make run)" in line)
    assert "(not running)" in prometheus and "/graph?" in prometheus, done.stdout
    assert any("Grafana" in line for line in lines), done.stdout
    assert "No browser can be opened here" in done.stdout


def test_make_open_opens_what_runs_in_the_browser(running_ui: int, tmp_path: Path) -> None:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/bash\necho "$@" >> {opened}\n')
    browser.chmod(0o755)
    done = subprocess.run(
        ["make", "--no-print-directory", "open"], cwd=ROOT,
        env=_open_env(running_ui, BROWSER=str(browser)),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "opened in the browser" in done.stdout
    urls = opened.read_text().split()
    # What answers is opened (the UI); what does not (this Prometheus) is not.
    assert f"http://127.0.0.1:{running_ui}" in urls, urls
    assert not any("/graph?" in url for url in urls), urls


def test_make_open_says_when_nothing_runs() -> None:
    done = subprocess.run(
        ["make", "--no-print-directory", "open"], cwd=ROOT, env=_open_env(free_port()),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "Nothing is running: start it with `make run`" in done.stdout


def test_the_first_sync_says_what_it_is_doing(tmp_path: Path) -> None:
    """The first ``make run`` installs for about a minute: it must not look hung.

    A stand-in ``uv`` (make's ``UV``) plays the install; the Makefile runs in an empty
    folder, as in a fresh clone, then again once ``.venv`` exists.
    """
    fake_uv = tmp_path / "uv"
    fake_uv.write_text('#!/bin/bash\necho "uv $*"\n')
    fake_uv.chmod(0o755)
    clone = tmp_path / "clone"
    clone.mkdir()
    args = ["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "sync", f"UV={fake_uv}"]
    first = subprocess.run(args, cwd=clone, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    said, ran = first.stdout.splitlines()[:2]
    assert "creating .venv" in said and "first run only" in said, first.stdout
    assert ran.startswith("uv sync"), first.stdout
    (clone / ".venv" / "bin").mkdir(parents=True)
    (clone / ".venv" / "bin" / "python").symlink_to(sys.executable)
    again = subprocess.run(args, cwd=clone, capture_output=True, text=True, timeout=60)
    assert again.stdout.splitlines() == [ran], again.stdout
