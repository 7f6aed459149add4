"""The segment rule language: a small, declarative JSON tree, parsed into typed nodes and evaluated
as pure functions of what engagement knows of a customer. Never `eval`, never SQL text.

A rule is one node:

- `{"all": [node, ...]}`, `{"any": [node, ...]}`, `{"not": node}`
- `{"field": F, "op": "eq" | "in" | "gte" | "lt" | "between", "value": V}` over the fields of `FIELDS`
- `{"has_tag": "dormant"}`, `{"holds_product": "time_deposit"}`, `{"has_flag": "loan_overdue"}`

`parse_rule` refuses anything else with a `RuleError` naming the bad part by its path
(`rule.all[1].value`). A comparison on a value the customer does not have (no tier yet, no birth
date, never contacted) is false, so `not` of it is true; docs/segments.md has examples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from contracts import Product, ProfileUpdated
from services.engagement.rules import Facts

MAX_DEPTH = 8
MAX_NODES = 200
MAX_LIST = 500

Kind = Literal["text", "money", "number", "integer", "bool"]
Value = str | Decimal | float | int | bool


class RuleError(ValueError):
    """A rule that cannot be accepted; `path` names the bad part."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class Subject:
    """A customer as segment rules see them: the engagement facts plus what only segments read."""

    facts: Facts
    liabilities_cny: Decimal | None = None
    value_score: int | None = None
    holdings: frozenset[str] = frozenset()


def _age(s: Subject, today: date) -> int | None:
    born = s.facts.birth_date
    if born is None:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _days_since_contact(s: Subject, today: date) -> int | None:
    last = s.facts.last_contact_at
    return None if last is None else (today - last.date()).days


@dataclass(frozen=True)
class Field:
    kind: Kind
    read: Callable[[Subject, date], Value | None]
    text: str


FIELDS: Mapping[str, Field] = {
    "tier": Field("text", lambda s, _: s.facts.tier, "The customer's tier, such as `vip`."),
    "on_watch": Field("bool", lambda s, _: s.facts.watch_since is not None, "Below the tier's floor, in grace."),
    "aum_cny": Field("money", lambda s, _: s.facts.aum_cny, "Assets under management now, CNY."),
    "aum_avg_30d_cny": Field("money", lambda s, _: s.facts.aum_avg_30d_cny, "30-day average daily AUM, CNY."),
    "liabilities_cny": Field("money", lambda s, _: s.liabilities_cny, "Money owed (loans, cards), CNY."),
    "branch_id": Field("text", lambda s, _: s.facts.branch_id, "The home branch."),
    "age": Field("integer", _age, "Age in whole years from the birth date, on the day of evaluation."),
    "value_score": Field("integer", lambda s, _: s.value_score, "Value score, 0 to 100."),
    "churn_risk": Field("number", lambda s, _: s.facts.churn_risk, "Churn risk, 0 to 1."),
    "marketing_consent": Field("bool", lambda s, _: s.facts.marketing_consent, "Consent to marketing."),
    "days_since_last_contact": Field(
        "integer", _days_since_contact, "Whole days since the newest contact; no value when never contacted."
    ),
}
ORDERED = frozenset({"money", "number", "integer"})
OPS = ("eq", "in", "gte", "lt", "between")
PRODUCTS = frozenset(p.value for p in Product)


# -- the nodes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class All:
    parts: tuple[Node, ...]

    def __call__(self, s: Subject, today: date) -> bool:
        return all(p(s, today) for p in self.parts)


@dataclass(frozen=True)
class Any_:
    parts: tuple[Node, ...]

    def __call__(self, s: Subject, today: date) -> bool:
        return any(p(s, today) for p in self.parts)


@dataclass(frozen=True)
class Not:
    part: Node

    def __call__(self, s: Subject, today: date) -> bool:
        return not self.part(s, today)


@dataclass(frozen=True)
class Compare:
    field: str
    op: str
    value: Value | tuple[Value, ...]

    def __call__(self, s: Subject, today: date) -> bool:
        found = FIELDS[self.field].read(s, today)
        if found is None:
            return False
        v: Any = self.value
        if self.op == "eq":
            return bool(found == v)
        if self.op == "in":
            return found in v
        if self.op == "gte":
            return bool(found >= v)
        if self.op == "lt":
            return bool(found < v)
        low, high = v
        return bool(low <= found <= high)


@dataclass(frozen=True)
class Has:
    what: Literal["has_tag", "holds_product", "has_flag"]
    value: str

    def __call__(self, s: Subject, today: date) -> bool:
        if self.what == "has_tag":
            return self.value in s.facts.tags
        if self.what == "has_flag":
            return self.value in s.facts.risk_flags
        return self.value in s.holdings


Node = All | Any_ | Not | Compare | Has


CALENDAR = frozenset({"age", "days_since_last_contact"})


@dataclass(frozen=True)
class Rule:
    """A parsed rule: call it with a subject and the day of evaluation."""

    root: Node
    fields: frozenset[str] = frozenset()

    @property
    def reads_calendar(self) -> bool:
        """Whether membership can change with the date alone (then it is re-evaluated daily)."""
        return bool(self.fields & CALENDAR)

    def __call__(self, subject: Subject, today: date) -> bool:
        return self.root(subject, today)


# -- parsing --------------------------------------------------------------------------------------


def parse_rule(raw: object) -> Rule:
    """The rule `raw` (decoded JSON) as typed nodes, or a RuleError naming the first bad part."""
    count = [0]
    root = _node(raw, "rule", 1, count)
    return Rule(root, frozenset(_fields(root)))


def _fields(node: Node) -> set[str]:
    if isinstance(node, All | Any_):
        return set().union(*(_fields(p) for p in node.parts))
    if isinstance(node, Not):
        return _fields(node.part)
    return {node.field} if isinstance(node, Compare) else set()


def _node(raw: object, path: str, depth: int, count: list[int]) -> Node:
    if depth > MAX_DEPTH:
        raise RuleError(path, f"nested deeper than {MAX_DEPTH} levels")
    count[0] += 1
    if count[0] > MAX_NODES:
        raise RuleError(path, f"more than {MAX_NODES} conditions")
    if not isinstance(raw, dict):
        raise RuleError(path, 'expected an object such as {"all": [...]} or {"field": ..., "op": ..., ...}')
    keys = set(raw)
    if keys in ({"all"}, {"any"}):
        (key,) = keys
        parts = raw[key]
        if not isinstance(parts, list) or not parts:
            raise RuleError(f"{path}.{key}", "expected a non-empty list of conditions")
        if len(parts) > MAX_LIST:
            raise RuleError(f"{path}.{key}", f"more than {MAX_LIST} conditions")
        nodes = tuple(_node(p, f"{path}.{key}[{i}]", depth + 1, count) for i, p in enumerate(parts))
        return All(nodes) if key == "all" else Any_(nodes)
    if keys == {"not"}:
        return Not(_node(raw["not"], f"{path}.not", depth + 1, count))
    if keys in ({"has_tag"}, {"holds_product"}, {"has_flag"}):
        (key,) = keys
        value = raw[key]
        if not isinstance(value, str) or not value or len(value) > 64:
            raise RuleError(f"{path}.{key}", "expected a name of 1 to 64 characters")
        if key == "holds_product" and value not in PRODUCTS:
            raise RuleError(f"{path}.{key}", f"unknown product {value!r}; one of {sorted(PRODUCTS)}")
        return Has(key, value)
    if "field" in keys or "op" in keys:
        return _comparison(raw, keys, path)
    raise RuleError(
        path,
        f"unknown condition with keys {sorted(keys)}; expected all, any, not, has_tag, holds_product, has_flag "
        "or field/op/value",
    )


def _comparison(raw: dict[str, Any], keys: set[str], path: str) -> Compare:
    if keys != {"field", "op", "value"}:
        raise RuleError(path, f"a comparison has exactly the keys field, op and value; found {sorted(keys)}")
    name, op = raw["field"], raw["op"]
    if not isinstance(name, str) or name not in FIELDS:
        raise RuleError(f"{path}.field", f"unknown field {name!r}; one of {sorted(FIELDS)}")
    if op not in OPS:
        raise RuleError(f"{path}.op", f"unknown operator {op!r}; one of {list(OPS)}")
    kind = FIELDS[name].kind
    if op in ("gte", "lt", "between") and kind not in ORDERED:
        raise RuleError(f"{path}.op", f"{op} needs a number field; {name} is {kind}")
    value = raw["value"]
    where = f"{path}.value"
    if op in ("in", "between"):
        if not isinstance(value, list) or not value or len(value) > MAX_LIST:
            raise RuleError(where, f"{op} needs a non-empty list of at most {MAX_LIST} values")
        if op == "between" and len(value) != 2:
            raise RuleError(where, f"between needs exactly two bounds [low, high]; got {len(value)}")
        items = tuple(_value(v, kind, f"{where}[{i}]") for i, v in enumerate(value))
        if op == "between" and items[0] > items[1]:  # type: ignore[operator]
            raise RuleError(where, "the low bound is above the high bound")
        return Compare(name, op, items)
    return Compare(name, op, _value(value, kind, where))


def _value(raw: object, kind: Kind, path: str) -> Value:
    if kind == "bool":
        if not isinstance(raw, bool):
            raise RuleError(path, "expected true or false")
        return raw
    if kind == "text":
        if not isinstance(raw, str) or not raw or len(raw) > 64:
            raise RuleError(path, "expected a text value of 1 to 64 characters")
        return raw
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise RuleError(path, 'expected a number (money may be a decimal string such as "200000.00")')
    if kind == "money":
        try:
            amount = Decimal(str(raw))
        except InvalidOperation:
            raise RuleError(path, f"{raw!r} is not an amount") from None
        if not amount.is_finite():
            raise RuleError(path, "expected a finite amount")
        return amount
    if isinstance(raw, str):
        raise RuleError(path, "expected a JSON number")
    if kind == "integer":
        if isinstance(raw, float) and not raw.is_integer():
            raise RuleError(path, "expected a whole number")
        if abs(raw) > 10**9:
            raise RuleError(path, "expected a whole number within ±1,000,000,000")
        return int(raw)
    try:
        number = float(raw)
    except OverflowError:
        raise RuleError(path, "expected a finite number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise RuleError(path, "expected a finite number")
    return number


def subject_of(facts: Facts, profile: ProfileUpdated | None, value_score: int | None) -> Subject:
    """The subject for `facts`, with the profile's liabilities and open products."""
    if profile is None:
        return Subject(facts, None, value_score, frozenset())
    holdings = frozenset(product.value for product, count in profile.product_holdings.items() if count)
    return Subject(facts, profile.liabilities_cny, value_score, holdings)
