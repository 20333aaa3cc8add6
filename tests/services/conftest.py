"""Fixtures shared by the services' tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def encodings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The types of the events encoded from here on, one entry per encoding."""
    import servo.core.events as events_module
    import servo.services.ledger as ledger_module

    encoded: list[str] = []
    original = events_module.encode_event

    def counting(event: Any) -> bytes:
        encoded.append(event.event_type)
        return original(event)

    monkeypatch.setattr(events_module, "encode_event", counting)
    monkeypatch.setattr(ledger_module, "encode_event", counting)
    return encoded
