"""The next-best-action catalogue: one small rule per action, pure functions of what engagement
knows of a customer (`Facts`), what just happened (`Signals`) and the time.

Adding an action is adding one `Rule` subclass here, registered in `RULES`, and its entry in
`actions.yaml` (priority, due date, cooldown, marketing or service, and the rule's parameters).
A rule proposes; `policy.arbitrate` decides what becomes a task.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contracts import AccountSummary, Behaviour, Channel, Interactions, Product

DEFAULT_CATALOGUE_FILE = Path(__file__).with_name("actions.yaml")
ELECTRONIC = frozenset({Channel.MOBILE, Channel.ONLINE})


def cny(amount: Decimal) -> str:
    return f"{amount:,.2f} CNY"


@dataclass(frozen=True)
class Facts:
    """Everything engagement knows of one customer, from profile, scoring and its own tasks."""

    customer_id: str
    tier: str | None = None
    tier_since: datetime | None = None
    watch_since: datetime | None = None
    branch_id: str | None = None
    marketing_consent: bool | None = None
    birth_date: date | None = None
    aum_cny: Decimal = Decimal(0)
    aum_avg_30d_cny: Decimal = Decimal(0)
    accounts: tuple[AccountSummary, ...] = ()
    behaviour: Behaviour | None = None
    interactions: Interactions | None = None
    tags: frozenset[str] = frozenset()
    churn_risk: float | None = None
    risk_flags: frozenset[str] = frozenset()
    flag_reasons: Mapping[str, str] = field(default_factory=dict)
    last_contact_at: datetime | None = None
    last_created: Mapping[str, datetime] = field(default_factory=dict)  # per action, newest task


@dataclass(frozen=True)
class Signals:
    """What the batch being handled says just happened (nothing, for a scheduled sweep)."""

    entered_tier: tuple[str | None, str] | None = None
    watch_started: bool = False
    new_flags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Proposal:
    """A task a rule wants to create, before the contact policy has its say."""

    customer_id: str
    action: str
    reason: str
    priority: int
    due_at: datetime
    marketing: bool


@dataclass(frozen=True)
class Finding:
    """What a rule found: why, and when the task is due."""

    reason: str
    due_at: datetime


class Settings(BaseModel):
    """Settings every action has, from `actions.yaml`."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    priority: int = Field(ge=1, le=100, description="1 to 100; higher wins under the weekly cap.")
    due_days: int = Field(default=7, ge=0, description="Days from creation to due, unless the rule says otherwise.")
    cooldown_days: int = Field(default=0, ge=0, description="Days after a task of this action closes before another.")
    marketing: bool = Field(description="Marketing needs the customer's consent; service actions do not.")
    params: dict[str, Any] = Field(default_factory=dict, description="The rule's own parameters.")


class Rule:
    """One action. Subclasses set `name`, `Params` and `find`; `next_check` for time-based ones."""

    name: ClassVar[str]

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

    def __init__(self, settings: Settings, params: BaseModel, premium: frozenset[str]) -> None:
        self.settings = settings
        self.params = params
        self.premium = premium  # the tiers served by a named RM

    def find(self, facts: Facts, signals: Signals, now: datetime) -> Finding | None:
        raise NotImplementedError

    def next_check(self, facts: Facts, now: datetime) -> datetime | None:
        """When this rule could next fire without an event; None when only an event can tell."""
        return None

    def due(self, now: datetime) -> datetime:
        return now + timedelta(days=self.settings.due_days)

    def propose(self, facts: Facts, signals: Signals, now: datetime) -> Proposal | None:
        if not self.settings.enabled:
            return None
        found = self.find(facts, signals, now)
        if found is None:
            return None
        return Proposal(
            customer_id=facts.customer_id,
            action=self.name,
            reason=found.reason,
            priority=self.settings.priority,
            due_at=found.due_at,
            marketing=self.settings.marketing,
        )


def _premium(facts: Facts, premium: frozenset[str]) -> bool:
    return facts.tier is not None and facts.tier in premium


def _midnight(day: date, like: datetime) -> datetime:
    return datetime.combine(day, time(0), tzinfo=like.tzinfo)


def _at_morning(day: date, like: datetime) -> datetime:
    """9:00 on `day`, in the time zone of `like`: when a day's task falls due."""
    return datetime.combine(day, time(9), tzinfo=like.tzinfo)


class Welcome(Rule):
    name = "welcome"

    def find(self, facts: Facts, signals: Signals, now: datetime) -> Finding | None:
        if signals.entered_tier is None:
            return None
        from_tier, to_tier = signals.entered_tier
        if to_tier not in self.premium or from_tier in self.premium:
            return None
        origin = f"from {from_tier}" if from_tier else "on first assessment"
        return Finding(
            f"entered {to_tier} {origin}: welcome the customer and introduce their relationship manager",
            self.due(now),
        )


class RetentionCall(Rule):
    name = "retention_call"

    class Params(Rule.Params):
        outflow_share: float = Field(default=0.3, gt=0, le=1, description="30-day outflow to other banks / assets.")
        churn_risk: float = Field(default=0.6, gt=0, le=1, description="Churn risk at or above which to call.")

    def find(self, facts: Facts, signals: Signals, now: datetime) -> Finding | None:
        p = self.params
        assert isinstance(p, RetentionCall.Params)
        if signals.watch_started and facts.tier is not None:
            return Finding(f"fell below the {facts.tier} floor: the downgrade grace period has begun", self.due(now))
        if facts.behaviour is not None:
            outflow = facts.behaviour.last_30d.external_outflow_cny
            base = facts.aum_cny + outflow
            if outflow > 0 and base > 0 and outflow / base >= Decimal(str(p.outflow_share)):
                return Finding(
                    f"moved {cny(outflow)} ({outflow / base:.0%} of assets) to other banks in 30 days", self.due(now)
                )
        if facts.churn_risk is not None and facts.churn_risk >= p.churn_risk:
            return Finding(f"churn risk {facts.churn_risk:.2f} is at or above {p.churn_risk:.2f}", self.due(now))
        return None


class UpsellNextTier(Rule):
    name = "upsell_next_tier"

    class Params(Rule.Params):
        within_share: float = Field(default=0.1, gt=0, lt=1, description="Distance below the next floor, as a share.")
        floors: dict[str, Decimal] = Field(
            description="Tier floors in CNY, lowest first; keep them in step with the scoring tier policy."
        )

    def find(self, facts: Facts, signals: Signals, now: datetime) -> Finding | None:
        p = self.params
        assert isinstance(p, UpsellNextTier.Params)
        average = facts.aum_avg_30d_cny
        above = [(name, floor) for name, floor in p.floors.items() if floor > average]
        if not above or facts.tier is None:
            return None
        name, floor = min(above, key=lambda item: item[1])
        if average < floor * (1 - Decimal(str(p.within_share))):
            return None
        return Finding(
            f"30-day average AUM {cny(average)} is {cny(floor - average)} short of the {name} floor of {cny(floor)}",
            self.due(now),
        )


class MaturityReinvestment(Rule):
    name = "maturity_reinvestment"
    PRODUCTS: ClassVar[frozenset[Product]] = frozenset({Product.TIME_DEPOSIT, Product.WEALTH_PRODUCT})

    class Params(Rule.Params):
        days_before: int = Field(default=14, ge=0, description="How many days before maturity to call.")

    def _maturing(self, facts: Facts) -> list[AccountSummary]:
        return sorted(
            (
                a
                for a in facts.accounts
                if a.status == "open" and a.product in self.PRODUCTS and a.maturity_date is not None
            ),
            key=lambda a: (a.maturity_date or date.max, a.account_ref),
        )

    def find(self, facts: Facts, signals: Signals, now: datetime) -> Finding | None:
        p = self.params
        assert isinstance(p, MaturityReinvestment.Params)
        today = now.date()
        last = facts.last_created.get(self.name)
        for account in self._maturing(facts):
            matures = account.maturity_date
            assert matures is not None
            window_opens = matures - timedelta(days=p.days_before)
            if not window_opens <= today <= matures:
                continue
            if last is not None and last.date() >= window_opens:
                continue  # already proposed for this maturity
            amount = f" holding {cny(account.balance_cny)}" if account.balance_cny is not None else ""
            return Finding(
                f"{account.product.value} {account.account_ref}{amount} matures on {matures}: "
                "talk about reinvesting it",
                _at_morning(matures, now) if matures > today else self.due(now),
            )
        return None

    def next_check(self, facts: Facts, now: datetime) -> datetime | None:
        p = self.params
        assert isinstance(p, MaturityReinvestment.Params)
        today = now.date()
        opens = [
            a.maturity_date - timedelta(days=p.days_before)
            for a in self._maturing(facts)
            if a.maturity_date is not None and a.maturity_date - timedelta(days=p.days_before) > today
        ]
        return _midnight(min(opens), now) if opens else None


def next_birthday(birth: date, today: date) -> date:
    for year in (today.year, today.year + 1):
        try:
            day = birth.replace(year=year)
        except ValueError:  # 29 February in a common year: greet on 1 March
            day = date(year, 3, 1)
        if day >= today:
            return day
    raise AssertionError("unreachable")


class BirthdayGreeting(Rule):
    name = "birthday_greeting"

    class Params(Rule.Params):
        days_before: int = Field(default=7, ge=0, description="How many days before the birthday to prepare.")

    def find(self, facts: Facts, signals: Signals, now: datetime) -> Finding | None:
        p = self.params
        assert isinstance(p, BirthdayGreeting.Params)
        if facts.birth_date is None or not _premium(facts, self.premium):
            return None
        today = now.date()
        birthday = next_birthday(facts.birth_date, today)
        window_opens = birthday - timedelta(days=p.days_before)
        if today < window_opens:
            return None
        last = facts.last_created.get(self.name)
        if last is not None and last.date() >= window_opens:
            return None  # once a year
        return Finding(f"birthday on {birthday:%d %B}: send the bank's greetings", _at_morning(birthday, now))

    def next_check(self, facts: Facts, now: datetime) -> datetime | None:
        p = self.params
        assert isinstance(p, BirthdayGreeting.Params)
        if facts.birth_date is None or not _premium(facts, self.premium):
            return None
        today = now.date()
        opens = next_birthday(facts.birth_date, today) - timedelta(days=p.days_before)
        if opens <= today:  # this year's window is open or handled: the next one
            opens = next_birthday(facts.birth_date, today + timedelta(days=p.days_before + 1)) - timedelta(
                days=p.days_before
            )
        return _midnight(opens, now)


class PeriodicRevisit(Rule):
    name = "periodic_revisit"

    class Params(Rule.Params):
        cadence_days: dict[str, int] = Field(description="Per tier, the longest time without contact.")

    def _base(self, facts: Facts) -> tuple[datetime, str, timedelta] | None:
        """Since when the clock runs (the newest contact, or becoming premium, or the last revisit
        task if it is newer), what to say about it, and the tier's cadence."""
        p = self.params
        assert isinstance(p, PeriodicRevisit.Params)
        if facts.tier not in p.cadence_days:
            return None
        cadence = timedelta(days=p.cadence_days[facts.tier])
        if facts.last_contact_at is not None:
            at, text = facts.last_contact_at, f"no contact since {facts.last_contact_at:%Y-%m-%d}"
        elif facts.tier_since is not None:
            at, text = (
                facts.tier_since,
                f"no contact recorded since becoming {facts.tier} on {facts.tier_since:%Y-%m-%d}",
            )
        else:
            return None
        last = facts.last_created.get(self.name)
        if last is not None and last > at:
            at = last  # a revisit was already asked for: the next one a cadence later
        return at, text, cadence

    def find(self, facts: Facts, signals: Signals, now: datetime) -> Finding | None:
        base = self._base(facts)
        if base is None or now - base[0] < base[2]:
            return None
        _, text, cadence = base
        return Finding(f"{text}: {facts.tier} customers are visited every {cadence.days} days", self.due(now))

    def next_check(self, facts: Facts, now: datetime) -> datetime | None:
        base = self._base(facts)
        if base is None:
            return None
        due = base[0] + base[2]
        return due if due > now else None


class ServiceRecovery(Rule):
    name = "service_recovery"

    def find(self, facts: Facts, signals: Signals, now: datetime) -> Finding | None:
        seen = facts.interactions
        if seen is None or seen.open_complaints == 0 or seen.last_complaint_at is None:
            return None
        last = facts.last_created.get(self.name)
        if last is not None and last >= seen.last_complaint_at:
            return None  # this complaint already has its task
        count = seen.open_complaints
        return Finding(
            f"{count} open complaint{'s' if count != 1 else ''}, the newest on {seen.last_complaint_at:%Y-%m-%d}: "
            f"call the customer within the {self.settings.due_days}-day SLA",
            self.due(now),
        )


class EChannelMigration(Rule):
    name = "e_channel_migration"

    def find(self, facts: Facts, signals: Signals, now: datetime) -> Finding | None:
        if "counter_heavy" not in facts.tags or facts.behaviour is None:
            return None
        window = facts.behaviour.last_90d
        if any(window.by_channel.get(channel, 0) for channel in ELECTRONIC):
            return None
        return Finding(
            f"{window.branch_share:.0%} of {window.count} transactions in 90 days at the counter and none on "
            "mobile or online: offer help with mobile banking",
            self.due(now),
        )


class Reactivation(Rule):
    name = "reactivation"

    class Params(Rule.Params):
        min_aum_cny: Decimal = Field(default=Decimal(10_000), ge=0, description="Assets worth a reactivation call.")

    def find(self, facts: Facts, signals: Signals, now: datetime) -> Finding | None:
        p = self.params
        assert isinstance(p, Reactivation.Params)
        if "dormant" not in facts.tags or facts.aum_cny < p.min_aum_cny:
            return None
        return Finding(f"dormant for 90 days with {cny(facts.aum_cny)} in assets", self.due(now))


class RiskFollowUp(Rule):
    name = "risk_follow_up"

    def find(self, facts: Facts, signals: Signals, now: datetime) -> Finding | None:
        if not signals.new_flags:
            return None
        texts = [facts.flag_reasons.get(flag, flag.replace("_", " ")) for flag in sorted(signals.new_flags)]
        return Finding("new risk: " + "; ".join(texts), self.due(now))


RULES: tuple[type[Rule], ...] = (
    Welcome,
    RetentionCall,
    UpsellNextTier,
    MaturityReinvestment,
    BirthdayGreeting,
    PeriodicRevisit,
    ServiceRecovery,
    EChannelMigration,
    Reactivation,
    RiskFollowUp,
)


class Catalogue(BaseModel):
    """`actions.yaml`: the actions, the contact policy and the RM grade each tier needs."""

    model_config = ConfigDict(extra="forbid")

    weekly_cap: int = Field(default=3, ge=1, description="New tasks per customer per rolling 7 days.")
    premium_tiers: list[str] = Field(description="Tiers served by a named RM (VIP and above).")
    tier_grades: dict[str, str] = Field(description="The RM grade each premium tier needs.")
    actions: dict[str, Settings]

    @model_validator(mode="after")
    def _known(self) -> Catalogue:
        known = {rule.name for rule in RULES}
        unknown = sorted(set(self.actions) - known)
        if unknown:
            raise ValueError(f"no rule for actions {unknown}; known: {sorted(known)}")
        missing = sorted(known - set(self.actions))
        if missing:
            raise ValueError(f"actions {missing} have no entry")
        if set(self.tier_grades) != set(self.premium_tiers):
            raise ValueError("tier_grades must name a grade for each premium tier, and only those")
        for rule in RULES:
            try:
                rule.Params.model_validate(self.actions[rule.name].params)
            except ValidationError as exc:
                raise ValueError(f"{rule.name}: {exc}") from exc
        return self

    def rules(self) -> list[Rule]:
        premium = frozenset(self.premium_tiers)
        built: list[Rule] = []
        for rule in RULES:
            settings = self.actions[rule.name]
            params = rule.Params.model_validate(settings.params)
            built.append(rule(settings, params, premium))
        return built


def load_catalogue(path: Path = DEFAULT_CATALOGUE_FILE) -> Catalogue:
    return Catalogue.model_validate(yaml.safe_load(path.read_text()))
