"""Next-best-action rules as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.engagement.rules import WelcomeRule

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
RULE = WelcomeRule(premium_tiers=("vip", "wealth", "private"), due_in=timedelta(days=3))


@pytest.mark.parametrize(
    ("from_tier", "to_tier"), [(None, "vip"), ("affluent", "vip"), ("mass", "private"), (None, "wealth")]
)
def test_entering_vip_or_above_proposes_a_welcome(from_tier: str | None, to_tier: str) -> None:
    proposal = RULE.propose("C1", from_tier, to_tier, NOW)
    assert proposal is not None
    assert proposal.action == "welcome"
    assert proposal.due_at == NOW + timedelta(days=3)
    assert not proposal.marketing
    assert to_tier in proposal.reason


@pytest.mark.parametrize(
    ("from_tier", "to_tier"), [("vip", "wealth"), ("private", "vip"), (None, "mass"), ("mass", "affluent")]
)
def test_moves_within_or_below_the_premium_tiers_propose_nothing(from_tier: str | None, to_tier: str) -> None:
    assert RULE.propose("C1", from_tier, to_tier, NOW) is None
