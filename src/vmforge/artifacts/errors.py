"""Domain errors of the artifact store (all ``ArmError``s: the API renders them as CloudError). Download errors
(``DownloadFailed``, ``ChecksumMismatch``) are ``vmforge.fetch``'s, for http(s), file:// and blob sources alike."""

from __future__ import annotations

from vmforge.errors import ArmError, Forbidden, NotFound


class InvalidParameter(ArmError):
    """A request field is wrong (Azure's generic 400 for Microsoft.Compute)."""

    status = 400
    code = "InvalidParameter"


class UnsupportedImageFormat(ArmError):
    status = 400
    code = "UnsupportedImageFormat"


class InvalidImage(ArmError):
    """The bytes are not a readable disk image of their format (corrupt, truncated, hostile)."""

    status = 400
    code = "InvalidImage"


class BadImageFormat(InvalidImage):
    """The bytes are no disk image at all: a VHD without a valid footer, a raw file with neither a partition
    table nor a file system."""

    code = "BadImageFormat"


class ImportPathForbidden(Forbidden):
    """A ``file://`` source outside every configured import root."""

    code = "ImportPathNotAllowed"


class ParentNotFound(NotFound):
    code = "ParentResourceNotFound"


class ResourceInUse(ArmError):
    """Deleting a parent that still has children (Azure answers 409)."""

    status = 409
    code = "OperationNotAllowed"
