"""mk/operator.mk as make expands it: the commands ``make -n`` prints, nothing run.

There is no cluster here, so the recipes are checked for what they would do: the image the
operator's Jobs would run and the flags the CRD is applied with.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess

import pytest
import yaml
from support import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(target: str, **variables: str) -> list[str]:
    """The shell words of the commands ``make -n target`` would run."""
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", target, *(f"{k}={v}" for k, v in variables.items())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # Join continued lines so one command is one string.
    return shlex.split(re.sub(r"\\\n", " ", done.stdout), comments=False)


def app_version() -> str:
    chart = yaml.safe_load((ROOT / "charts/trading-telemetry/Chart.yaml").read_text("utf-8"))
    return str(chart["appVersion"])


def env_of(words: list[str], name: str) -> list[str]:
    return [word.split("=", 1)[1] for word in words if word.startswith(f"{name}=")]


def test_operator_dev_runs_jobs_with_the_image_kind_load_put_in_the_cluster() -> None:
    words = dry_run("operator-dev")
    assert "kopf" in words
    assert env_of(words, "TT_OPERATOR_BENCH_IMAGE") == [f"trading-telemetry-bench:{app_version()}"]


def test_operator_dev_follows_an_image_tag_override() -> None:
    words = dry_run("operator-dev", IMAGE_TAG="dev-7")
    assert env_of(words, "TT_OPERATOR_BENCH_IMAGE") == ["trading-telemetry-bench:dev-7"]


def test_operator_crd_takes_over_the_fields_of_a_helm_installed_crd() -> None:
    words = dry_run("operator-crd")
    start = words.index("apply")
    apply = words[start : words.index("-f", start) + 2]
    assert {"--server-side", "--force-conflicts"} <= set(apply)
    assert apply[-1] == "charts/trading-telemetry/crds/latencybenchmarks.yaml"
