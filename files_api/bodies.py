"""Request bodies as every HTTP face reads them.

aiohttp's own decompression is turned off (`AUTO_DECOMPRESS`): a corrupt gzip body made its
parser log a traceback and the handler answer 500, and an encoding it lacks a library for was
a plain-text 400. Here gzip and deflate are inflated within the same bound as any body (a small
compressed body cannot become gigabytes), anything else is 415, a corrupt one 400, and a client
that goes away mid-body is one INFO line.
"""

from __future__ import annotations

import logging
import zlib

from aiohttp import web

from files_api.domain.limits import MAX_CONTENT_BYTES

# Create over REST carries content as base64 in JSON: 4/3 of the largest file, and room.
MAX_BODY_BYTES = MAX_CONTENT_BYTES * 4 // 3 + 1024 * 1024

READ_BYTES = 1024 * 1024
MAX_PDS_BODY_BYTES = 1024 * 1024  # a PDS call's JSON: its content travels in part uploads
MAX_FORM_PARTS = 64  # a Create's fields, each a part, with room

AUTO_DECOMPRESS = False
"""For aiohttp's request handler: bodies reach `read_body` as the client sent them."""

# zlib's window bits for each Content-Encoding we inflate: gzip's header, zlib's (RFC 9110's
# "deflate"), and raw deflate, which some clients send under the same name.
_WBITS = {"gzip": (31,), "x-gzip": (31,), "deflate": (15, -15)}
_IDENTITY = ("", "identity")

log = logging.getLogger(__name__)


class ClientGone(web.HTTPBadRequest):
    """The client closed its connection before its body had arrived. Answered as any 400, to
    no one: what matters is that it is not logged as an unexpected error."""


async def read_body(request: web.Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request's body, decoded, at most `limit` bytes (413 past it)."""
    encoding = content_encoding(request)
    if encoding not in _IDENTITY and encoding not in _WBITS:
        raise web.HTTPUnsupportedMediaType(
            reason=f"Content-Encoding {encoding!r} is not supported: use gzip, deflate or none"
        )
    announced = request.content_length
    if announced is not None and announced > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=announced)
    try:
        raw = await _read_at_most(request, limit)
    except (ConnectionError, EOFError) as e:  # aiohttp's "Connection lost" and the like
        log.info("%s %s: the client went away mid-body (%s)", request.method, request.path, e)
        raise ClientGone(reason="the client went away mid-body") from None
    if encoding in _IDENTITY:
        return raw
    return _inflate(raw, _WBITS[encoding], encoding, limit)


async def _read_at_most(request: web.Request, limit: int) -> bytes:
    """The raw body, refused with 413 once it passes `limit` (a chunked body announces no
    length): never more than that is read or held."""
    body = bytearray()
    while chunk := await request.content.read(READ_BYTES):
        body += chunk
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    return bytes(body)


def content_encoding(request: web.Request) -> str:
    return request.headers.get("Content-Encoding", "").strip().lower()


def require_identity(request: web.Request) -> None:
    """For bodies read as a stream (multipart forms): they are taken only as sent."""
    encoding = content_encoding(request)
    if encoding not in _IDENTITY:
        raise web.HTTPUnsupportedMediaType(
            reason=f"Content-Encoding {encoding!r} is not supported for this body: send it as is"
        )


def _inflate(raw: bytes, wbits_to_try: tuple[int, ...], encoding: str, limit: int) -> bytes:
    for wbits in wbits_to_try:
        inflater = zlib.decompressobj(wbits)
        try:
            body = inflater.decompress(raw, limit + 1)
        except zlib.error:
            continue
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
        if not inflater.eof or inflater.unused_data:
            break  # truncated, or something after the end
        return body
    raise web.HTTPBadRequest(reason=f"the body is not valid {encoding}")
