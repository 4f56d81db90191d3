"""The wire format of the Microsoft.Compute bodies vmforge accepts: managed images (``images``), galleries,
gallery image definitions (``galleries/images``) and gallery image versions (``galleries/images/versions``)
PUT bodies, and vmforge's own platform image registration body. (vmforge serves no Compute PATCH.)

The models follow the Compute API of the api-versions ``azure-mgmt-compute`` 39 sends (2026-04-01 for images,
2026-03-03 for galleries) as that SDK's generated models describe it (the shared spec copy holds no Compute
swagger); one model family covers every Compute api-version vmforge serves (the older ones differ only in
fields vmforge does not interpret). Models are named after their definitions. Not modelled, and so ignored like
any unknown member: an image's ``extendedLocation`` (vmforge has no edge zones), a version's
``targetExtendedLocations``, ``storageAccountStrategy`` and ``imageMetadataProfiles``. ARM's tag limits (50
tags, names up to 512 characters, values up to 256) apply as for templates (``wire.limits``).

They share the template models' base (``WireModel``: strict JSON types), walk and error details, so a
malformed body gets one ``ValidationFailed`` with every violation, each detail's target a JSON path such as
``properties.storageProfile.osDisk.osType`` and its code one of ``wire.errors``' codes.

Unknown properties: the Compute resource provider, unlike Image Builder from 2024-02-01, ignores members it
does not know and matches names and enum values case-insensitively. These bodies are therefore validated
*leniently* (as template api-versions before 2024-02-01 are): unknown properties are dropped silently (never
stored, never echoed, as Azure does not echo them), names and enum values are written in their canonical case,
and read-only properties a client sends back (a GET body) are dropped. Types, enums, required properties and
ranges are checked as strictly as for templates.

Some sub-objects that vmforge stores but does not interpret (encryption settings, security and sharing
details) are typed as plain JSON objects: they are kept as sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator

from vmforge.service.ids import location_key
from vmforge.wire.base import (
    Ctx,
    NonEmptyStr,
    NonNegativeInt32,
    PositiveInt32,
    WireModel,
    given,
    require,
)
from vmforge.wire.errors import INVALID, PATTERN, Path
from vmforge.wire.limits import limit_errors
from vmforge.wire.walk import validate_object

OperatingSystemTypes = Literal["Windows", "Linux"]
OperatingSystemStateTypes = Literal["Generalized", "Specialized"]
HyperVGeneration = Literal["V1", "V2"]
CachingTypes = Literal["None", "ReadOnly", "ReadWrite"]
# A managed disk's storage type (ImageDisk.storageAccountType).
StorageAccountTypes = Literal["Standard_LRS", "Premium_LRS", "StandardSSD_LRS", "UltraSSD_LRS", "Premium_ZRS",
                              "StandardSSD_ZRS", "PremiumV2_LRS"]
# A gallery replica's storage type (publishingProfile / TargetRegion storageAccountType).
StorageAccountType = Literal["Standard_LRS", "Standard_ZRS", "Premium_LRS", "PremiumV2_LRS"]
Architecture = Literal["x64", "Arm64"]
ReplicationMode = Literal["Full", "Shallow"]
GallerySharingPermissionTypes = Literal["Private", "Groups", "Community"]

OS_TYPES: tuple[str, ...] = get_args(OperatingSystemTypes)
OS_STATES: tuple[str, ...] = get_args(OperatingSystemStateTypes)
HYPERV_GENERATIONS: tuple[str, ...] = get_args(HyperVGeneration)

# Objects vmforge keeps as sent without interpreting them are bounded in depth (the API's body reader caps the
# whole body at 64 levels; a direct caller of these functions is held to the same kind of bound here).
MAX_OPAQUE_DEPTH = 32


def _bounded(value: Any) -> Any:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_OPAQUE_DEPTH:
            raise ValueError(f"it is nested deeper than {MAX_OPAQUE_DEPTH} levels")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return value


# A JSON object stored as sent (encryption, security and sharing details vmforge does not interpret).
JsonObject = Annotated[dict[str, Any], BeforeValidator(_bounded)]

# Read-only members of every ARM resource, ignored when a client sends a GET body back.
_RESOURCE_READ_ONLY = frozenset({"id", "name", "type", "systemData", "etag", "managedBy"})


def check_date_time(data: dict[str, Any], name: str, path: Path, ctx: Ctx) -> None:
    """A swagger ``date-time`` (ISO 8601 / RFC 3339, e.g. ``2027-01-01T00:00:00Z``)."""
    value = data.get(name)
    if not isinstance(value, str):
        return
    try:
        datetime.fromisoformat(value)
    except ValueError:
        ctx.add(PATTERN, f"The value of '{name}' must be an ISO 8601 date-time such as '2027-01-01T00:00:00Z'.",
                (*path, name))


def check_unique_luns(data: dict[str, Any], name: str, path: Path, ctx: Ctx) -> None:
    """Each data disk of ``data[name]`` has its own ``lun``."""
    disks = data.get(name)
    if not isinstance(disks, list):
        return
    seen: dict[int, int] = {}
    for i, disk in enumerate(disks):
        lun = disk.get("lun") if isinstance(disk, dict) else None
        if not isinstance(lun, int) or isinstance(lun, bool):
            continue
        if lun in seen:
            ctx.add(INVALID, f"The lun {lun} is already used by {name}[{seen[lun]}]; each data disk needs its own "
                             "lun.", (*path, name, i, "lun"))
        else:
            seen[lun] = i


# ------------------------------------------------------------------------------------------- shared
class SubResource(WireModel):
    id: str | None = None


class DiskEncryptionSetParameters(WireModel):
    id: str | None = None


# ------------------------------------------------------------------------------------------- images
class ImageDisk(WireModel):
    """A disk of a managed image: its source (exactly one of snapshot, managedDisk, blobUri) and settings."""

    snapshot: SubResource | None = None
    managedDisk: SubResource | None = None
    blobUri: str | None = None
    caching: CachingTypes | None = None
    diskSizeGB: NonNegativeInt32 | None = None
    storageAccountType: StorageAccountTypes | None = None
    diskEncryptionSet: DiskEncryptionSetParameters | None = None

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        super().rules(data, path, ctx)
        sources = [name for name in ("blobUri", "managedDisk", "snapshot")
                   if (given(data, name) if name == "blobUri"
                       else isinstance(data.get(name), dict) and given(data[name], "id"))]
        if len(sources) != 1:
            which = "neither was given" if not sources else f"{' and '.join(sources)} were given"
            ctx.add(INVALID, "Give exactly one source for the disk: blobUri, managedDisk.id or snapshot.id "
                             f"(in vmforge, a managed image or gallery image version id); {which}.", path)


class ImageOSDisk(ImageDisk):
    osType: OperatingSystemTypes
    osState: OperatingSystemStateTypes


class ImageDataDisk(ImageDisk):
    lun: NonNegativeInt32


class ImageStorageProfile(WireModel):
    osDisk: ImageOSDisk
    dataDisks: list[ImageDataDisk] | None = None
    zoneResilient: bool | None = None

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        super().rules(data, path, ctx)
        check_unique_luns(data, "dataDisks", path, ctx)


class ImageProperties(WireModel):
    read_only = frozenset({"provisioningState"})

    sourceVirtualMachine: SubResource | None = None
    storageProfile: ImageStorageProfile | None = None
    hyperVGeneration: HyperVGeneration | None = None

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        super().rules(data, path, ctx)
        if not given(data, "sourceVirtualMachine"):
            require(data, ("storageProfile",), path, ctx, " (or sourceVirtualMachine)")


class Image(WireModel):
    """The PUT body of a managed image."""

    read_only = _RESOURCE_READ_ONLY

    location: NonEmptyStr
    tags: dict[str, str] | None = None
    properties: ImageProperties


# ------------------------------------------------------------------------------------------- galleries
class SharingProfile(WireModel):
    read_only = frozenset({"groups"})

    permissions: GallerySharingPermissionTypes | None = None
    communityGalleryInfo: JsonObject | None = None


class SoftDeletePolicy(WireModel):
    isSoftDeleteEnabled: bool | None = None


class GalleryProperties(WireModel):
    # ``identifier`` holds only the read-only uniqueName.
    read_only = frozenset({"provisioningState", "identifier", "sharingStatus"})

    description: str | None = None
    sharingProfile: SharingProfile | None = None
    softDeletePolicy: SoftDeletePolicy | None = None


class Gallery(WireModel):
    """The PUT body of a gallery."""

    read_only = _RESOURCE_READ_ONLY

    location: NonEmptyStr
    tags: dict[str, str] | None = None
    identity: JsonObject | None = None
    properties: GalleryProperties | None = None


# ------------------------------------------------------------------------------------------- image definitions
class GalleryImageIdentifier(WireModel):
    publisher: NonEmptyStr
    offer: NonEmptyStr
    sku: NonEmptyStr


class ResourceRange(WireModel):
    min: NonNegativeInt32 | None = None
    max: NonNegativeInt32 | None = None

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        super().rules(data, path, ctx)
        lo, hi = data.get("min"), data.get("max")
        if type(lo) is int and type(hi) is int and lo > hi:
            ctx.add(INVALID, f"The minimum {lo} is greater than the maximum {hi}.", (*path, "min"))


class RecommendedMachineConfiguration(WireModel):
    vCPUs: ResourceRange | None = None
    memory: ResourceRange | None = None


class Disallowed(WireModel):
    diskTypes: list[str] | None = None


class ImagePurchasePlan(WireModel):
    name: str | None = None
    publisher: str | None = None
    product: str | None = None


class GalleryImageFeature(WireModel):
    name: str | None = None
    value: str | None = None
    startsAtVersion: str | None = None


class GalleryImageProperties(WireModel):
    read_only = frozenset({"provisioningState"})

    description: str | None = None
    eula: str | None = None
    privacyStatementUri: str | None = None
    releaseNoteUri: str | None = None
    osType: OperatingSystemTypes
    osState: OperatingSystemStateTypes
    hyperVGeneration: HyperVGeneration | None = None
    endOfLifeDate: str | None = None
    identifier: GalleryImageIdentifier
    recommended: RecommendedMachineConfiguration | None = None
    disallowed: Disallowed | None = None
    purchasePlan: ImagePurchasePlan | None = None
    features: list[GalleryImageFeature] | None = None
    architecture: Architecture | None = None
    allowUpdateImage: bool | None = None

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        super().rules(data, path, ctx)
        check_date_time(data, "endOfLifeDate", path, ctx)


class GalleryImage(WireModel):
    """The PUT body of a gallery image definition."""

    read_only = _RESOURCE_READ_ONLY

    location: NonEmptyStr
    tags: dict[str, str] | None = None
    properties: GalleryImageProperties


# ------------------------------------------------------------------------------------------- image versions
class TargetRegion(WireModel):
    name: NonEmptyStr
    regionalReplicaCount: PositiveInt32 | None = None
    storageAccountType: StorageAccountType | None = None
    encryption: JsonObject | None = None
    excludeFromLatest: bool | None = None


class GalleryImageVersionPublishingProfile(WireModel):
    read_only = frozenset({"publishedDate"})

    targetRegions: list[TargetRegion] | None = None
    replicaCount: PositiveInt32 | None = None
    excludeFromLatest: bool | None = None
    endOfLifeDate: str | None = None
    storageAccountType: StorageAccountType | None = None
    replicationMode: ReplicationMode | None = None

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        super().rules(data, path, ctx)
        check_date_time(data, "endOfLifeDate", path, ctx)
        regions = data.get("targetRegions")
        names = [r.get("name") for r in regions if isinstance(r, dict)] if isinstance(regions, list) else []
        keys = [location_key(n) for n in names if isinstance(n, str)]
        if len(set(keys)) != len(keys):
            ctx.add(INVALID, "A region is listed more than once in targetRegions.", (*path, "targetRegions"))


class GalleryArtifactVersionFullSource(WireModel):
    id: str | None = None
    communityGalleryImageId: str | None = None
    virtualMachineId: str | None = None


class GalleryDiskImageSource(WireModel):
    id: str | None = None
    uri: str | None = None
    storageAccountId: str | None = None


class GalleryDiskImage(WireModel):
    read_only = frozenset({"sizeInGB"})

    hostCaching: CachingTypes | None = None
    source: GalleryDiskImageSource | None = None


class GalleryOSDiskImage(GalleryDiskImage):
    pass


class GalleryDataDiskImage(GalleryDiskImage):
    lun: NonNegativeInt32


class GalleryImageVersionStorageProfile(WireModel):
    source: GalleryArtifactVersionFullSource | None = None
    osDiskImage: GalleryOSDiskImage | None = None
    dataDiskImages: list[GalleryDataDiskImage] | None = None

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        super().rules(data, path, ctx)
        check_unique_luns(data, "dataDiskImages", path, ctx)


class GalleryImageVersionSafetyProfile(WireModel):
    read_only = frozenset({"reportedForPolicyViolation", "policyViolations"})

    allowDeletionOfReplicatedLocations: bool | None = None
    blockDeletionBeforeEndOfLife: bool | None = None


class GalleryImageVersionProperties(WireModel):
    read_only = frozenset({"provisioningState", "replicationStatus", "validationsProfile"})

    publishingProfile: GalleryImageVersionPublishingProfile | None = None
    storageProfile: GalleryImageVersionStorageProfile
    safetyProfile: GalleryImageVersionSafetyProfile | None = None
    securityProfile: JsonObject | None = None
    restore: bool | None = None


class GalleryImageVersion(WireModel):
    """The PUT body of a gallery image version."""

    read_only = _RESOURCE_READ_ONLY

    location: NonEmptyStr
    tags: dict[str, str] | None = None
    properties: GalleryImageVersionProperties

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        super().rules(data, path, ctx)
        location = data.get("location")
        props = data.get("properties")
        pub = props.get("publishingProfile") if isinstance(props, dict) else None
        regions = pub.get("targetRegions") if isinstance(pub, dict) else None
        if not isinstance(location, str) or not location or not isinstance(regions, list) or not regions:
            return
        names = {location_key(r["name"]) for r in regions if isinstance(r, dict) and isinstance(r.get("name"), str)}
        if location_key(location) not in names:
            ctx.add(INVALID, f"targetRegions must include the version's own location '{location}'.",
                    ("properties", "publishingProfile", "targetRegions"))


# ------------------------------------------------------------------------------------------- platform images
class PlatformImageRegistrationProperties(WireModel):
    blobUri: NonEmptyStr
    sha256: str | None = None
    osType: OperatingSystemTypes | None = None
    hyperVGeneration: HyperVGeneration | None = None


class PlatformImageRegistration(WireModel):
    """vmforge's own body (Azure has no such PUT): register a disk under a platform image URN."""

    properties: PlatformImageRegistrationProperties


# ------------------------------------------------------------------------------------------- references
def image_references(data: dict[str, Any]) -> list[tuple[str, str]]:
    """The resource ids a validated (canonical) image body reads, each with its JSON path: the VM to capture
    and each disk's managedDisk / snapshot. Read from the canonical form, so that no spelling of a name the
    service accepts ('StorageProfile', 'MANAGEDDISK') escapes the caller's permission check."""
    props = data.get("properties") or {}
    out: list[tuple[str, str]] = []
    if (props.get("sourceVirtualMachine") or {}).get("id"):
        out.append(("properties.sourceVirtualMachine.id", props["sourceVirtualMachine"]["id"]))
    storage = props.get("storageProfile") or {}
    disks = [("properties.storageProfile.osDisk", storage.get("osDisk") or {})]
    disks += [(f"properties.storageProfile.dataDisks[{i}]", d) for i, d in enumerate(storage.get("dataDisks") or [])]
    for path, disk in disks:
        for key in ("managedDisk", "snapshot"):
            rid = (disk.get(key) or {}).get("id")
            if rid:
                out.append((f"{path}.{key}.id", rid))
    return out


def version_references(data: dict[str, Any]) -> list[tuple[str, str]]:
    """The resource ids a validated (canonical) gallery image version body reads, each with its JSON path."""
    storage = (data.get("properties") or {}).get("storageProfile") or {}
    path = "properties.storageProfile"
    found = [(f"{path}.source.id", storage.get("source")),
             (f"{path}.osDiskImage.source.id", (storage.get("osDiskImage") or {}).get("source"))]
    found += [(f"{path}.dataDiskImages[{i}].source.id", d.get("source"))
              for i, d in enumerate(storage.get("dataDiskImages") or [])]
    return [(target, src["id"]) for target, src in found if src and src.get("id")]


# ------------------------------------------------------------------------------------------- entry points
def _validate(model: type[WireModel], body: Any) -> dict[str, Any]:
    return validate_object(model, body, Ctx("compute", strict=False), limit_errors(body))


def validate_image(body: Any) -> dict[str, Any]:
    """A managed image PUT body in canonical form (``location``, ``tags``?, ``properties``), or ValidationFailed."""
    return _validate(Image, body)


def validate_gallery(body: Any) -> dict[str, Any]:
    return _validate(Gallery, body)


def validate_gallery_image(body: Any) -> dict[str, Any]:
    return _validate(GalleryImage, body)


def validate_gallery_image_version(body: Any) -> dict[str, Any]:
    return _validate(GalleryImageVersion, body)


def validate_platform_image(body: Any) -> dict[str, Any]:
    return _validate(PlatformImageRegistration, body)
