"""Identity documents: normalisation, the keyed hash used for matching, masking, and junk numbers.

Identity numbers are kept only as an HMAC (for matching) and a masked form (for display).
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from collections.abc import Iterable

from contracts import IdType

#: Weights and check characters of the 18-digit resident identity number (GB 11643-1999).
_RESIDENT_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RESIDENT_CHECK = "10X98765432"


def normalise_id_number(id_number: str) -> str:
    """Upper case, no spaces or separators, full-width characters folded to ASCII."""
    folded = unicodedata.normalize("NFKC", id_number)
    return "".join(ch for ch in folded.upper() if ch.isalnum())


def resident_check_character(first17: str) -> str:
    return _RESIDENT_CHECK[sum(int(d) * w for d, w in zip(first17, _RESIDENT_WEIGHTS, strict=True)) % 11]


def canonical_id_number(id_type: IdType | str, id_number: str) -> str:
    """The form two systems' records of one document share.

    A first-generation 15-digit resident id becomes its 18-digit form (century `19` inserted,
    check character computed), so a bank system that never migrated still matches.
    """
    normal = normalise_id_number(id_number)
    if str(id_type) == IdType.RESIDENT_ID and len(normal) == 15 and normal.isdigit():
        first17 = normal[:6] + "19" + normal[6:]
        return first17 + resident_check_character(first17)
    return normal


def blocked_reason(canonical: str, blocklist: Iterable[str]) -> str | None:
    """Why an identity number must never merge anyone, or None when it may.

    Junk numbers (all one character, such as all zeros) and the configured blocklist of known
    test values are what glue strangers together in systems that trust any shared identifier.
    """
    if not canonical:
        return "the identity number is empty once normalised"
    if len(set(canonical)) == 1:
        return "the identity number repeats one character (a placeholder)"
    if canonical in {normalise_id_number(value) for value in blocklist}:
        return "the identity number is on the configured blocklist"
    return None


class IdentityProtector:
    """Hashes identity numbers with HMAC-SHA256 under a configured key and masks them."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("the identity hash key must not be empty")
        self._key = key.encode()

    def hash(self, id_type: IdType | str, id_number: str) -> str:
        message = f"{id_type}:{canonical_id_number(id_type, id_number)}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    @staticmethod
    def mask(id_number: str, visible: int = 4) -> str:
        """Every character but the last `visible` replaced by `*`."""
        normal = normalise_id_number(id_number)
        if len(normal) <= visible:
            return "*" * len(normal)
        return "*" * (len(normal) - visible) + normal[-visible:]
