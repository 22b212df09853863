"""``trading-sidecar``'s command line: options over the loaded settings, nothing dropped."""

from __future__ import annotations

import dataclasses

from telemetry_contract.cli import overlay
from trading_sidecar import settings as sidecar_settings
from trading_sidecar.main import build_parser


def test_options_override_their_field_and_every_other_setting_is_kept() -> None:
    """Settings without a flag (state_dir, alert thresholds, CURVE) keep their env value."""
    loaded = sidecar_settings.load(
        {
            "TT_SIDECAR_HTTP_PORT": "9101",
            "TT_SIDECAR_STATE_DIR": "/var/lib/sidecar",
            "TT_SIDECAR_ALERT_INVALID_RATIO": "0.5",
            "TT_SIDECAR_RCVHWM": "10",
        }
    )
    parsed = overlay(loaded, build_parser(loaded).parse_args(["--log-level", "DEBUG"]))
    assert parsed == dataclasses.replace(loaded, log_level="debug")
    assert parsed.http_port == 9101 and parsed.state_dir == "/var/lib/sidecar"
    flagged = overlay(loaded, build_parser(loaded).parse_args(["--http-port", "9102"]))
    assert flagged == dataclasses.replace(loaded, http_port=9102)
