"""Microsoft.Compute: managed images, galleries, gallery image definitions and versions, platform images, and
the status of their asynchronous operations — the subset that image templates point at, served so that
``azure-mgmt-compute`` and the Azure CLI work unchanged. Routes only parse, call ``vmforge.artifacts`` and
render; the artifact services are built (and the blob store swept) by this router's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from vmforge.api.body import read_json
from vmforge.api.deps import PrincipalDep, authenticate, require
from vmforge.auth import Principal
from vmforge.identity.roles import compute as _act, resource_action
from vmforge.artifacts import Artifacts
from vmforge.artifacts import render as R
from vmforge.artifacts.platform import Urn
from vmforge.fetch import policy_from_settings
from vmforge.errors import ArmError, InvalidApiVersion, MissingApiVersion, NotFound
from vmforge.service.ids import iso, location_key
from vmforge.store.models import Operation
from vmforge.wire.compute import (
    image_references,
    validate_gallery_image_version,
    validate_image,
    validate_platform_image,
    version_references,
)

COMPUTE_VERSIONS = ("2026-04-01", "2025-11-01", "2025-04-01", "2024-11-01", "2024-07-01", "2024-03-01",
                    "2023-09-01", "2023-07-01", "2023-03-01", "2022-11-01", "2022-08-01")
GALLERY_VERSIONS = ("2026-03-03", "2025-03-03", "2024-03-03", "2023-07-03", "2022-08-03", "2022-03-03",
                    "2022-01-03", "2021-10-01", "2021-07-01")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings, services = app.state.settings, app.state.services
    roots = [Path(p) for p in getattr(settings, "import_roots", []) or []]
    arts = getattr(services, "artifacts", None) or Artifacts(services.db, settings.data_dir, roots or None)
    arts.policy.fetch.allow_cidrs = policy_from_settings(settings).allow_cidrs  # http(s) blobUris: vmforge.fetch
    await run_in_threadpool(arts.sweep)
    app.state.artifacts = arts
    yield


router = APIRouter(lifespan=_lifespan)

SUB = "/subscriptions/{subscriptionId}"
RGP = SUB + "/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute"
IMG = RGP + "/images/{imageName}"
GAL = RGP + "/galleries/{galleryName}"
DEF = GAL + "/images/{galleryImageName}"
VER = DEF + "/versions/{galleryImageVersionName}"
LOC = SUB + "/providers/Microsoft.Compute/locations/{location}"
PUBS = LOC + "/publishers"
SKU = PUBS + "/{publisherName}/artifacttypes/{artifactType}/offers/{offer}/skus/{skus}"


# The RBAC action each route needs (vmforge.api.deps.require).
ImageRead = Annotated[Principal, require(_act("images", "read"))]
ImageWrite = Annotated[Principal, require(_act("images", "write"))]
ImageDelete = Annotated[Principal, require(_act("images", "delete"))]
GalleryRead = Annotated[Principal, require(_act("galleries", "read"))]
GalleryWrite = Annotated[Principal, require(_act("galleries", "write"))]
GalleryDelete = Annotated[Principal, require(_act("galleries", "delete"))]
DefinitionRead = Annotated[Principal, require(_act("galleries/images", "read"))]
DefinitionWrite = Annotated[Principal, require(_act("galleries/images", "write"))]
DefinitionDelete = Annotated[Principal, require(_act("galleries/images", "delete"))]
VersionRead = Annotated[Principal, require(_act("galleries/images/versions", "read"))]
VersionWrite = Annotated[Principal, require(_act("galleries/images/versions", "write"))]
VersionDelete = Annotated[Principal, require(_act("galleries/images/versions", "delete"))]
ComputeOperationRead = Annotated[Principal, require(_act("locations/operations", "read"), within=True)]
# Platform images are the publisher's catalog, one for every subscription: reading it needs only a token, and
# registering into it (or removing from it) needs the action at the root scope '/' (the server's admins).
PLATFORM_ACTION = _act("locations/publishers/artifacttypes/offers/skus/versions", "write")
PlatformRead = PrincipalDep


async def _platform_publisher(request: Request) -> Principal:
    principal = authenticate(request)
    request.app.state.identity.authorizer.check(principal.object_id, principal.client, PLATFORM_ACTION, "/")
    return principal


PlatformWrite = Annotated[Principal, Depends(_platform_publisher)]


# The Compute APIs' own references (an image's disks or snapshots, a gallery version's sources) are read by the
# caller: it must hold the read action on each (403 LinkedAuthorizationFailed otherwise), in any subscription.
# They are taken from the validated body, exactly as the service will read it.
def _check_refs(request: Request, principal: Principal, body: Any,
                references: Callable[[Any], list[tuple[str, str]]], action: str) -> None:
    try:
        refs = references(body)
    except ArmError:
        return  # the service refuses this same body (after checking the group): nothing is read or stored
    authorizer = request.app.state.identity.authorizer
    for target, ref in refs:
        if not ref.startswith("/"):
            continue
        needed = resource_action(ref, "read")
        if needed is None:
            continue
        if not authorizer.allowed(principal.object_id, needed, ref):
            raise ArmError(
                f"The client '{principal.client}' with object id '{principal.object_id}' has permission to perform "
                f"action '{action}' on scope '{request.url.path}'; however, it does not have permission to perform "
                f"action(s) '{needed}' on the linked scope(s) '{ref}' (respectively) or the linked scope(s) are "
                "invalid.", code="LinkedAuthorizationFailed", status=403, target=target)


def _image_refs(body: Any) -> list[tuple[str, str]]:
    return image_references(validate_image(body))


def _version_refs(body: Any) -> list[tuple[str, str]]:
    return version_references(validate_gallery_image_version(body))


def _version_dep(allowed: tuple[str, ...]):  # noqa: ANN202
    async def check(request: Request) -> str:
        v = request.query_params.get("api-version")
        if not v:
            raise MissingApiVersion("The api-version query parameter (?api-version=) is required for all requests.")
        if v not in allowed:
            raise InvalidApiVersion(f"The api-version '{v}' is invalid. The supported versions are "
                                    f"'{','.join(allowed)}'.")
        return v
    return Depends(check)


ComputeApi = Annotated[str, _version_dep(COMPUTE_VERSIONS)]
GalleryApi = Annotated[str, _version_dep(GALLERY_VERSIONS)]
AnyApi = Annotated[str, _version_dep(COMPUTE_VERSIONS + GALLERY_VERSIONS)]


async def get_artifacts(request: Request) -> Artifacts:
    return request.app.state.artifacts


ArtifactsDep = Annotated[Artifacts, Depends(get_artifacts)]


def lro_headers(request: Request, op: Operation, api_version: str, *, location: bool = False) -> dict[str, str]:
    """Azure-AsyncOperation (and Location) pointing at this server's Microsoft.Compute operation routes."""
    settings = request.app.state.settings
    base = f"{settings.base_url}/subscriptions/{op.subscription_key}/providers/Microsoft.Compute/locations/{op.location}"
    h = {"Azure-AsyncOperation": f"{base}/operations/{op.id}?api-version={api_version}",
         "Retry-After": str(settings.retry_after)}
    if location:
        h["Location"] = f"{base}/operationResults/{op.id}?api-version={api_version}"
    return h


async def _body(request: Request) -> Any:
    return await read_json(request, request.app.state.settings.max_body_bytes)


def _put(request: Request, body: dict, created: bool, op: Operation, v: str) -> JSONResponse:
    return JSONResponse(body, status_code=201 if created else 200, headers=lro_headers(request, op, v))


def _deleted(request: Request, op: Operation | None, v: str) -> Response:
    if op is None:
        return Response(status_code=204)
    return Response(status_code=202, headers=lro_headers(request, op, v, location=True))


async def _sizes(arts: Artifacts, digests: list[str]) -> dict[str, int]:
    return await run_in_threadpool(arts.virtual_sizes, digests)


# ---------------------------------------------------------------------------------------------- images
@router.put(IMG)
async def put_image(request: Request, subscriptionId: str, resourceGroupName: str, imageName: str,
                    _p: ImageWrite, v: ComputeApi, arts: ArtifactsDep) -> JSONResponse:
    body = await _body(request)
    _check_refs(request, _p, body, _image_refs, _act("images", "write"))
    row, created, op = await run_in_threadpool(arts.images.put, subscriptionId, resourceGroupName, imageName, body)
    sizes = await _sizes(arts, [row.blob_digest])
    return _put(request, R.image(row, sizes[row.blob_digest]), created, op, v)


@router.get(IMG)
async def get_image(subscriptionId: str, resourceGroupName: str, imageName: str, _p: ImageRead, v: ComputeApi,
                    arts: ArtifactsDep) -> JSONResponse:
    row = await run_in_threadpool(arts.images.get, subscriptionId, resourceGroupName, imageName)
    return JSONResponse(R.image(row, (await _sizes(arts, [row.blob_digest]))[row.blob_digest]))


@router.delete(IMG)
async def delete_image(request: Request, subscriptionId: str, resourceGroupName: str, imageName: str,
                       _p: ImageDelete, v: ComputeApi, arts: ArtifactsDep) -> Response:
    op = await run_in_threadpool(arts.images.delete, subscriptionId, resourceGroupName, imageName)
    return _deleted(request, op, v)


async def _image_list(arts: Artifacts, sub: str, group: str | None) -> JSONResponse:
    rows = await run_in_threadpool(arts.images.list, sub, group)
    sizes = await _sizes(arts, [r.blob_digest for r in rows])
    return JSONResponse({"value": [R.image(r, sizes[r.blob_digest]) for r in rows]})


@router.get(RGP + "/images")
async def list_images_rg(subscriptionId: str, resourceGroupName: str, _p: ImageRead, v: ComputeApi,
                         arts: ArtifactsDep) -> JSONResponse:
    return await _image_list(arts, subscriptionId, resourceGroupName)


@router.get(SUB + "/providers/Microsoft.Compute/images")
async def list_images(subscriptionId: str, _p: ImageRead, v: ComputeApi, arts: ArtifactsDep) -> JSONResponse:
    return await _image_list(arts, subscriptionId, None)


# ---------------------------------------------------------------------------------------------- galleries
@router.put(GAL)
async def put_gallery(request: Request, subscriptionId: str, resourceGroupName: str, galleryName: str,
                      _p: GalleryWrite, v: GalleryApi, arts: ArtifactsDep) -> JSONResponse:
    body = await _body(request)
    row, created, op = await run_in_threadpool(arts.galleries.put_gallery, subscriptionId, resourceGroupName,
                                               galleryName, body)
    return _put(request, R.gallery(row), created, op, v)


@router.get(GAL)
async def get_gallery(subscriptionId: str, resourceGroupName: str, galleryName: str, _p: GalleryRead,
                      v: GalleryApi, arts: ArtifactsDep) -> JSONResponse:
    row = await run_in_threadpool(arts.galleries.get_gallery, subscriptionId, resourceGroupName, galleryName)
    return JSONResponse(R.gallery(row))


@router.delete(GAL)
async def delete_gallery(request: Request, subscriptionId: str, resourceGroupName: str, galleryName: str,
                         _p: GalleryDelete, v: GalleryApi, arts: ArtifactsDep) -> Response:
    op = await run_in_threadpool(arts.galleries.delete_gallery, subscriptionId, resourceGroupName, galleryName)
    return _deleted(request, op, v)


@router.get(RGP + "/galleries")
async def list_galleries_rg(subscriptionId: str, resourceGroupName: str, _p: GalleryRead, v: GalleryApi,
                            arts: ArtifactsDep) -> JSONResponse:
    rows = await run_in_threadpool(arts.galleries.list_galleries, subscriptionId, resourceGroupName)
    return JSONResponse({"value": [R.gallery(r) for r in rows]})


@router.get(SUB + "/providers/Microsoft.Compute/galleries")
async def list_galleries(subscriptionId: str, _p: GalleryRead, v: GalleryApi, arts: ArtifactsDep) -> JSONResponse:
    rows = await run_in_threadpool(arts.galleries.list_galleries, subscriptionId, None)
    return JSONResponse({"value": [R.gallery(r) for r in rows]})


# ---------------------------------------------------------------------------------------------- definitions
@router.put(DEF)
async def put_definition(request: Request, subscriptionId: str, resourceGroupName: str, galleryName: str,
                         galleryImageName: str, _p: DefinitionWrite, v: GalleryApi, arts: ArtifactsDep) -> JSONResponse:
    body = await _body(request)
    row, created, op = await run_in_threadpool(arts.galleries.put_definition, subscriptionId, resourceGroupName,
                                               galleryName, galleryImageName, body)
    return _put(request, R.definition(row, galleryName), created, op, v)


@router.get(DEF)
async def get_definition(subscriptionId: str, resourceGroupName: str, galleryName: str, galleryImageName: str,
                         _p: DefinitionRead, v: GalleryApi, arts: ArtifactsDep) -> JSONResponse:
    row = await run_in_threadpool(arts.galleries.get_definition, subscriptionId, resourceGroupName, galleryName,
                                  galleryImageName)
    return JSONResponse(R.definition(row, galleryName))


@router.delete(DEF)
async def delete_definition(request: Request, subscriptionId: str, resourceGroupName: str, galleryName: str,
                            galleryImageName: str, _p: DefinitionDelete, v: GalleryApi, arts: ArtifactsDep) -> Response:
    op = await run_in_threadpool(arts.galleries.delete_definition, subscriptionId, resourceGroupName, galleryName,
                                 galleryImageName)
    return _deleted(request, op, v)


@router.get(GAL + "/images")
async def list_definitions(subscriptionId: str, resourceGroupName: str, galleryName: str, _p: DefinitionRead,
                           v: GalleryApi, arts: ArtifactsDep) -> JSONResponse:
    rows = await run_in_threadpool(arts.galleries.list_definitions, subscriptionId, resourceGroupName, galleryName)
    return JSONResponse({"value": [R.definition(r, galleryName) for r in rows]})


# ---------------------------------------------------------------------------------------------- versions
def _expand(request: Request) -> bool:
    return (request.query_params.get("$expand") or "").lower() == "replicationstatus"


@router.put(VER)
async def put_version(request: Request, subscriptionId: str, resourceGroupName: str, galleryName: str,
                      galleryImageName: str, galleryImageVersionName: str, _p: VersionWrite, v: GalleryApi,
                      arts: ArtifactsDep) -> JSONResponse:
    body = await _body(request)
    _check_refs(request, _p, body, _version_refs, _act("galleries/images/versions", "write"))
    row, created, op = await run_in_threadpool(arts.versions.put, subscriptionId, resourceGroupName, galleryName,
                                               galleryImageName, galleryImageVersionName, body)
    _, regions = await run_in_threadpool(arts.versions.get, subscriptionId, resourceGroupName, galleryName,
                                         galleryImageName, row.name)
    size = (await _sizes(arts, [row.blob_digest]))[row.blob_digest]
    return _put(request, R.version(row, regions, galleryName, galleryImageName, size), created, op, v)


@router.get(VER)
async def get_version(request: Request, subscriptionId: str, resourceGroupName: str, galleryName: str,
                      galleryImageName: str, galleryImageVersionName: str, _p: VersionRead, v: GalleryApi,
                      arts: ArtifactsDep) -> JSONResponse:
    row, regions = await run_in_threadpool(arts.versions.get, subscriptionId, resourceGroupName, galleryName,
                                           galleryImageName, galleryImageVersionName)
    size = (await _sizes(arts, [row.blob_digest]))[row.blob_digest]
    return JSONResponse(R.version(row, regions, galleryName, galleryImageName, size,
                                  expand_replication=_expand(request)))


@router.delete(VER)
async def delete_version(request: Request, subscriptionId: str, resourceGroupName: str, galleryName: str,
                         galleryImageName: str, galleryImageVersionName: str, _p: VersionDelete, v: GalleryApi,
                         arts: ArtifactsDep) -> Response:
    op = await run_in_threadpool(arts.versions.delete, subscriptionId, resourceGroupName, galleryName,
                                 galleryImageName, galleryImageVersionName)
    return _deleted(request, op, v)


@router.get(DEF + "/versions")
async def list_versions(subscriptionId: str, resourceGroupName: str, galleryName: str, galleryImageName: str,
                        _p: VersionRead, v: GalleryApi, arts: ArtifactsDep) -> JSONResponse:
    rows = await run_in_threadpool(arts.versions.list, subscriptionId, resourceGroupName, galleryName,
                                   galleryImageName)
    sizes = await _sizes(arts, [r.blob_digest for r, _ in rows])
    return JSONResponse({"value": [R.version(r, reg, galleryName, galleryImageName, sizes[r.blob_digest])
                                   for r, reg in rows]})


# ---------------------------------------------------------------------------------------------- operations
async def _operation(arts: Artifacts, sub: str, location: str, op_id: str) -> Operation:
    def load() -> Operation | None:
        with arts.db.session() as s:
            return s.get(Operation, op_id.upper())
    op = await run_in_threadpool(load)
    if (op is None or not op.kind.startswith("compute") or op.subscription_key != sub.lower()
            or op.location != location_key(location)):
        raise NotFound(f"The operation '{op_id}' was not found.", code="OperationNotFound", target=op_id)
    return op


@router.get(LOC + "/operations/{operationId}")
async def operation_status(subscriptionId: str, location: str, operationId: str, _p: ComputeOperationRead, v: AnyApi,
                           arts: ArtifactsDep) -> JSONResponse:
    op = await _operation(arts, subscriptionId, location, operationId)
    body: dict[str, Any] = {"name": op.id, "status": op.status, "startTime": iso(op.start_time)}
    if op.end_time is not None:
        body["endTime"] = iso(op.end_time)
    if op.error:
        body["error"] = op.error
    return JSONResponse(body)


@router.get(LOC + "/operationResults/{operationId}")
async def operation_result(request: Request, subscriptionId: str, location: str, operationId: str,
                           _p: ComputeOperationRead, v: AnyApi, arts: ArtifactsDep) -> Response:
    op = await _operation(arts, subscriptionId, location, operationId)
    if op.status == "InProgress":
        return Response(status_code=202, headers=lro_headers(request, op, v, location=True))
    if op.status == "Succeeded":
        return Response(status_code=204)
    err = op.error or {}
    raise ArmError(err.get("message", f"The operation ended {op.status}."), code=err.get("code", op.status))


# ---------------------------------------------------------------------------------------------- platform images
def _vmimage(artifact_type: str) -> None:
    if artifact_type.lower() != "vmimage":
        raise NotFound(f"Unknown artifact type '{artifact_type}'.", code="NotFound")


@router.get(PUBS)
async def list_publishers(subscriptionId: str, location: str, _p: PlatformRead, v: ComputeApi,
                          arts: ArtifactsDep) -> JSONResponse:
    rows = await run_in_threadpool(arts.platform.list_all)
    names = sorted({r.publisher for r in rows}, key=str.lower)
    return JSONResponse([{"name": n, "location": location, "id": f"{LOC}/publishers/{n}".format(
        subscriptionId=subscriptionId, location=location)} for n in names])


@router.get(PUBS + "/{publisherName}/artifacttypes/{artifactType}/offers")
async def list_offers(subscriptionId: str, location: str, publisherName: str, artifactType: str, _p: PlatformRead,
                      v: ComputeApi, arts: ArtifactsDep) -> JSONResponse:
    _vmimage(artifactType)
    rows = await run_in_threadpool(arts.platform.list_all)
    names = sorted({r.offer for r in rows if r.publisher.lower() == publisherName.lower()}, key=str.lower)
    base = f"{LOC}/publishers/{publisherName}/artifacttypes/vmimage/offers/".format(
        subscriptionId=subscriptionId, location=location)
    return JSONResponse([{"name": n, "location": location, "id": base + n} for n in names])


@router.get(PUBS + "/{publisherName}/artifacttypes/{artifactType}/offers/{offer}/skus")
async def list_skus(subscriptionId: str, location: str, publisherName: str, artifactType: str, offer: str,
                    _p: PlatformRead, v: ComputeApi, arts: ArtifactsDep) -> JSONResponse:
    _vmimage(artifactType)
    rows = await run_in_threadpool(arts.platform.list_all)
    names = sorted({r.sku for r in rows if r.publisher.lower() == publisherName.lower()
                    and r.offer.lower() == offer.lower()}, key=str.lower)
    base = f"{LOC}/publishers/{publisherName}/artifacttypes/vmimage/offers/{offer}/skus/".format(
        subscriptionId=subscriptionId, location=location)
    return JSONResponse([{"name": n, "location": location, "id": base + n} for n in names])


@router.get(SKU + "/versions")
async def list_platform_versions(request: Request, subscriptionId: str, location: str, publisherName: str,
                                 artifactType: str, offer: str, skus: str, _p: PlatformRead, v: ComputeApi,
                                 arts: ArtifactsDep) -> JSONResponse:
    _vmimage(artifactType)
    rows = await run_in_threadpool(arts.platform.list_versions, publisherName, offer, skus)
    if (request.query_params.get("$orderby") or "").lower().endswith("desc"):
        rows = rows[::-1]
    top = request.query_params.get("$top")
    if top and top.isdigit():
        rows = rows[: int(top)]
    return JSONResponse([R.platform_ref(subscriptionId, location, r) for r in rows])


@router.get(SKU + "/versions/{version}")
async def get_platform_version(subscriptionId: str, location: str, publisherName: str, artifactType: str,
                               offer: str, skus: str, version: str, _p: PlatformRead, v: ComputeApi,
                               arts: ArtifactsDep) -> JSONResponse:
    _vmimage(artifactType)
    urn = Urn.parse(f"{publisherName}:{offer}:{skus}:{version}")
    row = await run_in_threadpool(arts.platform.resolve, urn)
    size = (await _sizes(arts, [row.blob_digest]))[row.blob_digest]
    return JSONResponse(R.platform_image(subscriptionId, location, row, size))


@router.put(SKU + "/versions/{version}")
async def register_platform_version(request: Request, subscriptionId: str, location: str, publisherName: str,
                                    artifactType: str, offer: str, skus: str, version: str, _p: PlatformWrite,
                                    v: ComputeApi, arts: ArtifactsDep) -> JSONResponse:
    """vmforge only (Azure has no such PUT): register ``properties.blobUri`` under this URN.
    Body: ``{"properties": {"blobUri": "file:///…" | "https://…", "sha256"?: hex, "osType"?: "Linux",
    "hyperVGeneration"?: "V1" (BIOS; "V2" boots UEFI)}}``."""
    _vmimage(artifactType)
    props = validate_platform_image(await _body(request))["properties"]
    urn = Urn.parse(f"{publisherName}:{offer}:{skus}:{version}")
    row = await run_in_threadpool(lambda: arts.platform.register_uri(
        urn, props["blobUri"], sha256=props.get("sha256") or None, target="properties.blobUri",
        os_type=props.get("osType", "Linux"), hyper_v_generation=props.get("hyperVGeneration", "V1")))
    size = (await _sizes(arts, [row.blob_digest]))[row.blob_digest]
    return JSONResponse(R.platform_image(subscriptionId, location, row, size), status_code=201)
