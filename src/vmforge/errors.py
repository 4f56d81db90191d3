"""Domain errors.

Every error that reaches a client is one of these: it carries the ARM error code, the HTTP status and,
optionally, a target (a JSON path such as ``properties.customize[1].inline``) and details. Services and
kinds raise them; only the API layer turns them into HTTP responses (``vmforge.api.errors``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ErrorDetail:
    """One violation inside an error's ``details``."""

    code: str
    message: str
    target: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target is not None:
            d["target"] = self.target
        return d


class ArmError(Exception):
    """An error with an ARM wire code and an HTTP status."""

    status: int = 400
    code: str = "BadRequest"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        target: str | None = None,
        details: list[ErrorDetail] | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.target = target
        self.details: list[ErrorDetail] = list(details or [])
        self.headers: dict[str, str] = dict(headers or {})

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        body["target"] = self.target
        body["details"] = [d.to_dict() for d in self.details]
        return {"error": body}


class BadRequest(ArmError):
    status = 400
    code = "BadRequest"


class InvalidRequestContent(ArmError):
    status = 400
    code = "InvalidRequestContent"


class ValidationFailed(ArmError):
    """The template (or another body) breaks one or more rules; every violation is in ``details``."""

    status = 400
    code = "ValidationFailed"

    @classmethod
    def from_details(cls, details: list[ErrorDetail]) -> "ValidationFailed":
        if len(details) == 1:
            msg = f"{details[0].target}: {details[0].message}" if details[0].target else details[0].message
        else:
            msg = f"The request has {len(details)} validation errors: " + "; ".join(
                f"{d.target}: {d.message}" if d.target else d.message for d in details
            )
        return cls(msg, target=details[0].target if details else None, details=details)


class InvalidApiVersion(ArmError):
    status = 400
    code = "InvalidApiVersionParameter"


class MissingApiVersion(ArmError):
    status = 400
    code = "MissingApiVersionParameter"


class NotFound(ArmError):
    status = 404
    code = "ResourceNotFound"


class Conflict(ArmError):
    status = 409
    code = "Conflict"


class Unauthorized(ArmError):
    status = 401
    code = "AuthenticationFailed"


class Forbidden(ArmError):
    status = 403
    code = "AuthorizationFailed"


class PayloadTooLarge(ArmError):
    status = 413
    code = "RequestEntityTooLarge"


class UnsupportedMediaType(ArmError):
    status = 415
    code = "UnsupportedMediaType"


class TooManyRequests(ArmError):
    status = 429
    code = "TooManyRequests"
