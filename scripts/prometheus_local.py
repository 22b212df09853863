"""Run the Debian Prometheus against a sidecar outside Kubernetes (``make run``, tests, compose).

deploy/prometheus/prometheus.yml is the only Prometheus config kept by hand. Every other
place needs the same scrape settings against a different address (a test's free port,
Docker's host gateway), so it is rendered from that file by swapping its one ``targets``
entry: a second hand-written config would drift from the first without anyone noticing.
Its ``rule_files`` (the alert rules, deploy/prometheus/alerts.yml) are relative to the
template; a rendering written to another folder gets them as absolute paths.

Standard library only, because ``make run`` imports this before anything else is needed.

    python scripts/prometheus_local.py render --target host.docker.internal:8001 \\
        --out deploy/prometheus/prometheus.compose.yml
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[1]
TEMPLATE: Final = ROOT / "deploy" / "prometheus" / "prometheus.yml"
#: What docker-compose.infra.yml mounts: the template aimed at the Docker host's sidecar.
COMPOSE_CONFIG: Final = ROOT / "deploy" / "prometheus" / "prometheus.compose.yml"
COMPOSE_TARGET: Final = "host.docker.internal:8001"

# The template's single scrape target, e.g. `      - targets: ["127.0.0.1:8001"]`.
_TARGETS_LINE: Final = re.compile(r'^(?P<head>\s*- targets: \[)"[^"\n]*"(?P<tail>\]\s*)$', re.M)
# host:port with a DNS name, IPv4 or bracketed IPv6 host: nothing that could break the YAML.
_TARGET: Final = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$")
# The rule_files block: the key, then its list items (one path each).
_RULE_FILES: Final = re.compile(r"^rule_files:\n(?P<items>(?:[ \t]+- [^\n]*\n)+)", re.M)
_RULE_ITEM: Final = re.compile(r"^(?P<head>[ \t]+- )(?P<path>[^\s#]+)[ \t]*$", re.M)


def render(
    template_text: str,
    target: str,
    *,
    source_name: str = TEMPLATE.name,
    rules_dir: Path | None = None,
) -> str:
    """The template with its one scrape target replaced; refuses anything ambiguous.

    Refusing a template with zero or several target lines matters: a silent no-op would
    leave Prometheus scraping port 8001, where a test might find somebody else's sidecar.
    With ``rules_dir``, relative ``rule_files`` entries become paths inside it (Prometheus
    reads them relative to the config file, which a rendering elsewhere moves).
    """
    if not _TARGET.match(target):
        raise ValueError(f"target must be host:port, got {target!r}")
    matches = _TARGETS_LINE.findall(template_text)
    if len(matches) != 1:
        raise ValueError(f"{source_name} must have exactly one targets line, found {len(matches)}")
    body = _TARGETS_LINE.sub(
        lambda m: f'{m.group("head")}"{target}"{m.group("tail")}', template_text
    )
    if rules_dir is not None:
        body = _RULE_FILES.sub(lambda block: _absolute_rules(block, rules_dir), body)
    header = (
        f"# GENERATED from {source_name} by scripts/prometheus_local.py with target {target}.\n"
        f"# Edit {source_name} instead; only the scrape target differs.\n"
    )
    return header + body


def _absolute_rules(block: re.Match[str], rules_dir: Path) -> str:
    def absolute(item: re.Match[str]) -> str:
        path = Path(item.group("path"))
        return f"{item.group('head')}{path if path.is_absolute() else rules_dir / path}"

    return "rule_files:\n" + _RULE_ITEM.sub(absolute, block.group("items"))


def write_config(template: Path, out: Path, target: str) -> Path:
    """Render ``template`` aimed at ``target`` into ``out`` and return ``out``.

    Written beside the template, rule files stay relative (the compose file mounts them
    next to it); anywhere else they point into the template's folder.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    here = template.parent.resolve()
    rules_dir = None if out.parent.resolve() == here else here
    out.write_text(
        render(template.read_text(), target, source_name=template.name, rules_dir=rules_dir)
    )
    return out


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        raise FileNotFoundError("prometheus is not on PATH: run `make system-deps`")
    return found


def start_prometheus(
    config: Path, port: int, data_dir: Path, log_path: Path
) -> subprocess.Popen[bytes]:
    """Start Prometheus on loopback only, its TSDB in ``data_dir``, its output in ``log_path``.

    Loopback because the local Prometheus has no authentication; a private ``data_dir``
    because two Prometheus servers refuse to share one TSDB directory (it is locked).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    args = [
        prometheus_binary(),
        f"--config.file={config}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--storage.tsdb.path={data_dir}",
        "--storage.tsdb.retention.time=1d",
    ]
    with log_path.open("wb") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=data_dir)


def wait_ready(
    url: str,
    *,
    timeout: float = 30.0,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Block until ``url``/-/ready answers 200; fail early if ``process`` has exited.

    Ready, not just listening: before that the query API answers 503 while the TSDB
    replays its write-ahead log.
    """
    ready = url.rstrip("/") + "/-/ready"
    deadline = time.monotonic() + timeout
    last: str = "no answer yet"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(ready, timeout=2) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise TimeoutError(f"prometheus at {url} not ready after {timeout}s: {last}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    render_cmd = commands.add_parser("render", help="write the template aimed at another target")
    render_cmd.add_argument("--target", default=COMPOSE_TARGET, help="host:port of the sidecar")
    render_cmd.add_argument("--out", type=Path, default=COMPOSE_CONFIG)
    render_cmd.add_argument("--template", type=Path, default=TEMPLATE)
    args = parser.parse_args(argv)
    written = write_config(args.template, args.out, args.target)
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
