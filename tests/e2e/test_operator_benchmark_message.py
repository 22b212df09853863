"""A real benchmark's termination message becomes the LatencyBenchmark's status.

Runs the real ``trading-bench`` with the exact arguments the operator puts in the Job
(paths moved to a temp dir) against a real sidecar, and feeds the file it wrote to
:func:`status_from` as the pod's termination message: the same bytes the kubelet would
copy into ``containerStatuses[].state.terminated.message``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from operator_support import COMPLETE, job, pod
from support import BIN, Samples, Sidecar, value, wait_for
from telemetry_contract import metric_names as names
from trading_operator.job import render_job
from trading_operator.settings import OperatorSettings
from trading_operator.spec import parse_spec
from trading_operator.status import SUCCEEDED, status_from


def test_real_benchmark_termination_message_becomes_succeeded_status(
    sidecar: Sidecar, tmp_path: Path
) -> None:
    settings = OperatorSettings(sidecar_url=sidecar.url)
    spec = parse_spec({"mode": "burst", "events": 2000}, settings)
    (container,) = render_job(spec, "ci-burst", "trading", settings)["spec"]["template"]["spec"][
        "containers"
    ]
    args = list(container["args"])
    # The Job's address is a cluster DNS name; here the sidecar listens on loopback.
    args[args.index("--address") + 1] = sidecar.zmq_address
    termination_log = tmp_path / "termination-log"
    args[args.index("--termination-log") + 1] = str(termination_log)
    args[args.index("--results-dir") + 1] = str(tmp_path / "results")
    done = subprocess.run(
        [str(BIN / container["command"][0]), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    message = termination_log.read_text(encoding="utf-8")
    assert len(message.encode()) < 4096  # the kubelet's cap on a termination message

    status = status_from(job(COMPLETE), [pod(message)])
    assert status is not None
    assert status["state"] == SUCCEEDED, status
    assert (status["runId"], status["events"]) == ("ci-burst", 2000)
    assert status["sent"] + status["dropped"] == 2000
    assert status["received"] == status["sent"]
    assert status["lost"] == 0
    assert status["achievedRate"] > 0
    assert status["startedAt"] <= status["finishedAt"]
    # The sidecar got the same row, so Grafana shows what `kubectl get` shows.
    row = {"mode": "burst", "variant": status["variant"]}
    run = frozenset({**row, "run_id": "ci-burst"}.items())

    def reported() -> Samples | None:
        samples = sidecar.scrape()
        return samples if (names.BENCH_RUN, run) in samples else None

    samples = wait_for(reported, timeout=10, what="benchmark row in the sidecar")
    assert value(samples, names.BENCH_RATE, **row) == pytest.approx(status["achievedRate"], abs=0.1)
    p99 = value(samples, names.BENCH_LATENCY, **{names.BENCH_PERCENTILE_LABEL: "p99"}, **row)
    assert p99 == pytest.approx(status["p99Us"] * 1e-6, abs=1e-9)
