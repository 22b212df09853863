"""The chart README's values table is generated from values.yaml's ``# --`` comments.

A key without a comment, or a table that no longer matches the values (a default changed, a
key added, a description edited), fails here: `make chart-readme` rewrites the table.
"""

from __future__ import annotations

import chart_readme
import pytest
from support import ROOT

CHART = ROOT / "charts" / "trading-telemetry"


def test_every_value_is_documented() -> None:
    assert chart_readme.undocumented((CHART / "values.yaml").read_text()) == []


def test_the_readme_table_matches_values_yaml() -> None:
    assert chart_readme.main(["--check"]) == 0, "run `make chart-readme`"


def test_a_changed_default_or_a_new_key_is_caught() -> None:
    values = (CHART / "values.yaml").read_text()
    readme = (CHART / "README.md").read_text()
    changed = values.replace("  zmqPort: 5555", "  zmqPort: 5556")
    assert changed != values
    assert chart_readme.render(readme, changed) != readme
    added = values + "\nsurprise: 1\n"
    assert chart_readme.undocumented(added) == ["surprise"]
    documented = values + "\n# -- Now documented.\nsurprise: 1\n"
    assert chart_readme.undocumented(documented) == []
    assert "| `surprise` | int | `1` | Now documented. |" in chart_readme.table(documented)


def test_a_readme_without_the_markers_is_refused() -> None:
    with pytest.raises(SystemExit, match="markers"):
        chart_readme.render("# no table here\n", (CHART / "values.yaml").read_text())
