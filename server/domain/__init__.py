"""Every rule of both faces, by concern: `Files` serves FileService, `Drive` the PDS face,
both over one `Core` (store, clock, links). Nothing here knows about grpc or HTTP."""

from server.domain.core import Core
from server.domain.drive import Drive
from server.domain.files import Files

__all__ = ["Core", "Drive", "Files"]
