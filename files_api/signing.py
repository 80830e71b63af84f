"""Keys derived from the store's one secret, one per purpose, and what is made with them.

A token or signature made for one purpose is worthless for every other: a PDS marker sent as a
List page token fails its check like any forgery, instead of reaching a parser that expects
another shape. The purposes:

* `PAGE_TOKEN`: FileService.List's `next_page_token`;
* `PDS_MARKER`: the PDS face's `next_marker`;
* `DOWNLOAD`: the signature of a download link (GetUrl, PDS's download_url);
* `UPLOAD_PART`: the signature of a PDS part's PUT link.

Each key is HMAC-SHA256(secret, purpose label). The labels of the first three purposes ever
issued are kept as they were, so tokens and links handed out before keep working. Every
comparison of a MAC, or of an API key's hash (`files_api.auth`), goes through `same`, which is
`hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
import re
import secrets

_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_MAC_BYTES = 16


class Purpose(enum.Enum):
    """What a key is for; the value is the label its key is derived with."""

    PAGE_TOKEN = b"page-token"
    AUDIT_TOKEN = b"audit-token"
    PDS_MARKER = b"pds-marker"
    DOWNLOAD = b"download-url"
    UPLOAD_PART = b"upload-url"


class Signer:
    """Seals opaque tokens and signs messages, each under the key of its purpose."""

    def __init__(self, secret: bytes) -> None:
        self._keys = {p: hmac.digest(secret, p.value, "sha256") for p in Purpose}

    def _mac(self, purpose: Purpose, payload: bytes) -> bytes:
        return hmac.digest(self._keys[purpose], payload, "sha256")

    def seal(self, purpose: Purpose, payload: bytes) -> str:
        """`payload` and its MAC as unpadded URL-safe base64: opaque, tamper-evident."""
        mac = self._mac(purpose, payload)[:_MAC_BYTES]
        return base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode()

    def open(self, purpose: Purpose, token: str) -> bytes | None:
        """The payload of a token `seal` made for `purpose`, or None for anything else."""
        if not _TOKEN.fullmatch(token):
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except binascii.Error:
            return None
        if len(raw) <= _MAC_BYTES:
            return None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if not same(self._mac(purpose, payload)[:_MAC_BYTES], mac):
            return None
        # Decoders tolerate stray bits in the last character; only the canonical form counts.
        canonical = base64.urlsafe_b64encode(raw).rstrip(b"=")
        return payload if same(canonical, token.encode()) else None

    def sign(self, purpose: Purpose, message: str) -> str:
        """A hex signature of `message`, for a link's query string."""
        return self._mac(purpose, message.encode()).hex()

    def verify(self, purpose: Purpose, message: str, signature: str) -> bool:
        # As bytes: compare_digest refuses str with non-ASCII characters, which a query may hold.
        given = signature.encode("utf-8", "surrogatepass")
        return same(self.sign(purpose, message).encode(), given)


def same(a: bytes, b: bytes) -> bool:
    """Whether two secrets-derived values (MACs, key hashes) are equal, in time that says
    nothing of where they differ: every such comparison in the server goes through here."""
    return hmac.compare_digest(a, b)


def new_secret() -> bytes:
    return secrets.token_bytes(32)
