"""Every rule of both faces, by concern: `Files` serves FileService, `Drive` the PDS face,
both over one `Core` (store, clock, links). Nothing here knows about grpc or HTTP."""

from files_api.domain.core import Core
from files_api.domain.drive import Drive
from files_api.domain.files import Files

__all__ = ["Core", "Drive", "Files"]
