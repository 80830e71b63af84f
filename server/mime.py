"""MIME type of uploaded content when the client gives none."""

from __future__ import annotations

import json
import mimetypes
from collections import defaultdict

import puremagic
from puremagic.main import max_foot, max_head

_SNIFF_BYTES = 1 << 16


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


def detect_mime(content: bytes, name: str) -> str:
    """Magic numbers first (the bytes do not lie), then the name's extension, then text sniffing."""
    sniffed = content[:_SNIFF_BYTES]
    try:
        matches = puremagic.magic_string(sniffed) if _may_have_magic(sniffed) else []
    except (puremagic.PureError, ValueError):
        matches = []
    for match in matches:
        if match.mime_type:
            return str(match.mime_type)
    guessed, _ = mimetypes.guess_type(name, strict=False)
    if guessed:
        return guessed
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
