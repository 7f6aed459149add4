"""Value score, churn risk, risk flags and their reasons, as pure functions of a profile."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from contracts import ProfileUpdated
from services.scoring.scores import (
    ScoreModel,
    Scores,
    compute_scores,
    load_score_model,
    worth_publishing,
)

NOW = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
MODEL = load_score_model()


def window(days: int, count: int, credit: str = "0", debit: str = "0", outflow: str = "0") -> dict[str, Any]:
    return {
        "days": days,
        "count": count,
        "credit_count": count // 2,
        "debit_count": count - count // 2,
        "credit_cny": credit,
        "debit_cny": debit,
        "external_outflow_cny": outflow,
        "by_channel": {"mobile": count},
        "branch_share": "0",
    }


def account(product: str, balance: str, **extra: Any) -> dict[str, Any]:
    return {
        "source": "core-deposits",
        "account_ref": f"A-{product}",
        "product": product,
        "status": "open",
        "currency": "CNY",
        "balance": balance,
        "balance_cny": balance,
        **extra,
    }


def profile(**overrides: Any) -> ProfileUpdated:
    data: dict[str, Any] = {
        "customer_id": "C1",
        "aum_cny": "300000.00",
        "aum_avg_30d_cny": "300000.00",
        "liabilities_cny": "0.00",
        "product_holdings": {"time_deposit": 1, "fund": 1, "current": 1},
        "tags": [],
        "changed": ["balances"],
        "customer_since": "2016-06-01",
        "behaviour": {
            "last_30d": window(30, 10, credit="20000", debit="15000"),
            "last_90d": window(90, 30, credit="60000", debit="45000"),
            "last_transaction_at": (NOW - timedelta(days=2)).isoformat(),
        },
        "interactions": {"open_complaints": 0},
        "accounts": [account("time_deposit", "200000.00"), account("fund", "90000.00"), account("current", "10000.00")],
    }
    data.update(overrides)
    return ProfileUpdated.model_validate(data)


def reason(scores: Scores, factor: str) -> str:
    return next(r.text for r in scores.reasons if r.factor == factor)


def contribution(scores: Scores, factor: str) -> float:
    return next(r.contribution for r in scores.reasons if r.factor == factor)


def test_the_value_score_is_the_sum_of_its_factors_and_each_is_explained() -> None:
    scores = compute_scores(profile(), MODEL, NOW)
    value = [r for r in scores.reasons if r.score == "value"]
    assert {r.factor for r in value} == {"aum", "product_depth", "recency", "frequency", "monetary", "tenure"}
    assert scores.value_score == round(sum(r.contribution for r in value))
    assert 50 < scores.value_score < 90
    assert reason(scores, "aum") == "30-day average AUM of 300,000.00 CNY"
    assert reason(scores, "product_depth") == "holds 3 products (current, fund, time_deposit)"
    assert reason(scores, "recency") == "last transaction 2 days ago"
    assert reason(scores, "tenure") == "customer for 10.0 years (since 2016-06-01)"
    assert contribution(scores, "tenure") == 15
    assert contribution(scores, "recency") == 10


def test_more_assets_more_products_and_more_activity_score_higher() -> None:
    poor = profile(
        aum_cny="800.00",
        aum_avg_30d_cny="800.00",
        product_holdings={"current": 1},
        customer_since=str(NOW.date() - timedelta(days=100)),
        behaviour={
            "last_30d": window(30, 0),
            "last_90d": window(90, 1, debit="50"),
            "last_transaction_at": (NOW - timedelta(days=80)).isoformat(),
        },
    )
    rich = profile(aum_avg_30d_cny="2500000.00", aum_cny="2500000.00")
    assert compute_scores(poor, MODEL, NOW).value_score < 20
    assert compute_scores(rich, MODEL, NOW).value_score > compute_scores(profile(), MODEL, NOW).value_score
    assert contribution(compute_scores(rich, MODEL, NOW), "aum") == 35


def test_a_profile_without_behaviour_scores_on_what_is_known() -> None:
    scores = compute_scores(profile(behaviour=None, customer_since=None, accounts=None, interactions=None), MODEL, NOW)
    assert reason(scores, "recency") == "no transaction on record"
    assert reason(scores, "tenure") == "relationship start unknown"
    assert contribution(scores, "recency") == contribution(scores, "tenure") == 0
    assert scores.churn_risk == 0
    assert scores.risk_flags == ()


def test_a_quiet_loyal_customer_has_low_churn_risk() -> None:
    scores = compute_scores(profile(), MODEL, NOW)
    assert scores.churn_risk == 0
    assert reason(scores, "outflow_30d") == "moved 0.00 CNY (0% of assets) to other banks in 30 days"


def test_outflow_to_other_banks_falling_activity_closed_accounts_and_complaints_raise_churn_risk() -> None:
    leaving = profile(
        aum_cny="150000.00",
        behaviour={
            "last_30d": window(30, 2, debit="150000", outflow="150000"),
            "last_90d": window(90, 26, credit="50000", debit="170000", outflow="150000"),
            "last_transaction_at": (NOW - timedelta(days=1)).isoformat(),
        },
        accounts=[
            account("time_deposit", "150000.00"),
            account("fund", "0.00", status="closed", closed_on=str(NOW.date() - timedelta(days=10))),
        ],
        interactions={"open_complaints": 1},
    )
    scores = compute_scores(leaving, MODEL, NOW)
    assert reason(scores, "outflow_30d") == "moved 150,000.00 CNY (50% of assets) to other banks in 30 days"
    assert contribution(scores, "outflow_30d") == pytest.approx(0.35)
    assert reason(scores, "falling_activity") == "transactions fell from 12 a month to 2 in the last 30 days"
    assert reason(scores, "closed_accounts") == "closed 1 account in 90 days (fund)"
    assert reason(scores, "complaints") == "1 open complaint"
    churn = [r.contribution for r in scores.reasons if r.score == "churn"]
    assert scores.churn_risk == round(sum(churn), 2)
    assert 0.6 < scores.churn_risk <= 1


def test_risk_flags_come_from_overdrawn_accounts_cards_over_the_limit_and_overdue_loans() -> None:
    troubled = profile(
        accounts=[
            account("current", "-1200.00"),
            account("credit_card", "62000.00"),
            account("consumer_loan", "8000.00", maturity_date=str(NOW.date() - timedelta(days=5))),
            account("mortgage", "900000.00", maturity_date="2045-01-01"),
        ]
    )
    scores = compute_scores(troubled, MODEL, NOW)
    assert scores.risk_flags == ("account_overdrawn", "credit_card_overdrawn", "loan_overdue")
    assert reason(scores, "credit_card_overdrawn") == (
        "owes 62,000.00 CNY on credit cards, above the limit of 50,000.00 CNY"
    )
    assert "after its maturity on" in reason(scores, "loan_overdue")
    assert all(r.contribution == 0 for r in scores.reasons if r.score == "flag")


def test_a_change_is_published_only_beyond_the_step_or_when_a_flag_changes() -> None:
    last = Scores(60, 0.2, ("loan_overdue",), ())
    assert worth_publishing(MODEL, None, last)
    assert not worth_publishing(MODEL, last, Scores(65, 0.25, ("loan_overdue",), ()))
    assert worth_publishing(MODEL, last, Scores(66, 0.2, ("loan_overdue",), ()))
    assert worth_publishing(MODEL, last, Scores(60, 0.26, ("loan_overdue",), ()))
    assert worth_publishing(MODEL, last, Scores(60, 0.2, (), ()))


def test_weights_live_in_a_file_and_must_add_up(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text("value: {aum: 100, product_depth: 0, recency: 0, frequency: 0, monetary: 0, tenure: 0}\n")
    only_aum = load_score_model(path)
    scores = compute_scores(profile(aum_avg_30d_cny="5000000.00"), only_aum, NOW)
    assert scores.value_score == 100
    with pytest.raises(ValidationError):
        ScoreModel.model_validate({"value": {"aum": 50}})
    with pytest.raises(ValidationError):
        ScoreModel.model_validate({"credit_card_limit_cny": 50000.5})


def test_tenure_counts_from_the_relationship_start() -> None:
    since = date(2024, 6, 1)
    scores = compute_scores(profile(customer_since=str(since)), MODEL, NOW)
    assert reason(scores, "tenure") == "customer for 2.0 years (since 2024-06-01)"
    assert contribution(scores, "tenure") == pytest.approx(3.0, abs=0.01)
