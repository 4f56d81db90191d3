"""Sources: ``properties.source``, discriminated by ``type``."""

from __future__ import annotations

from typing import Any, Literal

from vmforge.wire.base import Ctx, NonEmptyStr, WireModel, kind, require
from vmforge.wire.errors import Path


class PlatformImagePurchasePlan(WireModel):
    planName: NonEmptyStr
    planProduct: NonEmptyStr
    planPublisher: NonEmptyStr


@kind("source")
class ImageTemplatePlatformImageSource(WireModel):
    """A marketplace image: publisher/offer/sku/version."""

    read_only = frozenset({"exactVersion"})

    type: Literal["PlatformImage"]
    publisher: str | None = None
    offer: str | None = None
    sku: str | None = None
    version: str | None = None
    planInfo: PlatformImagePurchasePlan | None = None

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        super().rules(data, path, ctx)
        # The swagger marks none of the four as required, but the service cannot resolve an image without all
        # of them and refuses the template: require them here too ("latest" is a valid version).
        require(data, ("publisher", "offer", "sku", "version"), path, ctx, " for a PlatformImage source")


@kind("source")
class ImageTemplateManagedImageSource(WireModel):
    type: Literal["ManagedImage"]
    imageId: NonEmptyStr


@kind("source")
class ImageTemplateSharedImageVersionSource(WireModel):
    read_only = frozenset({"exactVersion"})

    type: Literal["SharedImageVersion"]
    imageVersionId: NonEmptyStr
