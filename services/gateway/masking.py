"""Masking of personal data, in one place, applied to every response that carries it."""

from __future__ import annotations

from collections.abc import Iterable

MASK = "*"


def mask_phone(phone: str | None) -> str | None:
    """Keep the first three and last two digits: `138******34`."""
    if phone is None:
        return None
    digits = phone.strip()
    if len(digits) <= 5:
        return MASK * len(digits)
    return digits[:3] + MASK * (len(digits) - 5) + digits[-2:]


def mask_email(email: str | None) -> str | None:
    if email is None or "@" not in email:
        return None if email is None else MASK * len(email)
    local, domain = email.split("@", 1)
    return (local[:1] + MASK * max(len(local) - 1, 1)) + "@" + domain


def can_see_clear(role: str, unmasked_roles: Iterable[str]) -> bool:
    return role in set(unmasked_roles)
