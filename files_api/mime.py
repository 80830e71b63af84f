"""MIME type of uploaded content when the client gives none."""

from __future__ import annotations

import codecs
import json
import mimetypes
from collections import defaultdict
from typing import TYPE_CHECKING

import puremagic
from puremagic.main import max_foot, max_head

if TYPE_CHECKING:
    from files_api.store import Content

_SNIFF_BYTES = 1 << 16  # of each end, for text sniffing
assert max(max_head, max_foot) <= _SNIFF_BYTES  # puremagic's reach lies within the sample


def _by_place(rows: list[puremagic.PureMagic]) -> list[tuple[int, int, frozenset[bytes]]]:
    places: defaultdict[tuple[int, int], set[bytes]] = defaultdict(set)
    for row in rows:
        places[row.offset, row.offset + len(row.byte_match)].add(row.byte_match)
    return [(start, end, frozenset(magics)) for (start, end), magics in places.items()]


# puremagic tries its ~1,400 signatures one by one in Python (~0.2 ms a call); most uploads
# match none of them. Grouped by where they sit, a few hundred slices tell whether any could
# match, and only then is puremagic asked, so its answers (and their ranking) stay its own.
_HEAD_PLACES = _by_place(puremagic.magic_header_array)
_FOOT_PLACES = _by_place(puremagic.magic_footer_array)


def _may_have_magic(content: bytes) -> bool:
    head, foot = content[:max_head], content[-max_foot:]
    for start, end, magics in _HEAD_PLACES:
        if end <= len(head) and head[start:end] in magics:
            return True
    # Footer signatures sit at negative offsets; one ending at 0 runs to the end.
    return any(
        (foot[start:end] if end != 0 else foot[start:]) in magics
        for start, end, magics in _FOOT_PLACES
    )


def detect_mime(content: Content, name: str) -> str:
    """Magic numbers first (the bytes do not lie), then the name's extension, then text sniffing.

    Only `_SNIFF_BYTES` of each end of the content are read (puremagic's head and foot lie
    within them), so 128 MiB costs what 128 KiB does: this runs on the event loop.
    """
    sample = _sample(content)
    try:
        matches = puremagic.magic_string(_ends(sample)) if _may_have_magic(sample) else []
    except (puremagic.PureError, ValueError):
        matches = []
    for match in matches:
        if match.mime_type:
            return str(match.mime_type)
    guessed, _ = mimetypes.guess_type(name, strict=False)
    if guessed:
        return guessed
    return _sniff_text(sample, whole=len(content) <= 2 * _SNIFF_BYTES)


def _sample(content: Content) -> bytes:
    """The whole content when short, else its first and last `_SNIFF_BYTES` joined."""
    if len(content) <= 2 * _SNIFF_BYTES:
        return bytes(content)
    return bytes(content[:_SNIFF_BYTES]) + bytes(content[-_SNIFF_BYTES:])


def _ends(content: bytes) -> bytes:
    """What puremagic reads of the content (its first `max_head` and last `max_foot` bytes),
    joined so that a footer signature is found at the content's real end."""
    if len(content) <= max_head + max_foot:
        return content
    return content[:max_head] + content[-max_foot:]


def _sniff_text(sample: bytes, whole: bool) -> str:
    if whole:
        return _text_type(sample)
    head, tail = sample[:_SNIFF_BYTES], sample[_SNIFF_BYTES:]
    if not (_utf8_head(head) and _utf8_tail(tail)) or b"\x00" in head or b"\x00" in tail:
        return "application/octet-stream"
    # Too long to parse here: JSON when it opens and closes as a JSON object or array does.
    if (head.lstrip()[:1], tail.rstrip()[-1:]) in ((b"{", b"}"), (b"[", b"]")):
        return "application/json"
    return "text/plain"


def _utf8_head(head: bytes) -> bool:
    """UTF-8, but for a character the cut at its end may have split."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _utf8_tail(tail: bytes) -> bool:
    """UTF-8 after the continuation bytes (at most 3) of a character the cut split."""
    for start in range(4):
        try:
            tail[start:].decode()
        except UnicodeDecodeError:
            if start == len(tail) or not 0x80 <= tail[start] < 0xC0:
                return False
        else:
            return True
    return False


def _text_type(content: bytes) -> str:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    if "\x00" in text:
        return "application/octet-stream"
    if text.lstrip()[:1] in ("{", "["):
        try:
            json.loads(text)
        except ValueError:
            pass
        else:
            return "application/json"
    return "text/plain"
