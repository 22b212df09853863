"""Container images, checked without a Docker engine.

No image can be built here, so these tests check what would break first: a stage layout
that ships a compiler or runs as root, a command that is not a console script of the
packages the image installs, a chart container whose command its image lacks, and a
``.dockerignore`` that drops a file the build needs. The builder stage's exact ``uv sync``
line is then run on the build context as Docker would see it, and the resulting venv, with
the context deleted (the final stage copies the venv alone), runs the image's command.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import helm_python
import pytest
from support import ROOT, free_port, start_process, wait_http_ok
from test_chart import CHART_DIR, EVERYTHING_ON, Rendered, render, workloads

#: image repository (chart values) → the Dockerfile that builds it.
DOCKERFILES = {
    "trading-telemetry-publisher": ROOT / "services" / "publisher" / "Dockerfile",
    "trading-telemetry-sidecar": ROOT / "services" / "sidecar" / "Dockerfile",
}
#: Every Dockerfile whose builder stage runs uv sync (the operator's included).
BUILT_DOCKERFILES = [*DOCKERFILES.values(), ROOT / "services" / "operator" / "Dockerfile"]
APP_UID = "10001"


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


@dataclass
class Dockerfile:
    args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def parse_dockerfile(path: Path) -> Dockerfile:
    """Instructions per stage, continuation lines joined, global ARG defaults substituted."""
    text = re.sub(
        r"\\\n",
        " ",
        "\n".join(
            line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
        ),
    )
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        keyword, _, rest = line.strip().partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ARG" and not stages:
            arg, _, default = rest.partition("=")
            args[arg] = default
        elif keyword == "FROM":
            words = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest).split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        else:
            stages[-1].instructions.append((keyword, rest))
    return Dockerfile(args, stages)


@dataclass(frozen=True)
class Member:
    name: str
    path: Path
    scripts: dict[str, str]
    workspace_deps: tuple[str, ...]


def workspace_members() -> dict[str, Member]:
    members: dict[str, Member] = {}
    for pyproject in sorted(ROOT.glob("services/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())
        sources = project.get("tool", {}).get("uv", {}).get("sources", {})
        deps = tuple(
            re.split(r"[\s<>=!~;\[]", dep, maxsplit=1)[0]
            for dep in project["project"].get("dependencies", [])
        )
        members[project["project"]["name"]] = Member(
            project["project"]["name"],
            pyproject.parent,
            project["project"].get("scripts", {}),
            tuple(d for d in deps if sources.get(d, {}).get("workspace")),
        )
    return members


def uv_sync_commands(dockerfile: Dockerfile) -> list[list[str]]:
    """Every ``uv sync`` of the builder stage, in order, from ``uv`` on."""
    commands = []
    for run in dockerfile.stage("builder").all("RUN"):
        if " uv sync " in f" {run} ":
            words = shlex.split(run)
            commands.append(words[words.index("uv") :])
    return commands


def uv_sync_command(dockerfile: Dockerfile) -> list[str]:
    """The last ``uv sync``: the one that installs the workspace packages themselves."""
    return uv_sync_commands(dockerfile)[-1]


def installed_packages(dockerfile: Dockerfile) -> set[str]:
    """The --package arguments plus every workspace member they depend on."""
    command = uv_sync_command(dockerfile)
    members = workspace_members()
    todo = [command[i + 1] for i, word in enumerate(command) if word == "--package"]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(members[name].workspace_deps)
    return seen


def installed_scripts(dockerfile: Dockerfile) -> set[str]:
    members = workspace_members()
    return {script for name in installed_packages(dockerfile) for script in members[name].scripts}


def cmd(stage: Stage) -> list[str]:
    (raw,) = stage.all("CMD")
    command: list[str] = json.loads(raw)
    return command


@pytest.fixture(scope="module", params=sorted(DOCKERFILES), ids=lambda r: r.split("-")[-1])
def dockerfile(request: pytest.FixtureRequest) -> Dockerfile:
    return parse_dockerfile(DOCKERFILES[request.param])


def test_multi_stage_from_one_slim_python_and_a_pinned_uv(dockerfile: Dockerfile) -> None:
    assert len(dockerfile.stages) >= 3, "uv, builder and final stages"
    python = dockerfile.args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", python), python
    # The venv's interpreter is a symlink into the base image: both stages must share it.
    assert dockerfile.stage("builder").image == dockerfile.final.image == python
    assert re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+", dockerfile.args["UV_IMAGE"])


def packages_of(command: list[str]) -> list[str]:
    return [command[i + 1] for i, word in enumerate(command) if word == "--package"]


@pytest.mark.parametrize("path", BUILT_DOCKERFILES, ids=lambda p: p.parent.name)
def test_builder_installs_exactly_what_the_lock_pins(path: Path) -> None:
    """--locked, not --frozen: a uv.lock that no longer matches the pyprojects fails the build."""
    dockerfile = parse_dockerfile(path)
    deps, full = uv_sync_commands(dockerfile)
    for command in (deps, full):
        for flag in ("--locked", "--no-dev", "--no-editable"):
            assert flag in command, f"{flag} missing from {command}"
        assert "--frozen" not in command, "--frozen installs from a stale lock without a word"
    assert "--no-install-workspace" in deps and "--no-install-workspace" not in full
    assert packages_of(deps) == packages_of(full) != []
    assert installed_packages(dockerfile) <= set(workspace_members())


@pytest.mark.parametrize("path", BUILT_DOCKERFILES, ids=lambda p: p.parent.name)
def test_dependency_layer_needs_only_the_lock_and_every_members_pyproject(path: Path) -> None:
    """The layer cache: source edits must not invalidate the (slow) dependency install.

    Before the first ``uv sync`` only metadata is copied, and all of it: the lock covers the
    whole workspace, so a member missing here would fail --locked.
    """
    builder = parse_dockerfile(path).stage("builder")
    before_deps: list[str] = []
    for keyword, args in builder.instructions:
        if keyword == "RUN" and " uv sync " in f" {args} ":
            break
        if keyword == "COPY" and not args.startswith("--from="):
            before_deps.extend(args.split()[:-1])
    members = {
        f"{m.path.relative_to(ROOT).as_posix()}/pyproject.toml"
        for m in workspace_members().values()
    }
    assert set(before_deps) == {"pyproject.toml", "uv.lock"} | members
    copies = builder.all("COPY")
    assert ". ." in copies, "the build context (the workspace root) is copied whole afterwards"


def test_final_stage_runs_as_non_root_without_compilers_or_source(dockerfile: Dockerfile) -> None:
    final = dockerfile.final
    (user,) = final.all("USER")
    assert user == f"{APP_UID}:{APP_UID}", "numeric, so runAsNonRoot can verify it"
    runs = " ".join(final.all("RUN"))
    assert "apt-get install" not in runs and "pip install" not in runs
    for compiler in ("gcc", "g++", "build-essential", "clang", "make "):
        assert compiler not in runs, compiler
    assert final.all("COPY") == ["--from=builder /app/.venv /app/.venv"]
    env = " ".join(final.all("ENV"))
    assert "PATH=/app/.venv/bin:$PATH" in env
    assert "HOME=/tmp" in env, "a read-only root filesystem leaves only /tmp writable"


def test_command_is_a_console_script_the_image_installs(dockerfile: Dockerfile) -> None:
    command = cmd(dockerfile.final)
    assert len(command) == 1
    assert command[0] in installed_scripts(dockerfile)


def test_publisher_image_carries_the_ui_and_the_benchmark() -> None:
    publisher = parse_dockerfile(DOCKERFILES["trading-telemetry-publisher"])
    assert cmd(publisher.final) == ["trading-ui"]
    assert {"trading-ui", "trading-bench"} <= installed_scripts(publisher)
    sidecar = parse_dockerfile(DOCKERFILES["trading-telemetry-sidecar"])
    assert cmd(sidecar.final) == ["trading-sidecar"]


def test_image_commands_are_the_scripts_make_run_starts() -> None:
    """`make run` (scripts/run_local.py) and the containers start the same programs."""
    started = set(
        re.findall(r'BIN / "(trading-[\w-]+)"', (ROOT / "scripts" / "run_local.py").read_text())
    )
    commands = {cmd(parse_dockerfile(path).final)[0] for path in DOCKERFILES.values()}
    assert commands == started


@pytest.fixture(scope="module")
def everything() -> Rendered:
    with helm_python.Chart.load(CHART_DIR) as chart:
        return render(chart, EVERYTHING_ON)


def test_every_chart_container_command_exists_in_its_image(everything: Rendered) -> None:
    checked = 0
    for obj, spec in workloads(everything):
        for c in spec["containers"]:
            repository = c["image"].rsplit(":", 1)[0]
            if repository not in DOCKERFILES:
                continue  # the operator's image belongs to services/operator
            scripts = installed_scripts(parse_dockerfile(DOCKERFILES[repository])) | {"python"}
            assert c["command"][0] in scripts, (obj["metadata"]["name"], c["command"][0])
            checked += 1
    assert checked >= 3  # publisher, sidecar, helm test pod (benchmark Jobs: the operator's)


# --- the build context, as .dockerignore leaves it ---


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns), "exceptions are not modelled here"
    return patterns


def ignored(relative: str, patterns: list[str]) -> bool:
    """Docker's rule: a path is out when it, or any folder above it, matches a pattern."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatchcase(
                prefix.split("/")[-1], pattern[3:]
            ):
                return True
    return False


def build_context_files() -> Iterator[str]:
    patterns = dockerignore_patterns()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel_dir = os.path.relpath(dirpath, ROOT)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = [d for d in dirnames if not ignored(rel_dir + d, patterns)]
        for name in filenames:
            if not ignored(rel_dir + name, patterns):
                yield rel_dir + name


def test_dockerignore_keeps_what_the_build_needs_and_drops_the_rest() -> None:
    files = set(build_context_files())
    assert {"pyproject.toml", "uv.lock"} <= files
    for member in workspace_members().values():
        rel = member.path.relative_to(ROOT).as_posix()
        assert f"{rel}/pyproject.toml" in files
        assert any(f.startswith(f"{rel}/src/") and f.endswith(".py") for f in files), rel
    for dropped in (".venv/", ".git/", "tests/", "charts/"):
        assert not any(f.startswith(dropped) for f in files), dropped
    assert not any("__pycache__" in f for f in files)


def uv_binary() -> str:
    """The uv running this suite (``uv run`` exports it as UV), else the one on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    assert found, "uv is needed to run the image's uv sync line"
    return found


def copy_into(workdir: Path, args: str) -> None:
    """One ``COPY src... dest`` from the ``.dockerignore``d context, as Docker resolves it."""
    *sources, dest = args.split()
    context = set(build_context_files())
    for source in sources:
        if source == ".":
            picked = sorted(context)
        else:
            assert source in context, f"COPY {source}: not in the build context"
            picked = [source]
        for rel in picked:
            if source == ".":
                target = workdir / rel
            elif dest.endswith("/") or dest == "./":
                target = workdir / dest / Path(rel).name
            else:
                target = workdir / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, target)


def build_venv(dockerfile: Dockerfile, work: Path) -> Path:
    """Replay the builder stage's COPYs and uv syncs, in order; then delete the source tree.

    After the dependency layer, no workspace package may be in the venv yet (else a source
    edit would invalidate that layer after all); after the last sync they all must be.
    """
    workdir = work / "src"
    workdir.mkdir()
    venv = work / "venv"
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON_DOWNLOADS": "never",
        "VIRTUAL_ENV": "",
    }
    modules = {name: name.replace("-", "_") for name in installed_packages(dockerfile)}
    syncs = 0
    for keyword, args in dockerfile.stage("builder").instructions:
        if keyword == "COPY" and not args.startswith("--from="):
            copy_into(workdir, args)
        elif keyword == "RUN" and " uv sync " in f" {args} ":
            words = shlex.split(args)
            command = [uv_binary(), *words[words.index("uv") + 1 :], "--quiet"]
            run = subprocess.run(
                command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300
            )
            assert run.returncode == 0, f"{shlex.join(command)} failed:\n{run.stderr}"
            syncs += 1
            site = next(venv.glob("lib/python3*/site-packages"))
            present = {name for name, module in modules.items() if (site / module).is_dir()}
            if "--no-install-workspace" in words:
                assert present == set(), f"workspace packages in the dependency layer: {present}"
            else:
                assert present == set(modules), (present, modules)
    assert syncs == 2, "a dependency layer and the workspace layer"
    shutil.rmtree(workdir)
    return venv


def test_sidecar_image_venv_runs_its_command_without_the_source(tmp_path: Path) -> None:
    dockerfile = parse_dockerfile(DOCKERFILES["trading-telemetry-sidecar"])
    venv = build_venv(dockerfile, tmp_path)
    (script,) = cmd(dockerfile.final)
    http_port = free_port()
    proc = start_process(
        [str(venv / "bin" / script)],
        tmp_path / "sidecar.log",
        {
            "TT_SIDECAR_ZMQ_BIND": f"tcp://127.0.0.1:{free_port()}",
            "TT_SIDECAR_HTTP_PORT": str(http_port),
            "TT_SIDECAR_PROBE_PORT": str(free_port()),
            "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        },
        name="image venv trading-sidecar",
    )
    try:
        wait_http_ok(proc, f"http://127.0.0.1:{http_port}/healthz")
    finally:
        assert proc.stop() == 0, proc.log()


def test_publisher_image_venv_has_working_ui_and_bench_commands(tmp_path: Path) -> None:
    dockerfile = parse_dockerfile(DOCKERFILES["trading-telemetry-publisher"])
    venv = build_venv(dockerfile, tmp_path)
    for script in ("trading-bench", "trading-ui"):
        assert (venv / "bin" / script).exists(), script
    run = subprocess.run(
        [str(venv / "bin" / "trading-bench"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert "hotpath" in run.stdout
    # Non-editable: the packages live in the venv, not in the (deleted) source tree.
    probe = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import trading_publisher; print(trading_publisher.__file__)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().startswith(str(venv)), probe.stdout
