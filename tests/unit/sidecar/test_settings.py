"""``settings``: the sidecar's settings from a mapping and a .env file."""

from __future__ import annotations

from pathlib import Path

import pytest
from trading_sidecar import settings as sidecar_settings
from trading_sidecar.settings import SidecarSettings


def test_settings_from_mapping_and_dotenv(tmp_path: Path) -> None:
    assert sidecar_settings.load({}) == SidecarSettings()
    loaded = sidecar_settings.load(
        {"TT_SIDECAR_HTTP_PORT": "9101", "TT_SIDECAR_ZMQ_BIND": "tcp://0.0.0.0:6000"}
    )
    assert loaded.http_port == 9101 and loaded.zmq_bind == "tcp://0.0.0.0:6000"
    with pytest.raises(ValueError, match="TT_SIDECAR_HTTP_PORT"):
        sidecar_settings.load({"TT_SIDECAR_HTTP_PORT": "eighty"})
    dotenv = tmp_path / ".env"
    dotenv.write_text("# local\nexport TT_SIDECAR_HTTP_PORT='9202'\nTT_SIDECAR_LOG_LEVEL=debug\n")
    monkey = pytest.MonkeyPatch()
    monkey.delenv("TT_SIDECAR_HTTP_PORT", raising=False)
    monkey.setenv("TT_SIDECAR_LOG_LEVEL", "warning")  # the environment wins over .env
    try:
        from_file = sidecar_settings.load(None, dotenv)
    finally:
        monkey.undo()
    assert from_file.http_port == 9202 and from_file.log_level == "warning"


def test_a_bad_log_level_is_refused_when_loaded() -> None:
    assert sidecar_settings.load({"TT_SIDECAR_LOG_LEVEL": "WARNING"}).log_level == "warning"
    with pytest.raises(ValueError, match="TT_SIDECAR_LOG_LEVEL='verbose': expected one of"):
        sidecar_settings.load({"TT_SIDECAR_LOG_LEVEL": "verbose"})
