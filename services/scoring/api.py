"""The scoring service's internal HTTP API: a customer's tier and its history."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from fastapi import APIRouter
from pydantic import BaseModel

from runtime.errors import NotFound
from runtime.service import SessionDep
from services.scoring.store import ScoringStore

router = APIRouter(prefix="/internal", tags=["tiers"])


class TierChangeView(BaseModel):
    from_tier: str | None
    to_tier: str
    reason: str
    measure_cny: Decimal
    effective_at: datetime


class TierView(BaseModel):
    customer_id: str
    tier: str
    since: datetime
    measure_cny: Decimal
    history: list[TierChangeView]


@router.get("/customers/{customer_id}/tier", response_model=TierView, summary="A customer's tier and history")
async def get_tier(customer_id: str, session: SessionDep) -> TierView:
    store = ScoringStore(session)
    tier = await store.tier(customer_id)
    if tier is None:
        raise NotFound(f"no tier for customer {customer_id}")
    history = await store.history(customer_id)
    return TierView(
        customer_id=tier.customer_id,
        tier=tier.tier,
        since=tier.since,
        measure_cny=tier.measure_cny,
        history=[TierChangeView.model_validate(h, from_attributes=True) for h in history],
    )
