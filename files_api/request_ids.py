"""The `x-request-id` of a call: one rule for every face (gRPC, REST, PDS).

A client's id is kept when it can go back as a header value as it is (1-128 printable ASCII
characters); any other, or none, is replaced with a fresh one. The id the response carries
(header or trailer) is always the one in the audit record.
"""

from __future__ import annotations

import itertools
import os
import re

REQUEST_ID = "x-request-id"

_PRINTABLE_ID = re.compile(r"[!-~]{1,128}")


class _RequestIds:
    """32 hex digits: a random prefix per process, then a counter. Unique without a system
    call per request (getrandom costs ~10 us on these VMs); ids name requests in logs and the
    audit trail, and need no secrecy. A forked worker draws its own prefix."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._numbers = itertools.count()

    def new(self) -> str:
        return f"{self._prefix}{next(self._numbers):016x}"


new_request_id = _RequestIds().new


def request_id(given: str | None) -> str:
    """The client's id when it can be sent back as it is; else a new one."""
    if given is not None and _PRINTABLE_ID.fullmatch(given):
        return given
    return new_request_id()
