"""A LatencyBenchmark's spec as a typed value, with the CRD's defaults filled in.

The API server applies the CRD's defaults, bounds and CEL rules before the operator sees
an object, so this mainly turns the mapping into a typed value and fills in the defaults
that depend on the operator's settings (target Service, port, sidecar URL). The CRD's
cross-field rules (a sustained run's timeout must outlast it by the Job's start-up and
drain, :data:`START_AND_DRAIN_SECONDS`; no run may need more memory than the benchmark Job
has) are checked here again, because an API server older than Kubernetes 1.25 ignores CEL
rules and a run that cannot fit would only end as OOMKilled. The literal defaults and
limits here are mirrored in the CRD, and tests keep them equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from telemetry_contract import BENCH_MODES
from telemetry_contract.events import BenchMode

from trading_operator.settings import OperatorSettings

#: Defaults of the optional spec fields; the CRD's openAPIV3Schema carries the same values.
DEFAULTS: Final[Mapping[str, int | float]] = {
    "events": 10_000,
    "rate": 1_000.0,
    "duration": 10,
    "timeoutSeconds": 600,
}


#: The most events a run of each mode may ask for. The benchmark keeps every event's data
#: in memory until the run ends; measured peak bytes per event (max RSS, 100k vs 400k
#: events): hotpath ~370 (six variants' samples and pre-built calls), ingest ~270
#: (pre-encoded frames), burst ~80, paced ~35 (its continuous run's samples and start
#: times, in one worker process at a time; 100k vs 1M calls). The limits keep the
#: largest run under ~800 MB, inside the Job's 1Gi memory limit
#: (trading_operator.job.RESOURCES). The CRD's ``events`` maximum is the largest of
#: these and a CEL rule holds the smaller ones.
MAX_EVENTS: Final[Mapping[str, int]] = {
    "hotpath": 2_000_000,
    "ingest": 2_000_000,
    "burst": 5_000_000,
    "paced": 5_000_000,
}
#: Measured peak bytes per event, by mode, behind :data:`MAX_EVENTS` (sustained: one
#: 8-byte latency sample per event, rate × duration of them).
BYTES_PER_EVENT: Final[Mapping[str, int]] = {
    "hotpath": 380,
    "ingest": 280,
    "burst": 90,
    "paced": 40,
    "sustained": 8,
}
#: Seconds a sustained run's Job needs beyond ``duration``: pod start, the bench process's
#: imports and socket set-up, and the drain wait for the sidecar's counts after the last
#: event. With less, ``duration: 599`` under ``timeoutSeconds: 600`` can only end as
#: DeadlineExceeded. The CRD's rule spells the same number.
START_AND_DRAIN_SECONDS: Final = 30
#: A sustained run allocates rate × duration samples up front; 2e7 of them is 160 MB.
MAX_SUSTAINED_EVENTS: Final = 20_000_000


class SpecError(ValueError):
    """A spec that passed the schema but cannot run; ``reason`` goes into status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class BenchmarkSpec:
    mode: BenchMode
    events: int
    rate: float
    duration: int
    timeout_seconds: int
    service: str
    port: int
    sidecar_url: str

    @property
    def address(self) -> str:
        """The ZMQ address the benchmark publishes to: the Service's cluster DNS name."""
        return f"tcp://{self.service}:{self.port}"


def _mode(raw: Mapping[str, Any]) -> BenchMode:
    for mode in BENCH_MODES:
        if raw.get("mode") == mode:
            return mode
    raise SpecError("InvalidSpec", f"spec.mode must be one of {', '.join(BENCH_MODES)}")


def _number(raw: Mapping[str, Any], key: str, kind: type[int] | type[float]) -> Any:
    value = raw.get(key, DEFAULTS[key])
    # bool is an int subclass; a YAML ``true`` is never a count.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError("InvalidSpec", f"spec.{key} must be a number, got {value!r}")
    if kind is int and value != int(value):
        raise SpecError("InvalidSpec", f"spec.{key} must be a whole number, got {value!r}")
    if value <= 0:
        raise SpecError("InvalidSpec", f"spec.{key} must be > 0, got {value!r}")
    return kind(value)


def parse_spec(raw: Mapping[str, Any], settings: OperatorSettings) -> BenchmarkSpec:
    """Typed spec, or :class:`SpecError` saying why this benchmark cannot run."""
    mode = _mode(raw)
    spec = BenchmarkSpec(
        mode=mode,
        events=_number(raw, "events", int),
        rate=_number(raw, "rate", float),
        duration=_number(raw, "duration", int),
        timeout_seconds=_number(raw, "timeoutSeconds", int),
        service=str(raw.get("service") or settings.default_service),
        port=int(raw.get("port") or settings.zmq_port),
        sidecar_url=str(raw.get("sidecarUrl") or settings.sidecar_url),
    )
    if mode == "sustained":
        if spec.timeout_seconds < spec.duration + START_AND_DRAIN_SECONDS:
            raise SpecError(
                "InvalidSpec",
                f"spec.timeoutSeconds ({spec.timeout_seconds}) must be at least "
                f"spec.duration ({spec.duration}) + {START_AND_DRAIN_SECONDS} for a sustained "
                "run (pod start-up and drain)",
            )
        if spec.rate * spec.duration > MAX_SUSTAINED_EVENTS:
            raise SpecError(
                "InvalidSpec",
                f"spec.rate × spec.duration ({spec.rate * spec.duration:,.0f} events) must be "
                f"at most {MAX_SUSTAINED_EVENTS:,} for a sustained run, to fit the "
                "benchmark Job's memory",
            )
    elif spec.events > MAX_EVENTS[mode]:
        raise SpecError(
            "InvalidSpec",
            f"spec.events ({spec.events:,}) must be at most {MAX_EVENTS[mode]:,} for a "
            f"{mode} run, to fit the benchmark Job's memory",
        )
    return spec
