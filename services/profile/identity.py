"""Identity numbers are kept only as a keyed hash (for matching) and a masked form (for display)."""

from __future__ import annotations

import hashlib
import hmac
import unicodedata


def normalise_id_number(id_number: str) -> str:
    """Upper case, no spaces or separators, full-width characters folded to ASCII."""
    folded = unicodedata.normalize("NFKC", id_number)
    return "".join(ch for ch in folded.upper() if ch.isalnum())


class IdentityProtector:
    """Hashes identity numbers with HMAC-SHA256 under a configured key and masks them."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("the identity hash key must not be empty")
        self._key = key.encode()

    def hash(self, id_type: str, id_number: str) -> str:
        message = f"{id_type}:{normalise_id_number(id_number)}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    @staticmethod
    def mask(id_number: str, visible: int = 4) -> str:
        """Every character but the last `visible` replaced by `*`."""
        normal = normalise_id_number(id_number)
        if len(normal) <= visible:
            return "*" * len(normal)
        return "*" * (len(normal) - visible) + normal[-visible:]
