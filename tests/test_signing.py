"""Keys per purpose, and comparisons in constant time."""

from __future__ import annotations

import base64
import hmac
import itertools
from typing import TYPE_CHECKING

import pytest

from files_api.auth import KeyRing
from files_api.signing import Purpose, Signer

if TYPE_CHECKING:
    from pathlib import Path

SECRET = b"s" * 32


@pytest.mark.parametrize(("sealed", "opened"), list(itertools.permutations(Purpose, 2)))
def test_a_token_of_one_purpose_opens_under_no_other(sealed: Purpose, opened: Purpose) -> None:
    signer = Signer(SECRET)
    token = signer.seal(sealed, b'["f",1,"x"]')
    assert signer.open(sealed, token) == b'["f",1,"x"]'
    assert signer.open(opened, token) is None
    signature = signer.sign(sealed, "x\n1")
    assert signer.verify(sealed, "x\n1", signature)
    assert not signer.verify(opened, "x\n1", signature)


@pytest.mark.parametrize("purpose", [Purpose.PAGE_TOKEN, Purpose.DOWNLOAD, Purpose.UPLOAD_PART])
def test_tokens_and_links_issued_before_per_purpose_keys_still_open(purpose: Purpose) -> None:
    # The earlier release derived these three keys with the same labels: its page tokens
    # and links stay valid across the upgrade.
    label = {
        Purpose.PAGE_TOKEN: b"page-token",
        Purpose.DOWNLOAD: b"download-url",
        Purpose.UPLOAD_PART: b"upload-url",
    }[purpose]
    key = hmac.digest(SECRET, label, "sha256")
    payload = b'["f",1,"x"]'
    token = base64.urlsafe_b64encode(payload + hmac.digest(key, payload, "sha256")[:16])
    signer = Signer(SECRET)
    assert signer.open(purpose, token.rstrip(b"=").decode()) == payload
    assert signer.verify(purpose, "x\n1", hmac.digest(key, b"x\n1", "sha256").hex())


def test_every_comparison_of_a_secret_value_is_constant_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recorded(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recorded)
    signer = Signer(SECRET)
    token = signer.seal(Purpose.PAGE_TOKEN, b"payload")
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    for attempt in (token, forged):
        compared.clear()
        signer.open(Purpose.PAGE_TOKEN, attempt)
        assert compared, f"open({attempt!r}) compared without compare_digest"
    for signature in (signer.sign(Purpose.DOWNLOAD, "m"), "0" * 64, "é"):
        compared.clear()
        signer.verify(Purpose.DOWNLOAD, "m", signature)
        assert compared, f"verify(..., {signature!r}) compared without compare_digest"
    keys = tmp_path / "keys.toml"
    salt = "00" * 16
    digest = hmac.digest(bytes.fromhex(salt), b"", "sha256")  # any hex of the right length
    keys.write_text(
        f'salt = "{salt}"\n\n[[key]]\nsubject = "a"\nfolders = ["f"]\nsha256 = "{digest.hex()}"\n'
    )
    compared.clear()
    with pytest.raises(Exception, match="unknown credentials"):
        KeyRing.load(keys).authenticate("Api-Key wrong")
    assert compared, "an API key's hash was compared without compare_digest"
