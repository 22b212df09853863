"""``scripts/mutation.py``: the scope list points at code and tests that exist.

``make mutation`` is not part of ``make test``, so a module renamed or split (say,
``trading_publisher/client.py`` into a package) would leave a scope that mutates nothing
and still prints a score. This keeps the list honest on every unit run.
"""

from __future__ import annotations

from pathlib import Path

import mutation

ROOT = Path(__file__).resolve().parents[2]


def test_every_scope_names_modules_and_tests_that_exist() -> None:
    names = [scope.name for scope in mutation.SCOPES]
    assert len(names) == len(set(names))
    for scope in mutation.SCOPES:
        src = ROOT / scope.src
        assert src.is_dir(), scope
        matched = [path for pattern in scope.modules for path in src.glob(pattern)]
        assert matched, f"{scope.name}: no module matches {scope.modules}"
        paths = [t for i, t in enumerate(scope.tests) if not _is_option(scope.tests, i)]
        assert paths, scope.name
        for test in paths:
            assert (ROOT / test.split("::")[0]).exists(), f"{scope.name}: {test}"


def _is_option(args: tuple[str, ...], index: int) -> bool:
    """A pytest option (``-k``) or the value right after one."""
    return args[index].startswith("-") or (index > 0 and args[index - 1] == "-k")


def test_the_work_folder_config_scopes_mutmut_to_the_module(tmp_path: Path) -> None:
    scope = mutation.SCOPES[0]
    saved = mutation.WORK
    mutation.WORK = tmp_path
    try:
        folder = mutation._work_folder(scope, fresh=True)
    finally:
        mutation.WORK = saved
    text = (folder / "pyproject.toml").read_text()
    assert "[tool.mutmut]" in text and "[tool.pytest.ini_options]" in text
    assert f'only_mutate = ["src/{scope.modules[0]}"]' in text
    assert (folder / "src" / scope.modules[0]).is_file()
    assert (folder / "tests" / "conftest.py").is_file()
    assert (folder / "mutants" / "docs").resolve() == ROOT / "docs"
