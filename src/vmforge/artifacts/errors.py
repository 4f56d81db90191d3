"""Domain errors of the artifact store (all ``ArmError``s: the API renders them as CloudError)."""

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


class ChecksumMismatch(ArmError):
    status = 400
    code = "ChecksumMismatch"


class ImportPathForbidden(Forbidden):
    """A ``file://`` source outside every configured import root."""

    code = "ImportPathNotAllowed"


class DownloadFailed(ArmError):
    status = 400
    code = "DownloadFailed"


class ParentNotFound(NotFound):
    code = "ParentResourceNotFound"


class ResourceInUse(ArmError):
    """Deleting a parent that still has children (Azure answers 409)."""

    status = 409
    code = "OperationNotAllowed"
