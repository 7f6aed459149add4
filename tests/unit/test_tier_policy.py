"""The tier policy file and the tier decision."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.scoring.policy import TierPolicy, decide_tier, load_policy

POLICY = load_policy()


@pytest.mark.parametrize(
    ("aum", "tier"),
    [
        ("0", "mass"),
        ("49999.99", "mass"),
        ("50000", "affluent"),
        ("199999.99", "affluent"),
        ("200000.00", "vip"),
        ("999999.99", "vip"),
        ("1000000", "wealth"),
        ("1999999.99", "wealth"),
        ("2000000", "private"),
        ("-50", "mass"),
    ],
)
def test_the_default_policy_puts_each_floor_in_the_higher_tier(aum: str, tier: str) -> None:
    assert POLICY.tier_for(Decimal(aum)).name == tier


def test_the_default_policy_names_the_rm_grade_of_each_tier() -> None:
    grades = {t.name: t.rm_grade for t in POLICY.tiers}
    assert grades == {
        "mass": None,
        "affluent": None,
        "vip": "wealth_manager",
        "wealth": "senior_wealth_manager",
        "private": "private_banker",
    }


def test_a_first_assessment_is_a_change_from_no_tier() -> None:
    decision = decide_tier(POLICY, None, Decimal("350000"))
    assert decision is not None
    assert (decision.from_tier, decision.to_tier) == (None, "vip")
    assert "first assessment" in decision.reason


def test_an_unchanged_tier_is_no_decision() -> None:
    assert decide_tier(POLICY, "vip", Decimal("350000")) is None


def test_upgrades_and_downgrades_say_why() -> None:
    up = decide_tier(POLICY, "affluent", Decimal("200000"))
    down = decide_tier(POLICY, "vip", Decimal("150000"))
    assert up is not None
    assert up.reason.startswith("upgrade")
    assert "200000" in up.reason
    assert down is not None
    assert down.reason.startswith("downgrade")
    assert down.to_tier == "affluent"


def test_a_policy_with_different_tiers_is_read_from_its_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text('measure: aum_cny\ntiers:\n  - {name: basic, floor: "0"}\n  - {name: gold, floor: "10000"}\n')
    policy = load_policy(path)
    assert policy.tier_for(Decimal("9999.99")).name == "basic"
    assert policy.tier_for(Decimal("10000")).name == "gold"


@pytest.mark.parametrize(
    "tiers",
    [
        [{"name": "a", "floor": "10"}],
        [{"name": "a", "floor": "0"}, {"name": "b", "floor": "0"}],
        [{"name": "a", "floor": "0"}, {"name": "a", "floor": "5"}],
        [{"name": "a", "floor": "0"}, {"name": "b", "floor": 5.5}],
    ],
)
def test_a_malformed_policy_is_refused(tiers: list[dict[str, object]]) -> None:
    with pytest.raises(ValidationError):
        TierPolicy.model_validate({"measure": "aum_cny", "tiers": tiers})
