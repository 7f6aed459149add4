"""The segment rule language and campaign volume caps, as pure functions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from contracts import ProfileUpdated
from services.engagement.campaigns import (
    CAMPAIGN_CONTACT,
    Allowance,
    CampaignAction,
    business_day_start,
    campaign_proposal,
    campaign_settings,
)
from services.engagement.rules import Facts, load_catalogue
from services.engagement.segments import RuleError, Subject, parse_rule, subject_of
from tests.builders import profile_updated

TODAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def customer(**facts: Any) -> Subject:
    extra = {k: facts.pop(k) for k in ("liabilities_cny", "value_score", "holdings") if k in facts}
    return Subject(Facts(customer_id="C1", **facts), **extra)


def matches(rule: dict[str, Any], subject: Subject) -> bool:
    return parse_rule(rule)(subject, TODAY)


def cmp(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


@pytest.mark.parametrize(
    ("rule", "subject", "expected"),
    [
        (cmp("tier", "eq", "vip"), customer(tier="vip"), True),
        (cmp("tier", "eq", "vip"), customer(tier="wealth"), False),
        (cmp("tier", "in", ["vip", "wealth"]), customer(tier="wealth"), True),
        (cmp("tier", "in", ["vip", "wealth"]), customer(tier="mass"), False),
        (cmp("aum_cny", "gte", "200000"), customer(aum_cny=Decimal("200000.00")), True),
        (cmp("aum_cny", "gte", "200000"), customer(aum_cny=Decimal("199999.99")), False),
        (cmp("aum_avg_30d_cny", "lt", 50000), customer(aum_avg_30d_cny=Decimal("49999.99")), True),
        (cmp("aum_avg_30d_cny", "lt", 50000), customer(aum_avg_30d_cny=Decimal("50000")), False),
        (cmp("liabilities_cny", "between", ["1000", "5000.50"]), customer(liabilities_cny=Decimal("5000.50")), True),
        (cmp("liabilities_cny", "between", ["1000", "5000.50"]), customer(liabilities_cny=Decimal("5000.51")), False),
        (cmp("value_score", "gte", 70), customer(value_score=70), True),
        (cmp("churn_risk", "gte", 0.6), customer(churn_risk=0.59), False),
        (cmp("marketing_consent", "eq", True), customer(marketing_consent=True), True),
        (cmp("on_watch", "eq", True), customer(watch_since=NOW), True),
        (cmp("on_watch", "eq", True), customer(), False),
        (cmp("branch_id", "eq", "BR01"), customer(branch_id="BR01"), True),
        # age is whole years on the day of evaluation: the day before the birthday, still 39
        (cmp("age", "between", [40, 49]), customer(birth_date=date(1986, 11, 24)), False),
        (cmp("age", "between", [40, 49]), customer(birth_date=date(1986, 11, 23)), True),
        (cmp("days_since_last_contact", "gte", 90), customer(last_contact_at=NOW - timedelta(days=90)), True),
        (cmp("days_since_last_contact", "gte", 90), customer(last_contact_at=NOW - timedelta(days=89)), False),
        ({"has_tag": "payroll"}, customer(tags=frozenset({"payroll"})), True),
        ({"has_tag": "payroll"}, customer(tags=frozenset({"dormant"})), False),
        ({"holds_product": "time_deposit"}, customer(holdings=frozenset({"time_deposit"})), True),
        ({"holds_product": "fund"}, customer(holdings=frozenset({"time_deposit"})), False),
        ({"has_flag": "loan_overdue"}, customer(risk_flags=frozenset({"loan_overdue"})), True),
    ],
)
def test_each_operator(rule: dict[str, Any], subject: Subject, expected: bool) -> None:
    assert matches(rule, subject) is expected


def test_a_value_the_customer_does_not_have_never_compares_and_not_turns_it_round() -> None:
    unknown = customer()  # no tier, no birth date, never contacted, no churn risk
    for rule in (
        cmp("tier", "eq", "vip"),
        cmp("age", "gte", 0),
        cmp("days_since_last_contact", "lt", 100000),
        cmp("churn_risk", "lt", 1),
    ):
        assert not matches(rule, unknown)
        assert matches({"not": rule}, unknown)


def test_nesting_all_any_not() -> None:
    rule = {
        "all": [
            cmp("tier", "in", ["vip", "wealth"]),
            {"any": [{"has_tag": "dormant"}, cmp("churn_risk", "gte", 0.6)]},
            {"not": cmp("marketing_consent", "eq", False)},
        ]
    }
    assert matches(rule, customer(tier="vip", tags=frozenset({"dormant"})))
    assert matches(rule, customer(tier="wealth", churn_risk=0.7, marketing_consent=True))
    assert not matches(rule, customer(tier="wealth", churn_risk=0.7, marketing_consent=False))
    assert not matches(rule, customer(tier="vip", churn_risk=0.2))
    assert not matches(rule, customer(tier="mass", tags=frozenset({"dormant"})))
    assert parse_rule(rule).fields == {"tier", "churn_risk", "marketing_consent"}
    assert not parse_rule(rule).reads_calendar
    assert parse_rule({"not": cmp("age", "gte", 60)}).reads_calendar


@pytest.mark.parametrize(
    ("rule", "path", "says"),
    [
        ("vip", "rule", "expected an object"),
        ({"all": []}, "rule.all", "non-empty list"),
        ({"all": [cmp("tier", "eq", "vip"), {"sql": "1=1"}]}, "rule.all[1]", "unknown condition"),
        ({"any": [cmp("tierr", "eq", "vip")]}, "rule.any[0].field", "unknown field 'tierr'"),
        (cmp("aum_cny", "like", "1"), "rule.op", "unknown operator 'like'"),
        (cmp("tier", "gte", "vip"), "rule.op", "gte needs a number field"),
        (cmp("aum_cny", "gte", "lots"), "rule.value", "not an amount"),
        (cmp("aum_cny", "gte", "NaN"), "rule.value", "finite"),
        (cmp("aum_cny", "between", ["1"]), "rule.value", "exactly two bounds"),
        (cmp("aum_cny", "between", ["5", "1"]), "rule.value", "low bound is above"),
        (cmp("age", "gte", 40.5), "rule.value", "whole number"),
        (cmp("age", "gte", "40"), "rule.value", "JSON number"),
        (cmp("marketing_consent", "eq", "yes"), "rule.value", "true or false"),
        (cmp("tier", "in", []), "rule.value", "non-empty list"),
        ({"not": {"field": "tier", "op": "eq"}}, "rule.not", "exactly the keys field, op and value"),
        ({"holds_product": "yacht"}, "rule.holds_product", "unknown product 'yacht'"),
        ({"has_tag": ""}, "rule.has_tag", "1 to 64 characters"),
        ({"all": [cmp("tier", "eq", "vip")], "any": [cmp("tier", "eq", "vip")]}, "rule", "unknown condition"),
    ],
)
def test_validation_names_the_bad_part(rule: object, path: str, says: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule(rule)
    assert caught.value.path == path
    assert says in caught.value.message


def test_depth_and_size_are_bounded() -> None:
    deep: dict[str, Any] = cmp("tier", "eq", "vip")
    for _ in range(8):
        deep = {"not": deep}
    with pytest.raises(RuleError, match="nested deeper"):
        parse_rule(deep)
    with pytest.raises(RuleError, match="more than 200 conditions"):
        parse_rule({"any": [{"all": [cmp("tier", "eq", "vip")] * 100}, {"all": [cmp("tier", "eq", "x")] * 101}]})


def test_subject_reads_liabilities_and_open_products_from_the_stored_profile() -> None:
    stored = {
        **profile_updated("C1", "1000.00").data,
        "liabilities_cny": "1200.50",
        "product_holdings": {"mortgage": 1, "fund": 0},
    }
    subject = subject_of(Facts(customer_id="C1"), ProfileUpdated.from_stored(stored), 80)
    assert subject.liabilities_cny == Decimal("1200.50")
    assert subject.holdings == {"mortgage"}
    assert subject.value_score == 80
    unknown = subject_of(Facts(customer_id="C2"), None, None)
    assert (unknown.liabilities_cny, unknown.holdings, unknown.value_score) == (None, frozenset(), None)


def test_daily_and_branch_caps_leave_the_rest_waiting() -> None:
    allowance = Allowance(daily_cap=3, branch_daily_cap=2)
    taken = []
    for cid, branch in [("a", "B1"), ("b", "B1"), ("c", "B1"), ("d", "B2"), ("e", "B2")]:
        if allowance.allows(branch):
            allowance.take(branch)
            taken.append(cid)
    assert taken == ["a", "b", "d"]  # c: B1 is full today; e: the overall cap of 3 is reached
    assert allowance.exhausted()


def test_without_caps_everyone_goes_and_counts_carry_over_from_earlier_today() -> None:
    assert Allowance(None, None, used=10_000).allows("B1")
    earlier = Allowance(daily_cap=5, branch_daily_cap=2, used=2)
    earlier.used_by_branch["B1"] = 2
    assert not earlier.allows("B1")
    assert earlier.allows("B2")


def test_the_business_day_starts_at_local_midnight() -> None:
    late_utc = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # 01:00 on the 24th in Shanghai
    start = business_day_start(late_utc, "Asia/Shanghai")
    assert start.astimezone(UTC) == datetime(2026, 11, 23, 16, 0, tzinfo=UTC)


def test_a_campaign_task_keeps_the_catalogue_policy_of_its_action_with_the_campaigns_priority() -> None:
    actions = load_catalogue().actions
    contact = CampaignAction("CMP1", "Spring deposits", CAMPAIGN_CONTACT, "offer the 3-year rate", 60, 5)
    proposal = campaign_proposal(contact, "C1", campaign_settings(contact, actions), NOW)
    assert (proposal.action, proposal.priority, proposal.marketing) == (CAMPAIGN_CONTACT, 60, True)
    assert proposal.reason == "campaign Spring deposits: offer the 3-year rate"
    assert proposal.due_at == NOW + timedelta(days=5)
    retention = CampaignAction("CMP2", "Keep them", "retention_call", None, 80, 2)
    assert campaign_proposal(retention, "C1", campaign_settings(retention, actions), NOW).marketing is False


def test_the_demo_segments_and_campaign_are_valid_definitions() -> None:
    from c360.demo import DEMO_SEGMENTS, demo_campaign
    from services.engagement.audience_api import CampaignIn, SegmentIn

    for segment in DEMO_SEGMENTS.values():
        parse_rule(SegmentIn.model_validate(segment).rule)
    campaign = CampaignIn.model_validate(demo_campaign(NOW))
    assert campaign.segment_id in DEMO_SEGMENTS
    assert campaign.action in {*load_catalogue().actions, CAMPAIGN_CONTACT}
