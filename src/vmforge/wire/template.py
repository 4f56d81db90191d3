"""The image template resource (PUT body), its PATCH body, and the objects only it uses."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

# The kind modules register their variants on import; the unions below are built from the registry.
from vmforge.wire import customizers, distributors, sources, validators  # noqa: F401
from vmforge.wire.base import (
    Ctx,
    NonEmptyStr,
    NonNegativeInt32,
    OnOff,
    WireModel,
    check_sha256,
    given,
    union,
)
from vmforge.wire.errors import INVALID, MISSING, RANGE, Path
from vmforge.wire.versions import Since

Source = union("source")
Customizer = union("customizer")
Validator = union("validator")
Distributor = union("distributor")

# A user-assigned identity's resource id; ARM matches it case-insensitively (the CLI writes "resourcegroups").
IDENTITY_ID = re.compile(
    r"^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.managedidentity/userassignedidentities/[^/]+$",
    re.IGNORECASE,
)
RESOURCE_GROUP_ID = re.compile(r"^/subscriptions/[^/]+/resourcegroups/[^/]+$", re.IGNORECASE)
OnBuildError = Literal["cleanup", "abort"]


# ------------------------------------------------------------------------------------------- identity
class UserAssignedIdentity(WireModel):
    """A value of ``userAssignedIdentities``: ``{}`` in requests; the ids are the service's (read-only)."""

    read_only = frozenset({"principalId", "clientId"})


class ImageTemplateIdentity(WireModel):
    type: Literal["UserAssigned", "None"]
    userAssignedIdentities: dict[str, UserAssignedIdentity] | None = None

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        super().rules(data, path, ctx)
        ids = data.get("userAssignedIdentities")
        if not isinstance(ids, dict):
            ids = {}
        if data.get("type") == "UserAssigned" and len(ids) != 1:
            many = "none was given" if not ids else f"{len(ids)} were given"
            ctx.add(INVALID, f"An image template has exactly one user-assigned identity; {many}.",
                    (*path, "userAssignedIdentities"))
        if data.get("type") == "None" and ids:
            ctx.add(INVALID, "userAssignedIdentities cannot be given when the identity type is 'None'.",
                    (*path, "userAssignedIdentities"))
        for rid in ids:
            if isinstance(rid, str) and not IDENTITY_ID.match(rid):
                ctx.add(INVALID, "The key must be the resource id of a user-assigned identity: /subscriptions/{id}/"
                                 "resourceGroups/{group}/providers/Microsoft.ManagedIdentity/"
                                 "userAssignedIdentities/{name}.", (*path, "userAssignedIdentities", rid))


# ------------------------------------------------------------------------------------------- vm profile
class VirtualNetworkConfig(WireModel):
    subnetId: str | None = None
    containerInstanceSubnetId: Annotated[str | None, Since("2024-02-01")] = None
    proxyVmSize: str | None = None

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        super().rules(data, path, ctx)
        if given(data, "containerInstanceSubnetId"):
            if not given(data, "subnetId"):
                ctx.add(INVALID, "containerInstanceSubnetId can be specified only together with subnetId.",
                        (*path, "containerInstanceSubnetId"))
            if given(data, "proxyVmSize"):
                ctx.add(INVALID, "proxyVmSize must not be specified with containerInstanceSubnetId: no proxy VM is "
                                 "deployed for an isolated build.", (*path, "proxyVmSize"))


class ImageTemplateVmProfile(WireModel):
    vmSize: str | None = None
    osDiskSizeGB: NonNegativeInt32 | None = None
    userAssignedIdentities: list[str] | None = None
    vnetConfig: VirtualNetworkConfig | None = None


# ------------------------------------------------------------------------------------------- properties
class ImageTemplatePropertiesValidate(WireModel):
    continueDistributeOnFailure: bool | None = None
    sourceValidationOnly: bool | None = None
    inVMValidations: list[Validator] | None = None


class ImageTemplatePropertiesOptimizeVmBoot(WireModel):
    state: OnOff | None = None


class ImageTemplatePropertiesOptimizeWorkload(WireModel):
    state: OnOff | None = None
    scriptUri: str | None = None
    sha256Checksum: str | None = None

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        super().rules(data, path, ctx)
        check_sha256(data, path, ctx)


class ImageTemplatePropertiesOptimize(WireModel):
    vmBoot: ImageTemplatePropertiesOptimizeVmBoot | None = None
    workload: Annotated[ImageTemplatePropertiesOptimizeWorkload | None, Since("2025-10-01")] = None


class ImageTemplatePropertiesErrorHandling(WireModel):
    onCustomizerError: OnBuildError | None = None
    onValidationError: OnBuildError | None = None


class ImageTemplateAutoRun(WireModel):
    state: OnOff | None = None


class DataDisk(WireModel):
    """One of ``additionalDataDisks``: a blank disk of ``sizeGB`` GiB for the build VM (vmforge.runner.datadisks).

    The swagger allows 0 and leaves the size optional; a disk needs a size, so it is required and must be 1 to
    ``MAX_SIZE_GB`` (16383 GiB: each data disk becomes one fixed-VHD file, and ext4 caps a file at 16 TiB; the disk
    files are sparse, so only what the customizers write costs space)."""

    MAX_SIZE_GB: ClassVar[int] = 16383
    sizeGB: NonNegativeInt32 | None = None

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        super().rules(data, path, ctx)
        size = data.get("sizeGB")
        if size is None:
            ctx.add(MISSING, "The property 'sizeGB' is required: the size of the data disk in GiB.", (*path, "sizeGB"))
        elif isinstance(size, int) and not isinstance(size, bool) and 0 <= size <= 2**31 - 1 and \
                not 1 <= size <= cls.MAX_SIZE_GB:
            ctx.add(RANGE, f"The data disk size {size} GB is out of range: sizeGB must be between 1 and "
                           f"{cls.MAX_SIZE_GB}.", (*path, "sizeGB"))


# The build VM's data disks: at most this many (virtio disks on the VM's PCI bus, one artifact file each).
MAX_DATA_DISKS = 16


def check_distribute(data: dict[str, Any], path: Path, ctx: Ctx) -> None:
    """Rules over the whole ``distribute`` list: at least one target, run output names unique."""
    targets = data.get("distribute")
    if not isinstance(targets, list):
        return
    if not targets:
        ctx.add(INVALID, "At least one distribution target is required.", (*path, "distribute"))
    seen: dict[str, int] = {}
    for i, target in enumerate(targets):
        name = target.get("runOutputName") if isinstance(target, dict) else None
        if not isinstance(name, str):
            continue
        # Run outputs are child resources: their names compare case-insensitively.
        if name.casefold() in seen:
            ctx.add(INVALID, f"The runOutputName '{name[:64]}' is already used by distribute[{seen[name.casefold()]}]; "
                             "run output names must be unique.", (*path, "distribute", i, "runOutputName"))
        else:
            seen[name.casefold()] = i


class ImageTemplateProperties(WireModel):
    read_only = frozenset({"provisioningState", "provisioningError", "lastRunStatus", "exactStagingResourceGroup"})

    source: Source
    customize: list[Customizer] | None = None
    optimize: ImageTemplatePropertiesOptimize | None = None
    validate_: Annotated[ImageTemplatePropertiesValidate | None, Field(alias="validate")] = None
    distribute: list[Distributor]
    errorHandling: Annotated[ImageTemplatePropertiesErrorHandling | None, Since("2023-07-01")] = None
    # Not filled in when absent: no example response shows it, so the service does not echo a default
    # (0 means "the default, 4 hours").
    buildTimeoutInMinutes: Annotated[int, Field(ge=0, le=960)] | None = None
    vmProfile: ImageTemplateVmProfile | None = None
    additionalDataDisks: Annotated[list[DataDisk] | None, Since("2025-10-01")] = None
    stagingResourceGroup: str | None = None
    autoRun: Annotated[ImageTemplateAutoRun | None, Since("2024-02-01")] = None
    managedResourceTags: Annotated[dict[str, str] | None, Since("2024-02-01")] = None

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        super().rules(data, path, ctx)
        check_distribute(data, path, ctx)
        disks = data.get("additionalDataDisks")
        if isinstance(disks, list) and len(disks) > MAX_DATA_DISKS:
            ctx.add(RANGE, f"{len(disks)} data disks were given; at most {MAX_DATA_DISKS} are supported.",
                    (*path, "additionalDataDisks"))
        staging = data.get("stagingResourceGroup")
        if isinstance(staging, str) and staging and not RESOURCE_GROUP_ID.match(staging):
            ctx.add(INVALID, "The stagingResourceGroup must be a resource group id: "
                             "/subscriptions/{id}/resourceGroups/{name}.", (*path, "stagingResourceGroup"))


# ------------------------------------------------------------------------------------------- resources
class ImageTemplate(WireModel):
    """The PUT body. ``id``, ``name``, ``type`` and ``systemData`` of a GET body sent back are ignored."""

    read_only = frozenset({"id", "name", "type", "systemData"})

    location: NonEmptyStr
    tags: dict[str, str] | None = None
    identity: ImageTemplateIdentity
    properties: ImageTemplateProperties


class ImageTemplateUpdateParametersProperties(WireModel):
    distribute: Annotated[list[Distributor] | None, Since("2023-07-01")] = None
    vmProfile: Annotated[ImageTemplateVmProfile | None, Since("2024-02-01")] = None

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        super().rules(data, path, ctx)
        check_distribute(data, path, ctx)


class ImageTemplateUpdateParameters(WireModel):
    """The PATCH body."""

    identity: ImageTemplateIdentity | None = None
    tags: dict[str, str] | None = None
    properties: Annotated[ImageTemplateUpdateParametersProperties | None, Since("2023-07-01")] = None
