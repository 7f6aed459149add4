"""The tier policy: read from a YAML file, applied as pure functions."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, field_validator, model_validator

DEFAULT_POLICY_FILE = Path(__file__).with_name("tier_policy.yaml")
Measure = Literal["aum_cny", "aum_avg_30d_cny"]


class TierRule(BaseModel):
    name: str = Field(min_length=1)
    floor: Decimal = Field(ge=0, description="Lowest measure, in CNY, that reaches this tier.")
    rm_grade: str | None = Field(default=None, description="RM grade the tier needs; none for branch service.")

    @field_validator("floor", mode="before")
    @classmethod
    def _no_floats(cls, value: object) -> object:
        if isinstance(value, float):
            raise ValueError("write floors as quoted strings, not floats")
        return value


class TierPolicy(BaseModel):
    """Ordered tiers, lowest first, and the profile figure they are decided on."""

    measure: Measure = "aum_avg_30d_cny"
    tiers: list[TierRule] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> TierPolicy:
        floors = [t.floor for t in self.tiers]
        if floors[0] != 0:
            raise ValueError("the lowest tier must start at 0")
        if any(b <= a for a, b in itertools.pairwise(floors)):
            raise ValueError("tier floors must strictly increase")
        if len({t.name for t in self.tiers}) != len(self.tiers):
            raise ValueError("tier names must be unique")
        return self

    def tier_for(self, measure_cny: Decimal) -> TierRule:
        """The highest tier whose floor `measure_cny` reaches (negative counts as zero)."""
        chosen = self.tiers[0]
        for tier in self.tiers:
            if measure_cny >= tier.floor:
                chosen = tier
        return chosen

    def rank(self, tier_name: str) -> int:
        for index, tier in enumerate(self.tiers):
            if tier.name == tier_name:
                return index
        raise KeyError(tier_name)


def load_policy(path: Path = DEFAULT_POLICY_FILE) -> TierPolicy:
    return TierPolicy.model_validate(yaml.safe_load(path.read_text()))


@dataclass(frozen=True)
class TierDecision:
    """A tier change and why it happened, phrased for an RM."""

    from_tier: str | None
    to_tier: str
    reason: str


def decide_tier(policy: TierPolicy, current: str | None, measure_cny: Decimal) -> TierDecision | None:
    """The change the measure calls for, or None when the tier stays."""
    target = policy.tier_for(measure_cny)
    if current == target.name:
        return None
    label = "30-day average AUM" if policy.measure == "aum_avg_30d_cny" else "AUM"
    if current is None:
        reason = f"first assessment: {label} {measure_cny} CNY is in {target.name} (floor {target.floor})"
    elif current not in {t.name for t in policy.tiers} or policy.rank(target.name) > policy.rank(current):
        reason = f"upgrade: {label} {measure_cny} CNY reached the {target.name} floor of {target.floor}"
    else:
        floor = next(t.floor for t in policy.tiers if t.name == current)
        reason = f"downgrade: {label} {measure_cny} CNY is below the {current} floor of {floor}"
    return TierDecision(from_tier=current, to_tier=target.name, reason=reason)
