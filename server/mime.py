"""MIME type of uploaded content when the client gives none."""

from __future__ import annotations

import json
import mimetypes

import puremagic

_SNIFF_BYTES = 1 << 16


def detect_mime(content: bytes, name: str) -> str:
    """Magic numbers first (the bytes do not lie), then the name's extension, then text sniffing."""
    try:
        matches = puremagic.magic_string(content[:_SNIFF_BYTES])
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
