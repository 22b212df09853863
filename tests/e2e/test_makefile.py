"""`make help` is complete and aligned; `make infra-up` says, in one line, which of
docker, its compose plugin or a running engine is missing (a stand-in ``docker`` on
PATH plays each failure: no engine can run on the test machines)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support import ROOT


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
