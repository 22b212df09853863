"""Container images, checked without a Docker engine.

No image can be built here, so these tests check what would break first: a stage layout
that ships a compiler or runs as root, a command that is not a console script of the
packages the image installs, a chart container whose command its image lacks, and a
``.dockerignore`` that drops a file the build needs. All images come from one Dockerfile,
built once per ``--target`` with the build args ``make images`` passes (read from ``make -n
images``, so the test and the Makefile cannot disagree). The builder stage's exact ``uv
sync`` line is then run on the build context as Docker would see it, and the resulting venv,
with the context deleted (the final stage copies the venv alone), runs the image's command.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import helm_python
import pytest
from chart_support import CHART_DIR, EVERYTHING_ON, Rendered, render, workloads
from support import ROOT, free_port, start_process, wait_http_ok

DOCKERFILE = ROOT / "Dockerfile"
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
class Image:
    """One ``docker build`` of ``make images``: its tag, --target and --build-args."""

    repository: str
    target: str
    build_args: dict[str, str]

    @property
    def dockerfile(self) -> Dockerfile:
        return parse_dockerfile(DOCKERFILE)

    def final(self) -> Stage:
        """The target stage with the stages it is built FROM, as one list of instructions."""
        df = self.dockerfile
        chain: list[Stage] = []
        stage = df.stage(self.target)
        while True:
            chain.insert(0, stage)
            names = {s.name for s in df.stages}
            if stage.image not in names:
                break
            stage = df.stage(stage.image)
        merged = Stage(chain[0].image, self.target)
        for part in chain:
            merged.instructions.extend(part.instructions)
        return merged

    def substitute(self, text: str) -> str:
        """$ARG / ${ARG} from the build args (what the shell in a RUN sees)."""
        return re.sub(
            r"\$\{?(\w+)\}?",
            lambda m: self.build_args.get(m.group(1), m.group(0)),
            text,
        )


@cache
def images() -> dict[str, Image]:
    """image repository → how `make images` builds it (``make -n``: nothing runs)."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "images"],
        cwd=ROOT,
        env={**os.environ, "UV": "uv"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found: dict[str, Image] = {}
    for line in done.stdout.splitlines():
        words = shlex.split(line)
        if words[:2] != ["docker", "build"]:
            continue
        assert words[words.index("-f") + 1] == "Dockerfile", line
        build_args = dict(
            words[i + 1].split("=", 1) for i, word in enumerate(words) if word == "--build-arg"
        )
        repository = words[words.index("-t") + 1].rsplit(":", 1)[0]
        found[repository] = Image(repository, words[words.index("--target") + 1], build_args)
    assert set(found) == {
        "trading-telemetry-publisher",
        "trading-telemetry-sidecar",
        "trading-telemetry-operator",
        "trading-telemetry-bench",
    }, found
    return found


@dataclass(frozen=True)
class Member:
    name: str
    path: Path
    scripts: dict[str, str]
    workspace_deps: tuple[str, ...]
    other_deps: tuple[str, ...]


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
            tuple(d for d in deps if not sources.get(d, {}).get("workspace")),
        )
    return members


def uv_sync_commands(image: Image) -> list[list[str]]:
    """Every ``uv sync`` of the builder stage, in order, from ``uv`` on, args substituted."""
    commands = []
    for run in image.dockerfile.stage("builder").all("RUN"):
        if " uv sync " in f" {run} ":
            words = shlex.split(image.substitute(run))
            commands.append(words[words.index("uv") :])
    return commands


def uv_sync_command(image: Image) -> list[str]:
    """The last ``uv sync``: the one that installs the workspace packages themselves."""
    return uv_sync_commands(image)[-1]


def installed_packages(image: Image) -> set[str]:
    """The --package arguments plus every workspace member they depend on."""
    command = uv_sync_command(image)
    members = workspace_members()
    todo = [command[i + 1] for i, word in enumerate(command) if word == "--package"]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(members[name].workspace_deps)
    return seen


def installed_scripts(image: Image) -> set[str]:
    """Console scripts of the image's workspace packages and of their direct dependencies
    (kopf's ``kopf``), the latter read from this venv, which the same uv.lock built."""
    members = workspace_members()
    scripts = {script for name in installed_packages(image) for script in members[name].scripts}
    for name in installed_packages(image):
        for dep in members[name].other_deps:
            entry_points = metadata.distribution(dep).entry_points
            scripts |= {ep.name for ep in entry_points if ep.group == "console_scripts"}
    return scripts


def cmd(stage: Stage) -> list[str]:
    raw = stage.all("CMD")[-1]
    command: list[str] = json.loads(raw)
    return command


@pytest.fixture(scope="module", params=sorted(images()), ids=lambda r: r.split("-")[-1])
def image(request: pytest.FixtureRequest) -> Image:
    return images()[request.param]


def test_multi_stage_from_one_slim_python_and_a_pinned_uv() -> None:
    dockerfile = parse_dockerfile(DOCKERFILE)
    python = dockerfile.args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?(@sha256:[0-9a-f]{64})?", python), python
    # The venv's interpreter is a symlink into the base image: both stages must share it.
    assert dockerfile.stage("builder").image == dockerfile.stage("runtime").image == python
    uv = dockerfile.args["UV_IMAGE"]
    assert re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?", uv), uv
    for image in images().values():
        assert image.final().image == python, image.target


def packages_of(command: list[str]) -> list[str]:
    return [command[i + 1] for i, word in enumerate(command) if word == "--package"]


def test_builder_installs_exactly_what_the_lock_pins(image: Image) -> None:
    """--locked, not --frozen: a uv.lock that no longer matches the pyprojects fails the build."""
    deps, full = uv_sync_commands(image)
    for command in (deps, full):
        for flag in ("--locked", "--no-dev", "--no-editable"):
            assert flag in command, f"{flag} missing from {command}"
        assert "--frozen" not in command, "--frozen installs from a stale lock without a word"
        assert not any(word.startswith("$") for word in command), command
    assert "--no-install-workspace" in deps and "--no-install-workspace" not in full
    assert packages_of(deps) == packages_of(full) == [image.build_args["PACKAGE"]]
    assert installed_packages(image) <= set(workspace_members())


def test_each_image_holds_only_what_its_service_runs() -> None:
    built = images()
    assert installed_packages(built["trading-telemetry-sidecar"]) == {
        "trading-sidecar",
        "telemetry-contract",
    }
    operator = installed_packages(built["trading-telemetry-operator"])
    assert operator == {"trading-operator", "telemetry-contract"}
    assert "trading-bench" not in installed_packages(built["trading-telemetry-publisher"])
    assert "trading-bench" in installed_packages(built["trading-telemetry-bench"])
    # No compiler in any stage, the builder included: every locked dependency has wheels.
    builder = " ".join(parse_dockerfile(DOCKERFILE).stage("builder").all("RUN"))
    assert "apt-get install" not in builder
    for repository, image in built.items():
        assert "BUILD_DEPS" not in image.build_args, repository


def _image_closure(lock: dict[str, Any]) -> set[str]:
    """Names of the locked packages an image can install: every service package with all
    its extras, and what they need on Linux with Python 3.11 (markers evaluated for
    x86_64 and aarch64), never the root project's dev group."""
    from packaging.markers import Marker

    envs = [
        {
            "python_version": "3.11", "python_full_version": "3.11.7", "os_name": "posix",
            "sys_platform": "linux", "platform_system": "Linux", "platform_machine": arch,
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "extra": "",
        }
        for arch in ("x86_64", "aarch64")
    ]  # fmt: skip
    by_name: dict[str, list[dict[str, Any]]] = {}
    for package in lock["package"]:
        by_name.setdefault(package["name"], []).append(package)

    def wanted(dep: dict[str, Any]) -> bool:
        marker = dep.get("marker")
        return marker is None or any(Marker(marker).evaluate(env) for env in envs)

    services = [
        p
        for p in lock["package"]
        if str(p.get("source", {}).get("editable", "")).startswith("services/")
    ]
    todo: list[tuple[dict[str, Any], tuple[str, ...] | None]] = [(p, None) for p in services]
    seen: set[tuple[str, str, tuple[str, ...] | None]] = set()
    found: set[str] = set()
    while todo:
        package, extras = todo.pop()
        found.add(package["name"])
        optional = package.get("optional-dependencies", {})
        deps = list(package.get("dependencies", []))
        for extra in optional if extras is None else extras:
            deps += optional.get(extra, [])
        for dep in filter(wanted, deps):
            for target in by_name.get(dep["name"], []):
                if "version" in dep and target.get("version") != dep["version"]:
                    continue
                asked = tuple(dep.get("extra", ()))
                key = (target["name"], str(target.get("version")), asked)
                if key not in seen:
                    seen.add(key)
                    todo.append((target, asked))
    return found


def test_every_locked_dependency_has_linux_wheels_for_amd64_and_arm64() -> None:
    """What lets the builder stage go without a compiler: nothing is built from an sdist.

    For each locked package that the images' Python (3.11) resolves, some locked version
    has a wheel for linux x86_64 and one for linux aarch64 (pure-Python ``any`` wheels
    count for both). A dependency without one would need gcc in the image build again.
    """
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    in_images = _image_closure(lock)
    assert {"pyzmq", "msgspec", "kopf"} <= in_images  # the walk found the images' packages
    usable: dict[str, set[str]] = {}
    for package in lock["package"]:
        if "registry" not in package.get("source", {}):
            continue  # workspace members are built from source by uv itself
        if package["name"] not in in_images:
            continue  # a dev-only tool (tests, mutation testing): never in an image
        arches = usable.setdefault(package["name"], set())
        for wheel in package.get("wheels", []):
            tags = wheel["url"].rsplit("/", 1)[1].removesuffix(".whl").split("-")[-3:]
            python, abi, platform = tags
            if not ("py3" in python or "cp311" in python or abi == "abi3"):
                continue
            if platform == "any":
                arches |= {"x86_64", "aarch64"}
            elif "manylinux" in platform:
                arches |= {a for a in ("x86_64", "aarch64") if a in platform}
    missing = {name: sorted(arches) for name, arches in usable.items() if len(arches) < 2}
    assert not missing, f"no linux wheel for amd64 and arm64: {missing}"


def test_dependency_layer_needs_only_the_lock_and_every_members_pyproject() -> None:
    """The layer cache: source edits must not invalidate the (slow) dependency install.

    Before the first ``uv sync`` only metadata is copied, and all of it: the lock covers the
    whole workspace, so a member missing here would fail --locked.
    """
    builder = parse_dockerfile(DOCKERFILE).stage("builder")
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


def test_final_stage_runs_as_non_root_without_compilers_or_source(image: Image) -> None:
    final = image.final()
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
    # getpass.getuser() reads USER before the passwd database (kopf calls it at start-up).
    assert "USER=app" in env


def test_every_image_carries_the_oci_labels(image: Image) -> None:
    labels = " ".join(image.final().all("LABEL"))
    for key in ("title", "description", "version", "revision", "created", "source", "base.name"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    assert f'org.opencontainers.image.title="{image.repository}"' in labels
    for arg in ("VERSION", "REVISION", "CREATED", "SOURCE"):
        assert arg in image.build_args, f"make images does not pass {arg}"


def test_command_is_a_console_script_the_image_installs(image: Image) -> None:
    command = cmd(image.final())
    if command[:2] == ["sh", "-c"]:
        command = shlex.split(command[2].removeprefix("exec "))
    assert command[0] in installed_scripts(image)


def test_publisher_and_bench_images_split_the_ui_from_the_benchmark() -> None:
    publisher = images()["trading-telemetry-publisher"]
    assert cmd(publisher.final()) == ["trading-ui"]
    assert "trading-ui" in installed_scripts(publisher)
    assert "trading-bench" not in installed_scripts(publisher)
    bench = images()["trading-telemetry-bench"]
    assert "trading-bench" in installed_scripts(bench)
    assert cmd(images()["trading-telemetry-sidecar"].final()) == ["trading-sidecar"]


def test_image_commands_are_the_scripts_make_run_starts() -> None:
    """`make run` (scripts/run_local.py) and the containers start the same programs."""
    started = set(
        re.findall(r'BIN / "(trading-[\w-]+)"', (ROOT / "scripts" / "run_local.py").read_text())
    )
    commands = {
        cmd(images()[r].final())[0]
        for r in ("trading-telemetry-publisher", "trading-telemetry-sidecar")
    }
    assert commands <= started


@pytest.fixture(scope="module")
def everything() -> Rendered:
    with helm_python.Chart.load(CHART_DIR) as chart:
        return render(chart, EVERYTHING_ON)


def test_every_chart_container_command_exists_in_its_image(everything: Rendered) -> None:
    checked = 0
    for obj, spec in workloads(everything):
        for c in spec["containers"]:
            repository = c["image"].rsplit(":", 1)[0]
            scripts = installed_scripts(images()[repository]) | {"python"}
            assert c["command"][0] in scripts, (obj["metadata"]["name"], c["command"][0])
            checked += 1
    assert checked >= 4  # publisher, sidecar, operator, helm test pod


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


def build_venv(image: Image, work: Path) -> Path:
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
    modules = {name: name.replace("-", "_") for name in installed_packages(image)}
    syncs = 0
    for keyword, args in image.dockerfile.stage("builder").instructions:
        if keyword == "COPY" and not args.startswith("--from="):
            copy_into(workdir, args)
        elif keyword == "RUN" and " uv sync " in f" {args} ":
            words = shlex.split(image.substitute(args))
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
    image = images()["trading-telemetry-sidecar"]
    venv = build_venv(image, tmp_path)
    (script,) = cmd(image.final())
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


def test_publisher_image_venv_has_the_ui_and_not_the_benchmark(tmp_path: Path) -> None:
    image = images()["trading-telemetry-publisher"]
    venv = build_venv(image, tmp_path)
    assert (venv / "bin" / "trading-ui").exists()
    assert not (venv / "bin" / "trading-bench").exists(), "the benchmark has its own image"
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
    # The [ui] and [http] extras are what the UI and the trade endpoint import.
    for module in ("streamlit", "starlette", "uvicorn"):
        found = subprocess.run(
            [str(venv / "bin" / "python"), "-c", f"import {module}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert found.returncode == 0, f"{module}: {found.stderr}"


def test_the_publisher_image_installs_the_ui_and_http_extras() -> None:
    publisher = images()["trading-telemetry-publisher"]
    command = uv_sync_command(publisher)
    extras = [command[i + 1] for i, word in enumerate(command) if word == "--extra"]
    assert extras == ["ui", "http"]
    assert {"trading-ui", "trading-publisher-http"} <= installed_scripts(publisher)


def test_bench_image_venv_runs_the_benchmark(tmp_path: Path) -> None:
    image = images()["trading-telemetry-bench"]
    venv = build_venv(image, tmp_path)
    run = subprocess.run(
        [str(venv / "bin" / "trading-bench"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert "hotpath" in run.stdout


def image_env(image: Image) -> dict[str, str]:
    """The ENV the image's final stage sets (KEY=value pairs, $PATH left as written)."""
    env: dict[str, str] = {}
    for args in image.final().all("ENV"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


#: kopf's own start-up path that names the operator: peering.detect_own_id() calls
#: getpass.getuser(). Run after dropping the real uid to one with no passwd entry (the
#: effective uid stays 0 so the interpreter under /root stays readable; getpass reads the
#: real uid, as OpenShift's arbitrary uids make it).
NO_PASSWD_UID = 12345
DETECT_OWN_ID = f"""
import os, pwd
os.setresgid({NO_PASSWD_UID}, 0, 0)
os.setresuid({NO_PASSWD_UID}, 0, 0)
try:
    pwd.getpwuid(os.getuid())
except KeyError:
    pass
else:
    raise SystemExit("uid {NO_PASSWD_UID} has a passwd entry here; the test proves nothing")
from kopf._core.engines import peering
print(peering.detect_own_id(manual=False))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="changing the uid needs root (CI runs as root)")
def test_the_operator_starts_as_a_uid_without_a_passwd_entry() -> None:
    operator = images()["trading-telemetry-operator"]
    env = {k: v for k, v in image_env(operator).items() if k != "PATH"}
    assert env.get("USER"), "the image must set USER for getpass.getuser()"
    base = {"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join(sys.path)}

    def detect_own_id(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", DETECT_OWN_ID],
            env={**base, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )

    with_image_env = detect_own_id(env)
    assert with_image_env.returncode == 0, with_image_env.stderr
    assert with_image_env.stdout.startswith(f"{env['USER']}@"), with_image_env.stdout
    # The same path without USER/LOGNAME is what crashed: the check above is not a no-op.
    bare = {k: v for k, v in env.items() if k not in ("USER", "LOGNAME", "LNAME", "USERNAME")}
    without = detect_own_id(bare)
    assert without.returncode != 0
    assert "uid not found" in without.stderr, without.stderr


def pin_base_images(work: Path, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run `make pin-base-images` in `work` with the fake docker of `bin_dir` first on PATH."""
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-f",
            str(ROOT / "mk" / "kubernetes.mk"),
            "pin-base-images",
        ],
        cwd=work,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_pin_base_images_writes_tag_at_digest(tmp_path: Path) -> None:
    """`make pin-base-images` with a docker that answers like `buildx imagetools inspect`."""
    digest = "sha256:" + "5e" * 32
    work = tmp_path / "repo"
    work.mkdir()
    shutil.copy(DOCKERFILE, work / "Dockerfile")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        '  "buildx version") echo "github.com/docker/buildx v0.29.1" ;;\n'
        f'  "buildx imagetools inspect "*) printf "Name: %s\\nDigest: {digest}\\n" "$4" ;;\n'
        "  *) exit 1 ;;\n"
        "esac\n"
    )
    docker.chmod(0o755)
    run = pin_base_images(work, bin_dir)
    assert run.returncode == 0, run.stdout + run.stderr
    pinned = parse_dockerfile(work / "Dockerfile").args
    original = parse_dockerfile(DOCKERFILE).args
    for arg in ("PYTHON_IMAGE", "UV_IMAGE"):
        assert pinned[arg] == f"{original[arg].split('@')[0]}@{digest}", arg
    # Pinning again replaces the digest, it does not stack a second one.
    again = pin_base_images(work, bin_dir)
    assert again.returncode == 0, again.stderr
    assert parse_dockerfile(work / "Dockerfile").args == pinned
