"""The next-best-action catalogue, the contact policy and RM assignment, as pure functions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from contracts import AccountSummary, Behaviour, Interactions, TransactionWindow
from services.engagement.policy import Manager, TaskHistory, arbitrate, choose_manager
from services.engagement.rules import (
    DEFAULT_CATALOGUE_FILE,
    Catalogue,
    Facts,
    Proposal,
    Rule,
    Signals,
    load_catalogue,
    next_birthday,
)

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
CATALOGUE = load_catalogue()
RULES = {rule.name: rule for rule in CATALOGUE.rules()}
VIP = Facts(
    customer_id="C1",
    tier="vip",
    tier_since=NOW - timedelta(days=20),
    branch_id="BR01",
    marketing_consent=True,
    aum_cny=Decimal("300000"),
    aum_avg_30d_cny=Decimal("300000"),
)


def rule(name: str) -> Rule:
    return RULES[name]


def window(days: int, count: int, *, outflow: str = "0", channels: dict[str, int] | None = None) -> TransactionWindow:
    return TransactionWindow.model_validate(
        {
            "days": days,
            "count": count,
            "credit_count": 0,
            "debit_count": count,
            "credit_cny": "0",
            "debit_cny": outflow,
            "external_outflow_cny": outflow,
            "by_channel": channels if channels is not None else {"branch": count},
            "branch_share": "1" if channels is None else "0.5",
        }
    )


def behaviour(outflow: str = "0", channels: dict[str, int] | None = None) -> Behaviour:
    return Behaviour(
        last_30d=window(30, 10, outflow=outflow, channels=channels), last_90d=window(90, 30, channels=channels)
    )


def account(product: str, maturity: date | None, balance: str = "100000.00") -> AccountSummary:
    data: dict[str, Any] = {
        "source": "core",
        "account_ref": f"A-{product}",
        "product": product,
        "status": "open",
        "currency": "CNY",
        "balance": balance,
        "balance_cny": balance,
        "maturity_date": maturity.isoformat() if maturity else None,
    }
    return AccountSummary.model_validate(data)


# -- the rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("from_tier", "to_tier"), [(None, "vip"), ("affluent", "vip"), ("mass", "private")])
def test_entering_vip_or_above_proposes_a_welcome(from_tier: str | None, to_tier: str) -> None:
    proposal = rule("welcome").propose(VIP, Signals(entered_tier=(from_tier, to_tier)), NOW)
    assert proposal is not None
    assert (proposal.action, proposal.due_at, proposal.marketing) == ("welcome", NOW + timedelta(days=3), False)
    assert to_tier in proposal.reason


@pytest.mark.parametrize(("from_tier", "to_tier"), [("vip", "wealth"), ("private", "vip"), (None, "mass")])
def test_moves_within_or_below_the_premium_tiers_welcome_nobody(from_tier: str | None, to_tier: str) -> None:
    assert rule("welcome").propose(VIP, Signals(entered_tier=(from_tier, to_tier)), NOW) is None
    assert rule("welcome").propose(VIP, Signals(), NOW) is None


def test_retention_calls_on_outflow_churn_risk_or_a_grace_period_begun() -> None:
    retention = rule("retention_call")
    assert retention.propose(VIP, Signals(), NOW) is None
    leaving = replace(VIP, aum_cny=Decimal("200000"), behaviour=behaviour(outflow="100000"))
    found = retention.propose(leaving, Signals(), NOW)
    assert found is not None
    assert found.reason == "moved 100,000.00 CNY (33% of assets) to other banks in 30 days"
    assert retention.propose(replace(VIP, churn_risk=0.6), Signals(), NOW) is not None
    assert retention.propose(replace(VIP, churn_risk=0.59), Signals(), NOW) is None
    watch = retention.propose(VIP, Signals(watch_started=True), NOW)
    assert watch is not None
    assert "grace period has begun" in watch.reason


def test_upsell_when_the_average_is_within_reach_of_the_next_floor() -> None:
    upsell = rule("upsell_next_tier")
    near = replace(VIP, tier="affluent", aum_avg_30d_cny=Decimal("180000"))
    found = upsell.propose(near, Signals(), NOW)
    assert found is not None
    assert found.marketing
    assert found.reason == (
        "30-day average AUM 180,000.00 CNY is 20,000.00 CNY short of the vip floor of 200,000.00 CNY"
    )
    assert upsell.propose(replace(near, aum_avg_30d_cny=Decimal("179999.99")), Signals(), NOW) is None
    assert upsell.propose(replace(VIP, aum_avg_30d_cny=Decimal("2500000")), Signals(), NOW) is None


def test_maturity_reinvestment_in_the_window_once_per_maturity() -> None:
    maturity = rule("maturity_reinvestment")
    matures = NOW.date() + timedelta(days=10)
    facts = replace(VIP, accounts=(account("time_deposit", matures), account("current", None)))
    found = maturity.propose(facts, Signals(), NOW)
    assert found is not None
    assert found.due_at == datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    assert "time_deposit A-time_deposit holding 100,000.00 CNY matures on 2026-12-02" in found.reason
    asked = replace(facts, last_created={"maturity_reinvestment": NOW - timedelta(days=1)})
    assert maturity.propose(asked, Signals(), NOW) is None
    later = replace(VIP, accounts=(account("wealth_product", NOW.date() + timedelta(days=30)),))
    assert maturity.propose(later, Signals(), NOW) is None
    assert maturity.next_check(later, NOW) == datetime(2026, 12, 8, 0, 0, tzinfo=UTC)


def test_birthday_greeting_for_premium_customers_once_a_year() -> None:
    greeting = rule("birthday_greeting")
    facts = replace(VIP, birth_date=date(1980, 11, 27))
    found = greeting.propose(facts, Signals(), NOW)
    assert found is not None
    assert found.due_at == datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    assert greeting.propose(replace(facts, last_created={"birthday_greeting": NOW}), Signals(), NOW) is None
    assert greeting.propose(replace(facts, tier="affluent"), Signals(), NOW) is None
    assert greeting.propose(replace(facts, birth_date=date(1980, 12, 5)), Signals(), NOW) is None
    assert greeting.next_check(replace(facts, birth_date=date(1980, 12, 5)), NOW) == datetime(2026, 11, 28, tzinfo=UTC)
    # Inside this year's window, the next look is next year's window.
    assert greeting.next_check(facts, NOW) == datetime(2027, 11, 20, tzinfo=UTC)


def test_a_29_february_birthday_is_greeted_on_1_march_in_common_years() -> None:
    assert next_birthday(date(1988, 2, 29), date(2027, 1, 10)) == date(2027, 3, 1)
    assert next_birthday(date(1988, 2, 29), date(2028, 1, 10)) == date(2028, 2, 29)


def test_periodic_revisit_after_the_tiers_cadence_without_contact() -> None:
    revisit = rule("periodic_revisit")
    assert revisit.propose(VIP, Signals(), NOW) is None
    assert revisit.next_check(VIP, NOW) == VIP.tier_since + timedelta(days=90)  # type: ignore[operator]
    quiet = replace(VIP, last_contact_at=NOW - timedelta(days=91))
    found = revisit.propose(quiet, Signals(), NOW)
    assert found is not None
    assert found.reason == "no contact since 2026-08-23: vip customers are visited every 90 days"
    assert revisit.propose(replace(quiet, tier="private", last_contact_at=NOW - timedelta(days=31)), Signals(), NOW)
    # A revisit not reached is asked for again a cadence later, not at once.
    asked = replace(quiet, last_created={"periodic_revisit": NOW - timedelta(days=10)})
    assert revisit.propose(asked, Signals(), NOW) is None
    assert revisit.propose(replace(VIP, tier="affluent", last_contact_at=None), Signals(), NOW) is None


def test_service_recovery_once_per_new_complaint() -> None:
    recovery = rule("service_recovery")
    complained = replace(VIP, interactions=Interactions(open_complaints=1, last_complaint_at=NOW - timedelta(hours=2)))
    found = recovery.propose(complained, Signals(), NOW)
    assert found is not None
    assert (found.priority, found.due_at, found.marketing) == (95, NOW + timedelta(days=2), False)
    handled = replace(complained, last_created={"service_recovery": NOW - timedelta(hours=1)})
    assert recovery.propose(handled, Signals(), NOW) is None
    assert recovery.propose(replace(VIP, interactions=Interactions(open_complaints=0)), Signals(), NOW) is None


def test_e_channel_migration_for_counter_heavy_customers_without_mobile_or_online() -> None:
    migration = rule("e_channel_migration")
    counter = replace(VIP, tags=frozenset({"counter_heavy"}), behaviour=behaviour())
    assert migration.propose(counter, Signals(), NOW) is not None
    mixed = replace(counter, behaviour=behaviour(channels={"branch": 20, "mobile": 1}))
    assert migration.propose(mixed, Signals(), NOW) is None


def test_reactivation_for_dormant_customers_with_assets() -> None:
    reactivation = rule("reactivation")
    dormant = replace(VIP, tags=frozenset({"dormant"}))
    assert reactivation.propose(dormant, Signals(), NOW) is not None
    assert reactivation.propose(replace(dormant, aum_cny=Decimal("9999.99")), Signals(), NOW) is None


def test_risk_follow_up_when_a_flag_appears_with_its_reason() -> None:
    risk = rule("risk_follow_up")
    flagged = replace(VIP, flag_reasons={"loan_overdue": "consumer_loan L1 still owes 8,000.00 CNY"})
    found = risk.propose(flagged, Signals(new_flags=frozenset({"loan_overdue"})), NOW)
    assert found is not None
    assert found.reason == "new risk: consumer_loan L1 still owes 8,000.00 CNY"
    assert not found.marketing
    assert risk.propose(flagged, Signals(), NOW) is None


# -- the contact policy -------------------------------------------------------------------------


def proposal(action: str, priority: int, *, marketing: bool = False) -> Proposal:
    return Proposal("C1", action, f"because {action}", priority, NOW, marketing)


def test_the_contact_policy_suppresses_with_reasons_and_caps_by_priority() -> None:
    proposals = [
        proposal("welcome", 70),
        proposal("retention_call", 90),
        proposal("upsell_next_tier", 50, marketing=True),
        proposal("risk_follow_up", 85),
        proposal("periodic_revisit", 45),
        proposal("reactivation", 35, marketing=True),
        proposal("service_recovery", 95),
    ]
    history = TaskHistory(
        open_actions=frozenset({"welcome"}),
        last_closed={"retention_call": NOW - timedelta(days=10)},
        created_last_week=1,
    )
    result = arbitrate(proposals, history, CATALOGUE.actions, consent=False, weekly_cap=3, now=NOW)
    assert [p.action for p in result.create] == ["service_recovery", "risk_follow_up"]
    why = {s.proposal.action: (s.code, s.reason) for s in result.suppressed}
    assert why["welcome"] == ("open_task", "an open welcome task already exists")
    assert why["retention_call"][0] == "cooldown"
    assert "cooldown of 30 days until 2026-12-12" in why["retention_call"][1]
    assert why["upsell_next_tier"] == ("no_consent", "marketing action and marketing consent is withheld")
    assert why["reactivation"][0] == "no_consent"
    assert why["periodic_revisit"][0] == "weekly_cap"


def test_unknown_consent_is_no_consent_and_service_actions_need_none() -> None:
    result = arbitrate(
        [proposal("reactivation", 35, marketing=True), proposal("risk_follow_up", 85)],
        TaskHistory(),
        CATALOGUE.actions,
        consent=None,
        weekly_cap=3,
        now=NOW,
    )
    assert [p.action for p in result.create] == ["risk_follow_up"]
    assert result.suppressed[0].reason == "marketing action and marketing consent is not known"


def test_a_cooldown_ends() -> None:
    history = TaskHistory(last_closed={"retention_call": NOW - timedelta(days=30)})
    result = arbitrate(
        [proposal("retention_call", 90)], history, CATALOGUE.actions, consent=True, weekly_cap=3, now=NOW
    )
    assert [p.action for p in result.create] == ["retention_call"]


# -- assignment -----------------------------------------------------------------------------------


def rm(
    rm_id: str, *, grade: str = "wealth_manager", branch: str = "BR01", capacity: int = 10, load: int = 0
) -> Manager:
    return Manager(rm_id, grade, branch, capacity, True, load)


def test_the_least_loaded_rm_of_the_grade_in_the_branch_is_chosen() -> None:
    roster = [
        rm("RM1", load=5),
        rm("RM2", capacity=20, load=8),
        rm("RM3", branch="BR02"),
        rm("RM4", grade="private_banker"),
    ]
    assert choose_manager(None, "wealth_manager", "BR01", roster) == roster[1]  # 8/20 < 5/10


def test_an_assignment_is_sticky_until_the_grade_changes_or_the_rm_leaves() -> None:
    mine = rm("RM1", load=9)
    roster = [mine, rm("RM2")]
    assert choose_manager(mine, "wealth_manager", "BR01", roster) == mine
    assert choose_manager(mine, "senior_wealth_manager", "BR01", roster) is None
    assert choose_manager(replace(mine, active=False), "wealth_manager", "BR01", roster) == roster[1]
    assert choose_manager(mine, None, "BR01", roster) is None


def test_with_nobody_suitable_the_customer_waits_in_the_branch_queue() -> None:
    assert choose_manager(None, "wealth_manager", "BR01", [rm("RM1", capacity=3, load=3)]) is None
    assert choose_manager(None, "wealth_manager", None, [rm("RM1")]) is None


# -- the catalogue file --------------------------------------------------------------------------


def test_the_catalogue_has_every_action_and_refuses_a_malformed_one(tmp_path: Path) -> None:
    assert set(RULES) == set(CATALOGUE.actions)
    data = yaml.safe_load(DEFAULT_CATALOGUE_FILE.read_text())
    data["actions"]["reactivation"]["params"]["min_aum_cny"] = "lots"
    with pytest.raises(ValidationError, match="reactivation"):
        Catalogue.model_validate(data)
    data = yaml.safe_load(DEFAULT_CATALOGUE_FILE.read_text())
    data["actions"]["lottery"] = {"priority": 1, "marketing": True}
    with pytest.raises(ValidationError, match="no rule for actions"):
        Catalogue.model_validate(data)
    data = yaml.safe_load(DEFAULT_CATALOGUE_FILE.read_text())
    data["actions"]["birthday_greeting"]["enabled"] = False
    path = tmp_path / "actions.yaml"
    path.write_text(yaml.safe_dump(data))
    quiet = {r.name: r for r in load_catalogue(path).rules()}["birthday_greeting"]
    assert quiet.propose(replace(VIP, birth_date=date(1980, 11, 27)), Signals(), NOW) is None
