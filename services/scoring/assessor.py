"""Deciding tiers and scores for a set of customers, in one place for every path that does it:
a batch of profile events, the sweep that ends grace periods, and a re-score under a new policy.

Only real changes are published: a tier change or a watch starting or ending as
`c360.tier.changed.v1`, once each; scores as `c360.score.updated.v1` when they moved by more than
the configured step or a flag came or went.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts import JsonText, ProfileUpdated, ScoreUpdated, TierChanged
from runtime.consumer import BatchContext, ConsumedEvent
from services.scoring.models import CustomerTier
from services.scoring.policy import TierPolicy, TierState, assess
from services.scoring.scores import ScoreModel, Scores, compute_scores, reasons_json, worth_publishing
from services.scoring.store import PublishedScores, ScoringStore


@dataclass(frozen=True)
class Subject:
    """One customer to assess: the profile figures, when profile stated them, and the cause."""

    profile: ProfileUpdated
    profile_at: datetime
    cause: ConsumedEvent | None = None

    def profile_json(self) -> JsonText | dict[str, Any]:
        """The profile as JSON to keep: the event's own `data` as the text it arrived as when
        there is one (the same fields, neither parsed into dicts nor written again)."""
        if self.cause is not None:
            return self.cause.parsed.data_text()
        return self.profile.model_dump(mode="json")


def stored_subject(row: CustomerTier) -> Subject:
    """A customer as last seen, from the profile figures kept on the tier row."""
    assert row.profile is not None
    assert row.profile_at is not None
    return Subject(ProfileUpdated.from_stored(row.profile), row.profile_at)


def _published(row: PublishedScores | None) -> Scores | None:
    if row is None or row.published_value_score is None or row.published_churn_risk is None:
        return None
    return Scores(row.published_value_score, row.published_churn_risk, tuple(row.published_risk_flags or ()), ())


class Assessor:
    def __init__(self, policy: TierPolicy, model: ScoreModel) -> None:
        self.policy = policy
        self.model = model

    async def assess(self, ctx: BatchContext, store: ScoringStore, subjects: Sequence[Subject]) -> None:
        """Decide, keep and publish the tiers and scores of `subjects` (one per customer); a
        subject older than the profile kept for its customer is left out."""
        if not subjects:
            return
        now = ctx.clock.now()
        ids = [s.profile.customer_id for s in subjects]
        tiers = await store.tiers(ids)
        scores = await store.scores(ids)
        tier_rows: list[dict[str, Any]] = []
        score_rows: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        for subject in sorted(subjects, key=lambda s: s.profile.customer_id):
            profile = subject.profile
            cid = profile.customer_id
            row = tiers.get(cid)
            if row is not None and row.profile_at is not None and subject.profile_at < row.profile_at:
                continue  # older than the profile kept: it changes nothing
            current = TierState(row.tier, row.since, row.watch_since) if row else None
            measure = getattr(profile, self.policy.measure)
            outcome = assess(self.policy, current, measure, now)
            tier_rows.append(
                {
                    "customer_id": cid,
                    "tier": outcome.state.tier,
                    "since": outcome.state.since,
                    "watch_since": outcome.state.watch_since,
                    "measure_cny": measure,
                    "aum_cny": profile.aum_cny,
                    "aum_avg_30d_cny": profile.aum_avg_30d_cny,
                    "branch_id": profile.branch_id,
                    "profile": subject.profile_json(),
                    "profile_at": subject.profile_at,
                    "updated_at": now,
                }
            )
            if outcome.eventful:
                assert outcome.reason is not None
                change = outcome.change
                from_tier = change.from_tier if change else outcome.state.tier
                changes.append(
                    {
                        "customer_id": cid,
                        "from_tier": from_tier,
                        "to_tier": outcome.state.tier,
                        "reason": outcome.reason,
                        "measure_cny": measure,
                        "effective_at": now,
                    }
                )
                ctx.publish(
                    TierChanged(
                        customer_id=cid,
                        from_tier=from_tier,
                        to_tier=outcome.state.tier,
                        reason=outcome.reason,
                        effective_at=now,
                        measure_cny=measure,
                        watch_since=outcome.state.watch_since,
                    ),
                    cause=subject.cause,
                )
            score_rows.append(self._score(ctx, cid, profile, scores.get(cid), now, subject.cause))
        await store.save_tiers(tier_rows)
        await store.record_changes(changes)
        await store.save_scores(score_rows)

    def _score(
        self,
        ctx: BatchContext,
        customer_id: str,
        profile: ProfileUpdated,
        stored: PublishedScores | None,
        now: datetime,
        cause: ConsumedEvent | None,
    ) -> dict[str, Any]:
        new = compute_scores(profile, self.model, now)
        row: dict[str, Any] = {
            "customer_id": customer_id,
            "value_score": new.value_score,
            "churn_risk": new.churn_risk,
            "risk_flags": list(new.risk_flags),
            "reasons": reasons_json(new.reasons),
            "computed_at": now,
            "published_value_score": stored.published_value_score if stored else None,
            "published_churn_risk": stored.published_churn_risk if stored else None,
            "published_risk_flags": stored.published_risk_flags if stored else None,
            "published_at": stored.published_at if stored else None,
        }
        if worth_publishing(self.model, _published(stored), new):
            ctx.publish(
                ScoreUpdated(
                    customer_id=customer_id,
                    value_score=new.value_score,
                    churn_risk=new.churn_risk,
                    risk_flags=list(new.risk_flags),
                    reasons=list(new.reasons),
                ),
                cause=cause,
            )
            row.update(
                published_value_score=new.value_score,
                published_churn_risk=new.churn_risk,
                published_risk_flags=list(new.risk_flags),
                published_at=now,
            )
        return row
