"""Everything this server hands out to be sent back later, and the URL paths behind them:
List page tokens, PDS markers, signed download links, upload ids and signed part links.

Each kind is sealed or signed under a key of its own purpose (`files_api.signing`), and each is
read back here only: a token of another kind, an old version or a shape no token has is
INVALID_ARGUMENT naming the field, a link that does not check out is PERMISSION_DENIED.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import TYPE_CHECKING, Any

from files_api.errors import InvalidArgument, PermissionDenied
from files_api.signing import Purpose

if TYPE_CHECKING:
    from collections.abc import Sequence

    from files_api.signing import Signer
    from files_api.store import Cursor, FileRecord, Order

DOWNLOAD_ROUTE = "/files/v1/files/{file_id}/content"
"""A file's content behind a signed link, as an aiohttp route; `download_url` fills it in."""
UPLOAD_PREFIX = "/v2/upload/"
UPLOAD_ROUTE = UPLOAD_PREFIX + "{part:[a-z0-9]+/[0-9a-f]+/[0-9]{1,5}}"
"""One part's PUT link: `<file id>/<upload id>/<part number>` after the prefix."""

_EXPIRES = re.compile(r"[0-9]{1,15}")
_SORT_VALUE: dict[str, type] = {
    "created_at_ns": int,
    "updated_at_ns": int,
    "name": str,
    "size": int,
}


def _json(payload: bytes, *shape: type) -> list[Any] | None:
    """The payload as a JSON list of exactly these types, or None: a sealed payload is ours,
    but an older release may have sealed another shape under the same purpose."""
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list) or len(value) != len(shape):
        return None
    for item, kind in zip(value, shape, strict=True):
        if not isinstance(item, kind) or (kind is int and isinstance(item, bool)):
            return None
    return value


def _seal_json(signer: Signer, purpose: Purpose, value: Sequence[object]) -> str:
    return signer.seal(purpose, json.dumps(value, separators=(",", ":")).encode())


class Links:
    """Makes and reads back every token and link, under the keys of one `Signer`."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer

    # --- FileService.List ------------------------------------------------------------------

    def page_token(self, folder_id: str, last: Cursor) -> str:
        """A token past `last`, the (created_at_ns, id) of the page's last file."""
        created_at_ns, file_id = last
        return _seal_json(self._signer, Purpose.PAGE_TOKEN, [folder_id, created_at_ns, file_id])

    def open_page_token(self, token: str, folder_id: str) -> Cursor:
        payload = self._signer.open(Purpose.PAGE_TOKEN, token)
        fields = None if payload is None else _json(payload, str, int, str)
        if fields is None:
            raise InvalidArgument.field("page_token", "is not a token this server issued")
        token_folder, created_at_ns, file_id = fields
        if token_folder != folder_id:
            raise InvalidArgument.field("page_token", "was issued for another folder")
        return created_at_ns, file_id

    # --- the audit history extension --------------------------------------------------------

    def audit_token(self, file_id: str, last: int) -> str:
        """A token past `last`, the place in the log of the page's last (oldest) record."""
        return _seal_json(self._signer, Purpose.AUDIT_TOKEN, [file_id, last])

    def open_audit_token(self, token: str, file_id: str) -> int:
        payload = self._signer.open(Purpose.AUDIT_TOKEN, token)
        fields = None if payload is None else _json(payload, str, int)
        if fields is None:
            raise InvalidArgument.field("page_token", "is not a token this server issued")
        if fields[0] != file_id:
            raise InvalidArgument.field("page_token", "was issued for another file")
        return int(fields[1])

    # --- the PDS face's listing ------------------------------------------------------------

    def marker(self, folder_id: str, order: Order, last: FileRecord) -> str:
        position = [folder_id, order.key, order.descending, *order.cursor(last)]
        return _seal_json(self._signer, Purpose.PDS_MARKER, position)

    def open_marker(self, marker: str, folder_id: str, order: Order) -> Cursor:
        payload = self._signer.open(Purpose.PDS_MARKER, marker)
        fields = None
        if payload is not None:
            fields = _json(payload, str, str, bool, _SORT_VALUE.get(order.key, str), str)
        if fields is None:
            raise InvalidArgument.field("marker", "is not a marker this server issued")
        *issued_for, key, last_id = fields
        if issued_for != [folder_id, order.key, order.descending]:
            raise InvalidArgument.field("marker", "was issued for another folder or order")
        return key, last_id

    # --- downloads -------------------------------------------------------------------------

    def download_url(self, file_id: str, base_url: str, expires: int) -> str:
        """A link to the content that works until the second `expires`, with no credentials."""
        signature = self._signer.sign(Purpose.DOWNLOAD, f"{file_id}\n{expires}")
        path = DOWNLOAD_ROUTE.format(file_id=file_id)
        return f"{base_url}{path}?expires={expires}&signature={signature}"

    def check_download(self, file_id: str, expires: str, signature: str, now_ns: int) -> None:
        if not self._valid(Purpose.DOWNLOAD, file_id, expires, signature, now_ns):
            raise PermissionDenied("the download link is invalid or has expired")

    # --- staged uploads --------------------------------------------------------------------

    @staticmethod
    def new_upload_id() -> str:
        return secrets.token_hex(16)

    def part_urls(
        self, file_id: str, upload_id: str, parts: int, base_url: str, expires: int
    ) -> tuple[str, ...]:
        """One PUT link per part, 1 to `parts`, each working until the second `expires`."""
        urls = []
        for number in range(1, parts + 1):
            part = f"{file_id}/{upload_id}/{number}"
            signature = self._signer.sign(Purpose.UPLOAD_PART, f"{part}\n{expires}")
            urls.append(f"{base_url}{UPLOAD_PREFIX}{part}?expires={expires}&signature={signature}")
        return tuple(urls)

    def check_part(
        self, part: str, expires: str, signature: str, now_ns: int
    ) -> tuple[str, str, int]:
        """The file id, upload id and part number a valid part link names."""
        if not self._valid(Purpose.UPLOAD_PART, part, expires, signature, now_ns):
            raise PermissionDenied("the upload link is invalid or has expired")
        file_id, upload_id, number = part.split("/")
        return file_id, upload_id, int(number)

    def _valid(
        self, purpose: Purpose, subject: str, expires: str, signature: str, now_ns: int
    ) -> bool:
        return (
            _EXPIRES.fullmatch(expires) is not None
            and self._signer.verify(purpose, f"{subject}\n{expires}", signature)
            and int(expires) * 10**9 > now_ns
        )
