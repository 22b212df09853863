"""Mutation testing (``make mutation``): does the suite fail when promise-holding code changes?

mutmut copies the code under test into ``mutants/`` and expects it at ``./src`` or ``./``;
this workspace keeps each package under ``services/<name>/src``, so each scope gets its own
work folder (``results/mutation/<scope>/``) holding ``src`` (the package's src tree),
``tests`` and the root ``pyproject.toml`` with a ``[tool.mutmut]`` section added, and
symlinks to the rest of the repository for tests that read docs or charts. Each scope is
one module with the fast tests that cover it, so a run stays minutes on a loaded laptop.

``SCOPES`` below is the one list to edit when a module is split or renamed. Each run
starts over: mutmut would keep a verdict after the tests changed (``--keep`` reuses them
when only the code did). The script prints the score per scope and lists every surviving mutant;
``mutmut show <name>`` inside a work folder prints a mutant's diff. docs/testing.md says
which survivors were reviewed as equivalent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "results" / "mutation"


@dataclass(frozen=True)
class Scope:
    """One module to mutate and the tests that are expected to kill its mutants."""

    name: str
    #: The package's src folder, relative to the repository root.
    src: str
    #: Module files inside ``src`` to mutate (globs allowed, e.g. ``pkg/client/*.py``).
    modules: tuple[str, ...]
    #: Test files (or node ids) run against each mutant; pytest options (``-k ...``)
    #: may follow to leave slow tests out.
    tests: tuple[str, ...]


SCOPES: tuple[Scope, ...] = (
    Scope(
        "contract.events",
        "services/contract/src",
        ("telemetry_contract/events.py",),
        ("tests/unit/contract/test_codec.py", "tests/unit/contract/test_schema.py"),
    ),
    Scope(
        "sidecar.metrics",
        "services/sidecar/src",
        ("trading_sidecar/metrics.py",),
        ("tests/unit/sidecar/test_metrics.py", "tests/unit/sidecar/test_app.py"),
    ),
    Scope(
        "sidecar.receiver",
        "services/sidecar/src",
        ("trading_sidecar/receiver.py",),
        ("tests/unit/sidecar/test_receiver.py",),
    ),
    Scope(
        "contract.codec",
        "services/contract/src",
        ("telemetry_contract/codec.py", "telemetry_contract/json_checks.py"),
        (
            "tests/unit/contract/test_codec.py",
            "tests/unit/contract/test_codec_paths.py",
            "tests/unit/contract/test_codec_hostile.py",
            "tests/unit/contract/test_frames.py",
            "tests/unit/contract/test_decode_frames.py",
            "tests/unit/contract/test_now_encoder.py",
            "tests/unit/contract/test_codec_fuzz.py",
        ),
    ),
    Scope(
        "contract.frames",
        "services/contract/src",
        ("telemetry_contract/frames.py",),
        (
            "tests/unit/contract/test_frames.py",
            "tests/unit/contract/test_codec.py",
            "tests/unit/contract/test_now_encoder.py",
            "tests/unit/contract/test_decode_frames.py",
        ),
    ),
    Scope(
        "sidecar.state",
        "services/sidecar/src",
        ("trading_sidecar/state.py",),
        # The state tests first (real files and threads, seconds); then the rest of the
        # sidecar's unit tests and the restart e2e file (real processes, slow per mutant).
        (
            "tests/unit/sidecar/test_state_file.py",
            "tests/unit/sidecar/test_state_keeper.py",
            "tests/unit/sidecar/test_state.py",
            "tests/unit/sidecar",
            "tests/e2e/test_sidecar_state.py",
        ),
    ),
    Scope(
        "publisher.client",
        "services/publisher/src",
        # The hot path, the flush and encode, the streams with their loss accounting.
        (
            "trading_publisher/client.py",
            "trading_publisher/flush.py",
            "trading_publisher/streams.py",
        ),
        # The in-process tier first (real loopback sockets, seconds in all); then the e2e
        # file, less its million-event burst and sidecar restart (seconds each).
        (
            "tests/unit/publisher/test_client_unit.py",
            "tests/unit/publisher/test_flush.py",
            "tests/unit/publisher/test_streams.py",
            "tests/e2e/test_client.py",
            "-k",
            "not million and not restart",
        ),
    ),
)

#: Lines left unmutated: debug/info log lines promise nothing (their text, their
#: arguments) a test should pin; warnings and errors are mutated and tested.
DO_NOT_MUTATE = [r"^\s*(log|logger)\.(debug|info)\("]

#: Passed to pytest for every mutant: no random order, stop at the first failure.
PYTEST_ARGS = ["-p", "no:randomly", "-x", "-q", "-p", "no:cacheprovider"]


def _work_folder(scope: Scope, fresh: bool) -> Path:
    """Lay out (or refresh) the scope's work folder; keeps ``mutants/`` unless ``fresh``."""
    folder = WORK / scope.name
    if fresh and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("src", "tests"):
        if (folder / stale).exists():
            shutil.rmtree(folder / stale)
    shutil.copytree(ROOT / scope.src, folder / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    shutil.copytree(ROOT / "tests", folder / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mutmut = {
        "source_paths": ["src"],
        "only_mutate": [f"src/{m}" for m in scope.modules],
        "pytest_add_cli_args_test_selection": list(scope.tests),
        "pytest_add_cli_args": PYTEST_ARGS,
        "do_not_mutate_patterns": DO_NOT_MUTATE,
        # Compares against this work folder's files, not the repository's git state.
        "use_git_change_detection": False,
    }
    text = (ROOT / "pyproject.toml").read_text()
    assert "mutmut" not in config.get("tool", {}), "pyproject.toml has its own [tool.mutmut]"
    (folder / "pyproject.toml").write_text(text + "\n[tool.mutmut]\n" + _toml(mutmut))
    # Tests resolve repository files from their own location (mutants/tests/..).
    links = [
        p
        for p in ROOT.iterdir()
        if p.name not in {"tests", "pyproject.toml", "results", "uv.lock", "mutants"}
    ]
    for where in (folder, folder / "mutants"):
        where.mkdir(exist_ok=True)
        for path in links:
            if path.name.startswith(".") and path.name != ".env.sample":
                continue
            link = where / path.name
            if not link.exists() and not link.is_symlink() and path.name != "src":
                link.symlink_to(path)
    return folder


def _toml(values: dict[str, object]) -> str:
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())


def _statuses(folder: Path, scope: Scope) -> dict[str, str]:
    """Every mutant's status, read from mutmut's ``.meta`` files."""
    from mutmut.stats import status_by_exit_code

    statuses: dict[str, str] = {}
    for meta in sorted((folder / "mutants" / "src").rglob("*.py.meta")):
        exit_codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
        for name, code in exit_codes.items():
            statuses[name] = status_by_exit_code[code]
    return statuses


def run_scope(scope: Scope, fresh: bool, jobs: int) -> tuple[int, int, list[str]]:
    """Run mutmut on one scope; returns (killed, total, survivors)."""
    folder = _work_folder(scope, fresh)
    env = {**os.environ, "TT_TEST_FUZZ_SCALE": os.environ.get("TT_TEST_FUZZ_SCALE", "0.1")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs)]
    log = folder / "mutmut.log"
    with log.open("w") as out:
        code = subprocess.run(command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    statuses = _statuses(folder, scope)
    if code.returncode != 0 or not statuses:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"mutmut failed for {scope.name} (exit {code.returncode}):\n{tail}")
    killed = sum(1 for s in statuses.values() if s in {"killed", "timeout", "segfault"})
    # "caught by type check" is not used; "no tests" counts against the score on purpose.
    survivors = sorted(n for n, s in statuses.items() if s not in {"killed", "timeout", "segfault"})
    return killed, len(statuses), [f"{n} ({statuses[n]})" for n in survivors]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    names = [s.name for s in SCOPES]
    parser.add_argument("scopes", nargs="*", help=f"default: all of {', '.join(names)}")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="reuse earlier results (mutmut re-tests a mutant when its code changed, "
        "not when the tests did: after a test change, run without --keep)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.scopes) - set(names))
    if unknown:
        parser.error(f"unknown scope(s) {unknown}; known: {names}")
    chosen = [s for s in SCOPES if not args.scopes or s.name in args.scopes]
    summary: list[str] = []
    for scope in chosen:
        killed, total, survivors = run_scope(scope, not args.keep, args.jobs)
        line = f"{scope.name:20} {killed:4}/{total:<4} killed  {100 * killed / total:5.1f} %"
        summary.append(line)
        print(line, flush=True)
        for survivor in survivors:
            print(f"    survived: {survivor}", flush=True)
    print("\n".join(["", "mutation score per scope:", *summary]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
