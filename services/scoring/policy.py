"""The tier policy: read from a YAML file, applied as pure functions.

`assess` is the whole tier rule, the exit mechanism included: upgrades take effect at once; a
measure below the current floor puts the customer on watch, and only a measure that stays below
the floor for the tier's whole grace period downgrades them. A customer who climbs back while on
watch keeps the tier and the clock starts again the next time they fall.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, field_validator, model_validator

DEFAULT_POLICY_FILE = Path(__file__).with_name("tier_policy.yaml")
Measure = Literal["aum_cny", "aum_avg_30d_cny"]
MEASURE_LABELS: dict[str, str] = {"aum_cny": "AUM", "aum_avg_30d_cny": "30-day average AUM"}


def _no_floats(value: object) -> object:
    if isinstance(value, float):
        raise ValueError("write amounts as quoted strings, not floats")
    return value


def cny(amount: Decimal) -> str:
    """An amount as an RM reads it: `350,000.00 CNY`."""
    return f"{amount:,.2f} CNY"


class TierRule(BaseModel):
    name: str = Field(min_length=1)
    floor: Decimal = Field(ge=0, description="Lowest measure, in CNY, that reaches this tier.")
    rm_grade: str | None = Field(default=None, description="RM grade the tier needs; none for branch service.")
    grace_days: int | None = Field(
        default=None, ge=0, description="Days below the floor before a downgrade; the policy's default when absent."
    )

    @field_validator("floor", mode="before")
    @classmethod
    def _floor_not_float(cls, value: object) -> object:
        return _no_floats(value)


class TierPolicy(BaseModel):
    """Ordered tiers, lowest first, the profile figure they are decided on, and the exit rule."""

    measure: Measure = "aum_avg_30d_cny"
    grace_days: int = Field(default=90, ge=0, description="Default days on watch before a downgrade.")
    tiers: list[TierRule] = Field(min_length=1)
    report_bands: list[Decimal] = Field(
        default_factory=lambda: [Decimal(0), Decimal(50_000), Decimal(200_000)],
        description="Lower bounds of the AUM bands of the tier-distribution report, in CNY.",
    )

    @field_validator("report_bands", mode="before")
    @classmethod
    def _bands_not_float(cls, value: object) -> object:
        return [_no_floats(band) for band in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _ordered(self) -> TierPolicy:
        floors = [t.floor for t in self.tiers]
        if floors[0] != 0:
            raise ValueError("the lowest tier must start at 0")
        if any(b <= a for a, b in itertools.pairwise(floors)):
            raise ValueError("tier floors must strictly increase")
        if len({t.name for t in self.tiers}) != len(self.tiers):
            raise ValueError("tier names must be unique")
        if not self.report_bands or self.report_bands[0] != 0:
            raise ValueError("the report bands must start at 0")
        if any(b <= a for a, b in itertools.pairwise(self.report_bands)):
            raise ValueError("report bands must strictly increase")
        return self

    @property
    def measure_label(self) -> str:
        return MEASURE_LABELS[self.measure]

    def tier_for(self, measure_cny: Decimal) -> TierRule:
        """The highest tier whose floor `measure_cny` reaches (negative counts as zero)."""
        chosen = self.tiers[0]
        for tier in self.tiers:
            if measure_cny >= tier.floor:
                chosen = tier
        return chosen

    def find(self, tier_name: str) -> TierRule | None:
        return next((t for t in self.tiers if t.name == tier_name), None)

    def rank(self, tier_name: str) -> int:
        for index, tier in enumerate(self.tiers):
            if tier.name == tier_name:
                return index
        raise KeyError(tier_name)

    def grace(self, tier_name: str) -> timedelta:
        """How long a customer of `tier_name` may stay below its floor before the downgrade."""
        tier = self.find(tier_name)
        days = tier.grace_days if tier is not None and tier.grace_days is not None else self.grace_days
        return timedelta(days=days)

    def band_of(self, aum_cny: Decimal) -> int:
        """Index of the report band `aum_cny` falls in."""
        index = 0
        for i, floor in enumerate(self.report_bands):
            if aum_cny >= floor:
                index = i
        return index

    def band_label(self, index: int) -> str:
        low = self.report_bands[index]
        if index + 1 < len(self.report_bands):
            return f"{low:,.0f} to {self.report_bands[index + 1]:,.0f}"
        return f"{low:,.0f} and above"


def load_policy(path: Path = DEFAULT_POLICY_FILE) -> TierPolicy:
    return TierPolicy.model_validate(yaml.safe_load(path.read_text()))


@dataclass(frozen=True)
class TierState:
    """Where a customer stands: the tier, since when, and since when below its floor (if so)."""

    tier: str
    since: datetime
    watch_since: datetime | None = None


@dataclass(frozen=True)
class TierDecision:
    """A tier change and why it happened, phrased for an RM."""

    from_tier: str | None
    to_tier: str
    reason: str


WatchChange = Literal["started", "ended"]


@dataclass(frozen=True)
class Assessment:
    """The outcome of one look at a customer: the new state, and what happened to say so."""

    state: TierState
    change: TierDecision | None = None
    watch: WatchChange | None = None
    reason: str | None = None

    @property
    def eventful(self) -> bool:
        return self.change is not None or self.watch is not None


def assess(policy: TierPolicy, current: TierState | None, measure_cny: Decimal, now: datetime) -> Assessment:
    """Apply the tier rule to `measure_cny` at `now`."""
    label = policy.measure_label
    target = policy.tier_for(measure_cny)
    figure = f"{label} {cny(measure_cny)}"
    if current is None:
        reason = f"first assessment: {figure} is in {target.name} (floor {cny(target.floor)})"
        return Assessment(TierState(target.name, now), TierDecision(None, target.name, reason), reason=reason)
    held = policy.find(current.tier)
    if held is None:
        reason = f"the policy no longer has {current.tier}: {figure} is in {target.name}"
        return Assessment(TierState(target.name, now), TierDecision(current.tier, target.name, reason), reason=reason)
    if policy.rank(target.name) > policy.rank(held.name):
        reason = f"upgrade: {figure} reached the {target.name} floor of {cny(target.floor)}"
        return Assessment(TierState(target.name, now), TierDecision(held.name, target.name, reason), reason=reason)
    if target.name == held.name:
        if current.watch_since is None:
            return Assessment(current)
        reason = f"back above the {held.name} floor of {cny(held.floor)} with {figure}: the tier is kept"
        return Assessment(replace(current, watch_since=None), watch="ended", reason=reason)
    # Below the floor of the tier held: the exit mechanism.
    grace = policy.grace(held.name)
    if current.watch_since is None:
        ends = now + grace
        reason = (
            f"on watch: {figure} is below the {held.name} floor of {cny(held.floor)}; "
            f"downgrade on {ends:%Y-%m-%d} unless it climbs back"
        )
        if grace > timedelta(0):
            return Assessment(replace(current, watch_since=now), watch="started", reason=reason)
        watch_since = now
    else:
        watch_since = current.watch_since
        if now - watch_since < grace:
            return Assessment(current)
    reason = (
        f"downgrade: {figure} stayed below the {held.name} floor of {cny(held.floor)} "
        f"since {watch_since:%Y-%m-%d}, the whole {grace.days}-day grace period"
    )
    return Assessment(TierState(target.name, now), TierDecision(held.name, target.name, reason), reason=reason)


def watch_ends(policy: TierPolicy, state: TierState) -> datetime | None:
    """When a customer on watch is downgraded if the measure does not climb back."""
    if state.watch_since is None:
        return None
    return state.watch_since + policy.grace(state.tier)
