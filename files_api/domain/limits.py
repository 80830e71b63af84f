"""Every limit and default of the API, in one place: the rules, the faces and the README's
figures all read them from here."""

from __future__ import annotations

from files_api_stubs.yandex.cloud.ai.common import common_pb2

NS_PER_DAY = 86_400 * 10**9

# File
DEFAULT_POLICY = common_pb2.ExpirationConfig.SINCE_LAST_ACTIVE
DEFAULT_TTL_DAYS = 7
MAX_TTL_DAYS = 3650
MAX_CONTENT_BYTES = 128 * 1024 * 1024
MAX_NAME_BYTES = 1024
MAX_DESCRIPTION_CHARS = 1024
MAX_LABELS = 64
MAX_ID_CHARS = 128
MAX_MIME_TYPE_CHARS = 255

# FileService.List
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# A page stops early (with its token) before it grows past this: a stock gRPC client refuses a
# message over 4 MiB, and a thousand Files with long names, descriptions and labels pass that.
MAX_PAGE_BYTES = 3 * 1024 * 1024

# The audit history extension (`GET /files/v1/files/{file_id}/audit`); at most MAX_PAGE_SIZE.
DEFAULT_HISTORY_PAGE_SIZE = 50

# Download links
DEFAULT_URL_TTL_SECONDS = 3600  # GetUrl's links (--url-ttl-seconds)
MAX_URL_TTL_SECONDS = 115_200  # PDS's ceiling for expire_sec
DEFAULT_PDS_URL_TTL_SECONDS = 900  # PDS's default for expire_sec
# A download moves a SINCE_LAST_ACTIVE file's expires_at only when that moves it this much or
# more (as `relatime` does atime): at most one durable write a minute per file, and expires_at
# at most this much earlier than the last download would have set (TTLs are counted in days).
ACTIVITY_SLACK_NS = 60 * 10**9

# The PDS face
MAX_PDS_LABELS = 100
MAX_PDS_LABEL_CHARS = 128
MAX_PARTS = 10_000
UPLOAD_TTL_NS = NS_PER_DAY  # an upload never completed is purged after this
DEFAULT_BROWSE_LIMIT = 50
MAX_BROWSE_LIMIT = 100

# Work kept off the event loop
HASH_OFF_LOOP_BYTES = 64 * 1024  # hashing more than this goes to a thread
