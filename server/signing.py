"""Tamper-evident tokens: list page tokens and download URL signatures.

Both are HMAC-SHA256 under the store's secret, each with a key of its own purpose so that a
signature made for one use is worthless for the other.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets

_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_MAC_BYTES = 16


class Signer:
    """Seals and opens opaque tokens and signs download links, with keys derived from one secret."""

    def __init__(self, secret: bytes) -> None:
        self._token_key = hmac.digest(secret, b"page-token", "sha256")
        self._url_key = hmac.digest(secret, b"download-url", "sha256")
        self._upload_key = hmac.digest(secret, b"upload-url", "sha256")

    def seal(self, payload: bytes) -> str:
        mac = hmac.digest(self._token_key, payload, "sha256")[:_MAC_BYTES]
        return base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode()

    def open(self, token: str) -> bytes | None:
        """The payload of a token `seal` made, or None for anything else."""
        if not _TOKEN.fullmatch(token):
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except binascii.Error:
            return None
        # Decoders tolerate stray bits in the last character; only the canonical form counts.
        if self.seal(raw[:-_MAC_BYTES]) != token or len(raw) <= _MAC_BYTES:
            return None
        return raw[:-_MAC_BYTES]

    def url_signature(self, file_id: str, expires: int) -> str:
        return hmac.digest(self._url_key, f"{file_id}\n{expires}".encode(), "sha256").hex()

    def url_signature_valid(self, file_id: str, expires: int, signature: str) -> bool:
        return hmac.compare_digest(self.url_signature(file_id, expires), signature)

    def upload_signature(self, part: str, expires: int) -> str:
        """Signs one part's PUT link (`part` names the file, upload and part number)."""
        return hmac.digest(self._upload_key, f"{part}\n{expires}".encode(), "sha256").hex()

    def upload_signature_valid(self, part: str, expires: int, signature: str) -> bool:
        return hmac.compare_digest(self.upload_signature(part, expires), signature)


def new_secret() -> bytes:
    return secrets.token_bytes(32)
