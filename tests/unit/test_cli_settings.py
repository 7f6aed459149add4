"""How `c360 up` decides between configured servers and the embedded default."""

from __future__ import annotations

import pytest

from c360.cli import configured_bootstrap
from runtime.settings import RuntimeSettings


@pytest.mark.parametrize("name", ["KAFKA_BOOTSTRAP_SERVERS", "C360_KAFKA_BOOTSTRAP_SERVERS"])
def test_a_broker_named_under_either_variable_is_used(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("C360_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv(name, "kafka-1:9092,kafka-2:9092")
    assert configured_bootstrap(RuntimeSettings()) == "kafka-1:9092,kafka-2:9092"


def test_without_a_configured_broker_the_embedded_one_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("C360_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("C360_BROKER_PORT", "19092")
    settings = RuntimeSettings()
    assert configured_bootstrap(settings) is None
    assert settings.broker_port == 19092
