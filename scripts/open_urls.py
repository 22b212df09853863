"""``make open``: the trading UI, Prometheus and (when ``make infra-up`` runs) Grafana.

The MVP's ``make open`` opened the UI and the dashboards; this keeps that command
working. It lists what ``make run`` and ``make infra-up`` serve on this machine, marks
what answers, and opens the answering ones in the browser when one can be opened here
(a desktop session, macOS, or ``$BROWSER`` set); otherwise it prints the URLs to open
by hand (on a server over SSH, say). Ports come from the same settings ``make run``
reads, so a moved UI or Prometheus is found where it is.
"""

from __future__ import annotations

import os
import sys
import webbrowser
from collections.abc import Mapping
from pathlib import Path

from run_local import load_prometheus_settings, prometheus_link
from telemetry_contract.ports import INFRA_GRAFANA_PORT, INFRA_PROMETHEUS_PORT, LOOPBACK
from trading_devkit.processes import http_ok
from trading_publisher import settings as publisher_settings

#: (name, URL to open, URL that answers 200 when it runs)
Target = tuple[str, str, str]


def targets(
    environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
) -> list[Target]:
    """What ``make run`` and ``make infra-up`` serve, from the settings they read."""
    publisher = publisher_settings.load(environ, dotenv)
    prometheus_port = load_prometheus_settings(environ, dotenv).port
    ui = f"http://{publisher.ui_host}:{publisher.ui_port}"
    prometheus = f"http://{LOOPBACK}:{prometheus_port}"
    infra_prometheus = f"http://{LOOPBACK}:{INFRA_PROMETHEUS_PORT}"
    grafana = f"http://{LOOPBACK}:{INFRA_GRAFANA_PORT}"
    return [
        ("Trading UI", ui, f"{ui}/_stcore/health"),
        ("Prometheus (make run)", prometheus_link(prometheus), f"{prometheus}/-/ready"),
        ("Prometheus (make infra-up)", prometheus_link(infra_prometheus),
         f"{infra_prometheus}/-/ready"),
        ("Grafana (make infra-up)", f"{grafana}/d/trading-telemetry", f"{grafana}/api/health"),
    ]  # fmt: skip


def can_open_browser(environ: Mapping[str, str], platform: str = sys.platform) -> bool:
    """A browser window can appear: macOS/Windows, a desktop session, or ``$BROWSER``."""
    if environ.get("BROWSER"):
        return True
    if platform == "darwin" or platform.startswith("win"):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def main() -> int:
    found = [(name, url, http_ok(health, timeout=1.0)) for name, url, health in targets()]
    up = [url for _, url, ok in found if ok]
    opening = bool(up) and can_open_browser(os.environ)
    width = max(len(name) for name, _, _ in found)
    for name, url, ok in found:
        state = ("opened in the browser" if opening else "running") if ok else "not running"
        print(f"  {name:<{width}}  {url}  ({state})")
    if not up:
        print("Nothing is running: start it with `make run` (and `make infra-up` for Grafana).")
        return 1
    if opening:
        for url in up:
            webbrowser.open_new_tab(url)
    else:
        print("No browser can be opened here (no display, no $BROWSER): open the URLs above.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
