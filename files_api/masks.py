"""FieldMask path syntax (AIP-161): dotted segments, map keys quoted in backticks.

A segment made only of ``[A-Za-z0-9_]`` stands as it is; any other map key is written in
backticks, a literal backtick inside doubled: ``labels.`team.name` `` is the key ``team.name``.
Which paths mean something is the domain's business; this module only splits them.
"""

from __future__ import annotations

import re

_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_]+")


class MalformedPath(ValueError):
    pass


def split_path(path: str) -> list[str]:
    """The segments of one mask path, backticks removed; raises MalformedPath."""
    segments: list[str] = []
    i = 0
    while True:
        quoted = path.startswith("`", i)
        if quoted:
            i += 1
            chars: list[str] = []
            while True:
                if i >= len(path):
                    raise MalformedPath("unterminated backtick")
                if path[i] == "`":
                    if path.startswith("``", i):
                        chars.append("`")
                        i += 2
                        continue
                    i += 1
                    break
                chars.append(path[i])
                i += 1
            segments.append("".join(chars))
        else:
            match = _PLAIN_SEGMENT.match(path, i)
            if match is None:
                raise MalformedPath(
                    "a segment is empty or needs backticks (only [A-Za-z0-9_] may stand bare)"
                )
            segments.append(match.group())
            i = match.end()
        if i == len(path):
            return segments
        if path[i] != ".":
            raise MalformedPath(
                "a backticked segment must be followed by '.' or the end"
                if quoted
                else "a segment with characters other than [A-Za-z0-9_] needs backticks"
            )
        i += 1


def quote_segment(segment: str) -> str:
    """The inverse of split_path for one segment: bare when it can be, else backticked."""
    if _PLAIN_SEGMENT.fullmatch(segment):
        return segment
    return "`" + segment.replace("`", "``") + "`"
