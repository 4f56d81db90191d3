"""The wire format of Microsoft.VirtualMachineImages/imageTemplates (and its triggers), for api-versions
2022-07-01, 2023-07-01, 2024-02-01 and 2025-10-01: models, validation, canonical stored form, rendering.

One pydantic model family describes the superset of the four swagger versions; fields that only some versions
define carry ``Since`` markers (``wire.versions``). Differences between the versions:

- 2023-07-01: ``properties.errorHandling``; PATCH may carry ``properties.distribute``.
- 2024-02-01: ``properties.autoRun``, ``properties.managedResourceTags``, ``vnetConfig.containerInstanceSubnetId``;
  PATCH may carry ``properties.vmProfile``. From this version on the service is *strict*.
- 2025-10-01: ``properties.additionalDataDisks``, ``optimize.workload``, SharedImage ``replicationMode``.

Strict versions (``STRICT_VERSIONS``) match property names and enum/discriminator values case-sensitively and
reject unknown properties. Lenient versions match both case-insensitively (the stored form has the canonical
case) and drop unknown properties silently. Every version drops read-only properties a client sends back.

Validation runs in two passes and reports every violation in one ``ValidationFailed`` (``wire.walk`` collects
unknown properties and the prose rules; pydantic the types and swagger constraints). Each detail's ``target``
is a JSON path such as ``properties.customize[1].inline``. Detail codes:

- ``MissingRequiredProperty``: a required property is absent (or null).
- ``UnknownProperty``: a property the api-version does not define (strict versions only).
- ``InvalidEnumValue``: a value outside an enum, or an unknown discriminator (type/kind/scheme) value.
- ``InvalidPattern``: a string that does not match its pattern (runOutputName, sha256Checksum, restartTimeout).
- ``OutOfRange``: a number outside its minimum/maximum.
- ``InvalidType``: a value of the wrong JSON type.
- ``InvalidParameter``: a rule across properties (exactly one of, only together with, unique, absolute path,
  not empty, resource id shape).

A body that is not a JSON object raises ``InvalidRequestContent`` (no target).

The canonical (stored) form echoes what the client sent, as the example responses show the service doing:
property names and enum values in canonical case, read-only properties and nulls dropped, and only those
defaults filled that every example response fills — ``runElevated``/``runAsSystem`` (false) of PowerShell
customizers, and by the same model PowerShell validators. Everything else stays as sent or absent:
``buildTimeoutInMinutes``, ``vmProfile`` ({} stays {}), ``sha256Checksum`` ("" stays ""), TargetRegion
``replicaCount``/``storageAccountType``, ``excludeFromLatest``, ``versioning`` — the example responses never show
the service adding them (e.g. ListImageTemplatesByRg's gallery target has no targetRegions or versioning), so the
runner applies their defaults instead. Identity keys are kept exactly as sent.
"""

from __future__ import annotations

from typing import Any

from vmforge.wire.base import Ctx, WireModel
from vmforge.wire.limits import limit_errors
from vmforge.wire.template import ImageTemplate, ImageTemplateProperties, ImageTemplateUpdateParameters
from vmforge.wire.trigger import Trigger
from vmforge.wire.versions import API_VERSIONS, STRICT_VERSIONS, check_api_version, is_strict
from vmforge.wire.walk import validate_object, walk_object

__all__ = [
    "API_VERSIONS",
    "STRICT_VERSIONS",
    "check_api_version",
    "render_template_properties",
    "validate_template",
    "validate_template_update",
    "validate_trigger",
]


def _validate(model: type[WireModel], body: Any, api_version: str) -> dict[str, Any]:
    """Walk, validate, and dump ``body`` as ``model`` under ``api_version``: the canonical form, or every error."""
    api_version = check_api_version(api_version)
    limits = limit_errors(body) if model is not Trigger else []
    return validate_object(model, body, Ctx(api_version, is_strict(api_version)), limits)


def validate_template(body: Any, api_version: str) -> dict[str, Any]:
    """Validate an image template PUT body; return its canonical stored form
    ``{"location", "tags", "identity", "properties"}`` (read-only fields dropped, names and enum values in
    canonical case, the defaults the service echoes filled in)."""
    out = _validate(ImageTemplate, body, api_version)
    return {
        "location": out["location"],
        "tags": out.get("tags") or {},
        "identity": out["identity"],
        "properties": out["properties"],
    }


def validate_template_update(body: Any, api_version: str) -> dict[str, Any]:
    """Validate an image template PATCH body; return the canonical form of the keys that were given."""
    return _validate(ImageTemplateUpdateParameters, body, api_version)


def validate_trigger(body: Any, api_version: str) -> dict[str, Any]:
    """Validate a trigger PUT body; return ``{"properties": {"kind": "SourceImage"}}``."""
    return _validate(Trigger, body, api_version)


def render_template_properties(props: dict[str, Any], api_version: str) -> dict[str, Any]:
    """A stored template's properties as ``api_version`` shows them: properties that version's schema does not
    define (e.g. ``autoRun`` under 2022-07-01) are left out. Read-only fields are the caller's to add.
    ``props`` is not modified: the walk builds new objects and lists for everything the schema describes."""
    ctx = Ctx(check_api_version(api_version), strict=True, check=False)
    out = walk_object(props, ImageTemplateProperties, ("properties",), ctx)
    return out if isinstance(out, dict) else {}
