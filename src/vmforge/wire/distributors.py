"""Distributors: the entries of ``properties.distribute[]``, discriminated by ``type``; and the gallery
version numbering (``versioning``), discriminated by ``scheme``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from vmforge.wire.base import INT32_MAX, Ctx, NonEmptyStr, PositiveInt32, WireModel, given, kind, union
from vmforge.wire.errors import INVALID, Path
from vmforge.wire.versions import Since

RUN_OUTPUT_NAME = r"^[A-Za-z0-9-_.]{1,64}$"

StorageAccountType = Literal["Standard_LRS", "Standard_ZRS", "Premium_LRS"]


class ImageTemplateDistributor(WireModel):
    """The fields every distributor has."""

    runOutputName: Annotated[str, Field(pattern=RUN_OUTPUT_NAME)]
    artifactTags: dict[str, str] | None = None


@kind("distributor")
class ImageTemplateManagedImageDistributor(ImageTemplateDistributor):
    type: Literal["ManagedImage"]
    imageId: NonEmptyStr
    location: NonEmptyStr


@kind("distributor")
class ImageTemplateVhdDistributor(ImageTemplateDistributor):
    type: Literal["VHD"]
    uri: str | None = None


class TargetRegion(WireModel):
    name: NonEmptyStr
    replicaCount: PositiveInt32 | None = None
    storageAccountType: StorageAccountType | None = None


@kind("versioner", "scheme")
class DistributeVersionerLatest(WireModel):
    scheme: Literal["Latest"]
    major: Annotated[int, Field(ge=-1, le=INT32_MAX)] | None = None


@kind("versioner", "scheme")
class DistributeVersionerSource(WireModel):
    scheme: Literal["Source"]


DistributeVersioner = union("versioner", "scheme")


@kind("distributor")
class ImageTemplateSharedImageDistributor(ImageTemplateDistributor):
    type: Literal["SharedImage"]
    galleryImageId: NonEmptyStr
    replicationRegions: list[str] | None = None
    excludeFromLatest: bool | None = None
    storageAccountType: StorageAccountType | None = None
    targetRegions: list[TargetRegion] | None = None
    versioning: DistributeVersioner | None = None
    replicationMode: Annotated[Literal["Full", "Shallow"] | None, Since("2025-10-01")] = None

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        super().rules(data, path, ctx)
        # targetRegions exists in every supported version (2022-07-01 included): exactly one of the two lists.
        regions, targets = given(data, "replicationRegions"), given(data, "targetRegions")
        if regions == targets:
            which = "both were given" if regions else "neither was given"
            ctx.add(INVALID, f"Exactly one of 'replicationRegions' or 'targetRegions' must be specified; {which}.",
                    path)
        if given(data, "storageAccountType") and not regions:
            ctx.add(INVALID, "storageAccountType can be specified only with replicationRegions; with targetRegions, "
                             "give each region its own storageAccountType.", (*path, "storageAccountType"))

