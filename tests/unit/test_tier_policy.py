"""The tier policy file and the tier decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.scoring.policy import TierPolicy, TierState, assess, load_policy, watch_ends

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


T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
VIP = TierState("vip", T0 - timedelta(days=200))


def test_a_first_assessment_is_a_change_from_no_tier() -> None:
    outcome = assess(POLICY, None, Decimal("350000"), T0)
    assert outcome.change is not None
    assert (outcome.change.from_tier, outcome.change.to_tier) == (None, "vip")
    assert outcome.state == TierState("vip", T0)
    assert "first assessment" in outcome.change.reason


def test_an_unchanged_tier_is_no_event() -> None:
    outcome = assess(POLICY, VIP, Decimal("350000"), T0)
    assert outcome.state == VIP
    assert not outcome.eventful


def test_an_upgrade_takes_effect_at_once_and_says_why() -> None:
    outcome = assess(POLICY, TierState("affluent", T0 - timedelta(days=9)), Decimal("200000.00"), T0)
    assert outcome.change is not None
    assert (outcome.change.from_tier, outcome.change.to_tier) == ("affluent", "vip")
    assert outcome.change.reason == "upgrade: 30-day average AUM 200,000.00 CNY reached the vip floor of 200,000.00 CNY"
    assert outcome.state == TierState("vip", T0)


def test_falling_below_the_floor_puts_the_customer_on_watch_not_down() -> None:
    outcome = assess(POLICY, VIP, Decimal("199999.99"), T0)
    assert outcome.change is None
    assert outcome.watch == "started"
    assert outcome.state == TierState("vip", VIP.since, watch_since=T0)
    assert outcome.reason is not None
    assert "below the vip floor" in outcome.reason
    assert "downgrade on 2026-05-30" in outcome.reason  # 90 days on


def test_the_downgrade_comes_exactly_when_the_grace_period_ends() -> None:
    watching = TierState("vip", VIP.since, watch_since=T0)
    just_before = assess(POLICY, watching, Decimal("150000"), T0 + timedelta(days=90) - timedelta(microseconds=1))
    assert just_before.state == watching
    assert not just_before.eventful
    at_the_end = assess(POLICY, watching, Decimal("150000"), T0 + timedelta(days=90))
    assert at_the_end.change is not None
    assert (at_the_end.change.from_tier, at_the_end.change.to_tier) == ("vip", "affluent")
    assert at_the_end.state == TierState("affluent", T0 + timedelta(days=90))
    assert "the whole 90-day grace period" in at_the_end.change.reason


def test_the_downgrade_lands_in_the_tier_of_the_measure_at_the_end() -> None:
    watching = TierState("wealth", VIP.since, watch_since=T0)
    outcome = assess(POLICY, watching, Decimal("12000"), T0 + timedelta(days=91))
    assert outcome.change is not None
    assert outcome.change.to_tier == "mass"


def test_climbing_back_during_grace_keeps_the_tier_and_resets_the_clock() -> None:
    watching = TierState("vip", VIP.since, watch_since=T0)
    back = assess(POLICY, watching, Decimal("200000"), T0 + timedelta(days=60))
    assert back.watch == "ended"
    assert back.change is None
    assert back.state == VIP
    # Falling again starts a new, whole grace period.
    again = assess(POLICY, back.state, Decimal("100000"), T0 + timedelta(days=61))
    assert again.state.watch_since == T0 + timedelta(days=61)
    still = assess(POLICY, again.state, Decimal("100000"), T0 + timedelta(days=120))
    assert still.state.tier == "vip"


def test_an_upgrade_while_on_watch_ends_the_watch() -> None:
    watching = TierState("vip", VIP.since, watch_since=T0)
    outcome = assess(POLICY, watching, Decimal("1500000"), T0 + timedelta(days=10))
    assert outcome.state == TierState("wealth", T0 + timedelta(days=10))


def test_private_customers_have_180_days_of_grace() -> None:
    watching = TierState("private", VIP.since, watch_since=T0)
    assert POLICY.grace("private") == timedelta(days=180)
    assert assess(POLICY, watching, Decimal("1"), T0 + timedelta(days=179)).state == watching
    assert assess(POLICY, watching, Decimal("1"), T0 + timedelta(days=180)).state.tier == "mass"
    assert watch_ends(POLICY, watching) == T0 + timedelta(days=180)


def test_a_tier_the_policy_no_longer_has_is_reassigned_at_once() -> None:
    outcome = assess(POLICY, TierState("gold", VIP.since), Decimal("60000"), T0)
    assert outcome.change is not None
    assert (outcome.change.from_tier, outcome.change.to_tier) == ("gold", "affluent")


def test_report_bands_follow_the_domain_table() -> None:
    assert [POLICY.band_of(Decimal(a)) for a in ("0", "49999.99", "50000", "199999.99", "200000")] == [0, 0, 1, 1, 2]
    assert [POLICY.band_label(i) for i in range(3)] == ["0 to 50,000", "50,000 to 200,000", "200,000 and above"]


def test_a_policy_with_different_tiers_is_read_from_its_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        'measure: aum_cny\ngrace_days: 30\ntiers:\n  - {name: basic, floor: "0"}\n'
        '  - {name: gold, floor: "10000", grace_days: 7}\n'
    )
    policy = load_policy(path)
    assert policy.tier_for(Decimal("9999.99")).name == "basic"
    assert policy.tier_for(Decimal("10000")).name == "gold"
    assert (policy.grace("basic"), policy.grace("gold")) == (timedelta(days=30), timedelta(days=7))
    gold = TierState("gold", T0, watch_since=T0)
    assert assess(policy, gold, Decimal("9000"), T0 + timedelta(days=7)).state.tier == "basic"


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


def test_the_default_policy_decides_on_the_30_day_average_with_90_days_of_grace() -> None:
    assert (POLICY.measure, POLICY.grace("vip"), POLICY.grace("mass")) == (
        "aum_avg_30d_cny",
        timedelta(days=90),
        timedelta(days=90),
    )


@pytest.mark.parametrize("bands", [["10", "50000"], ["0", "50000", "50000"], ["0", 5.5]])
def test_malformed_report_bands_are_refused(bands: list[object]) -> None:
    with pytest.raises(ValidationError):
        TierPolicy.model_validate({"tiers": [{"name": "a", "floor": "0"}], "report_bands": bands})
