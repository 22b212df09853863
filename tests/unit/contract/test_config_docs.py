"""Configuration docs and .env.sample cannot drift from the settings the code reads."""

from __future__ import annotations

import dataclasses
import re

from support import ROOT
from telemetry_contract.settings_source import read_dotenv
from trading_publisher import settings as publisher
from trading_sidecar import settings as sidecar

KNOWN = {
    f"{module.PREFIX}{field.name.upper()}"
    for module, cls in (
        (sidecar, sidecar.SidecarSettings),
        (publisher, publisher.PublisherSettings),
    )
    for field in dataclasses.fields(cls)
} | {"TT_PROMETHEUS_PORT"}


def test_env_sample_names_only_real_settings() -> None:
    sample = read_dotenv(ROOT / ".env.sample")
    assert sample, ".env.sample is empty"
    assert set(sample) <= KNOWN, set(sample) - KNOWN
    commented = set(re.findall(r"^# (TT_[A-Z_]+)=", (ROOT / ".env.sample").read_text(), re.M))
    assert commented <= KNOWN


def test_env_sample_values_load_into_the_settings() -> None:
    sample = read_dotenv(ROOT / ".env.sample")
    assert sidecar.load(sample) == sidecar.SidecarSettings()  # the sample shows the defaults
    assert publisher.load(sample) == publisher.PublisherSettings()


def test_configuration_doc_covers_every_setting() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    missing = {name for name in KNOWN if name not in doc}
    assert not missing, missing
