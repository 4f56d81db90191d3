"""The api-versions this service speaks, and the per-field version markers of the wire models.

One model family describes the superset of every version; a field that exists only in some versions carries a
``Since``/``Until`` marker in its ``Annotated`` metadata. The walker (``wire.walk``) treats a field that the
request's version does not define exactly like an unknown property.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vmforge.errors import InvalidApiVersion, MissingApiVersion

API_VERSIONS: tuple[str, ...] = ("2022-07-01", "2023-07-01", "2024-02-01", "2025-10-01")

# From 2024-02-01 on, the service is strict: case-sensitive names and values, unknown properties rejected.
STRICT_VERSIONS: frozenset[str] = frozenset({"2024-02-01", "2025-10-01"})

LATEST = API_VERSIONS[-1]


def check_api_version(value: str | None) -> str:
    """The api-version of a request, or the ARM error for a missing or unsupported one."""
    if value is None or not str(value).strip():
        raise MissingApiVersion("The api-version query parameter (?api-version=) is required for all requests.")
    if value in API_VERSIONS:
        return value
    supported = ", ".join(reversed(API_VERSIONS))
    raise InvalidApiVersion(
        f"The resource type 'imageTemplates' could not be found in the namespace 'Microsoft.VirtualMachineImages' "
        f"for api version '{value}'. The supported api-versions are '{supported}'.",
        target="api-version",
    )


def is_strict(api_version: str) -> bool:
    return api_version in STRICT_VERSIONS


@dataclass(frozen=True)
class Since:
    """The field first appears in this api-version."""

    version: str

    def allows(self, api_version: str) -> bool:
        return API_VERSIONS.index(api_version) >= API_VERSIONS.index(self.version)


@dataclass(frozen=True)
class Until:
    """The field last appears in this api-version (inclusive)."""

    version: str

    def allows(self, api_version: str) -> bool:
        return API_VERSIONS.index(api_version) <= API_VERSIONS.index(self.version)


def allowed(metadata: Iterable[object], api_version: str) -> bool:
    """Whether a field with this ``Annotated`` metadata exists in ``api_version``."""
    return all(m.allows(api_version) for m in metadata if isinstance(m, (Since, Until)))
