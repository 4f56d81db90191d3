"""The instance metadata service a build VM sees at http://169.254.169.254/ (served by
``vmforge.machine.guestsvc`` for that VM alone): tokens for the template's ``vmProfile.userAssignedIdentities``,
the way Azure's IMDS hands them to scripts, so that ``curl -H Metadata:true
"http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/&client_id=…"``
and the SDKs' ``ManagedIdentityCredential`` work unchanged.

* ``GET /metadata/identity/oauth2/token``: ``client_id``, ``object_id`` (``principal_id``) or ``mi_res_id``
  (``msi_res_id``) select an identity; with none and exactly one identity, that one. Tokens are minted by the
  server's local issuer with the identity's principal id as object id and its client id as app id, so the API
  accepts them and authorizes them by that identity's role assignments. Azure's answer shape, every value a
  string; Azure's error shapes (400 without ``Metadata: true``, ``invalid_request`` "Identity not found" for
  an identity this VM does not have, ``invalid_resource`` for an audience vmforge does not issue).
* ``GET /metadata/instance``: a minimal compute document (location, name, osType, resourceGroupName,
  subscriptionId, vmId, vmSize) — what scripts commonly read; the network section is left out.
* Anything else: 404. Requests carrying ``X-Forwarded-For`` are refused (400), as Azure refuses proxied ones.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from vmforge.identity.keys import load_key
from vmforge.identity.managed import Identity
from vmforge.identity.tokens import LocalIssuer, audience_for, local_issuer

# The api-versions Azure's IMDS documents for these two endpoints.
IDENTITY_API_VERSIONS = ("2018-02-01", "2019-03-11", "2019-06-01", "2019-06-04", "2019-08-01", "2019-08-15",
                         "2019-11-01", "2020-06-01", "2020-07-15", "2020-09-01", "2020-10-01", "2020-12-01",
                         "2021-01-01", "2021-02-01", "2021-03-01", "2021-05-01", "2021-10-01", "2021-11-01",
                         "2021-11-15", "2021-12-13", "2023-07-01", "2023-11-15", "2024-03-15", "2025-04-07")
INSTANCE_API_VERSIONS = ("2017-03-01", "2017-04-02", "2017-08-01", "2017-10-01", "2017-12-01", "2018-02-01",
                         "2018-04-02", "2018-10-01", "2019-02-01", "2019-03-11", "2019-04-30", "2019-06-01",
                         "2019-06-04", "2019-08-01", "2019-08-15", "2019-11-01", "2020-06-01", "2020-07-15",
                         "2020-09-01", "2020-10-01", "2020-12-01", "2021-01-01", "2021-02-01", "2021-03-01",
                         "2021-05-01", "2021-10-01", "2021-11-01", "2021-11-15", "2021-12-13", "2023-07-01",
                         "2023-11-15", "2024-03-15", "2025-04-07")
_NEWEST = list(INSTANCE_API_VERSIONS[-3:])


@dataclass(frozen=True)
class VMInfo:
    """What the instance document says about the build VM."""

    name: str
    location: str
    subscription_id: str
    resource_group: str
    vm_size: str
    os_type: str = "Linux"
    vm_id: str = ""


def issuer_for(settings: Any) -> LocalIssuer:
    """The server's local issuer, from the data dir's signing key (the same one ``identity.bootstrap`` uses)."""
    return LocalIssuer(load_key(settings.data_dir), local_issuer(settings.base_url, settings.tenant_id),
                       settings.tenant_id, settings.token_lifetime)


def _json(status: int, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type="application/json; charset=utf-8")


def _token_error(code: str, description: str) -> JSONResponse:
    return _json(400, {"error": code, "error_description": description})


def select(identities: Sequence[Identity], query: dict[str, str]) -> Identity | str:
    """The identity a token request names, or the error description when it names none of ``identities``."""
    params = {k.lower(): v for k, v in query.items()}
    client = params.get("client_id")
    obj = params.get("object_id") or params.get("principal_id")
    res = params.get("mi_res_id") or params.get("msi_res_id")
    if sum(x is not None for x in (client, obj, res)) > 1:
        return "Only one of client_id, object_id and mi_res_id may be specified"
    if client is not None:
        found = [i for i in identities if i.client_id.lower() == client.strip().lower()]
    elif obj is not None:
        found = [i for i in identities if i.principal_id.lower() == obj.strip().lower()]
    elif res is not None:
        found = [i for i in identities if i.id.lower() == res.strip().rstrip("/").lower()]
    elif len(identities) > 1:
        return ("Multiple user assigned identities exist, please specify the clientId / resourceId of the "
                "identity in the token request")
    else:
        found = list(identities)
    return found[0] if found else "Identity not found"


def create_app(identities: Sequence[Identity], issuer: LocalIssuer, vm: VMInfo) -> FastAPI:
    """The metadata app of one build VM: tokens for ``identities`` only."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    vm_id = vm.vm_id or str(uuid.uuid4())

    def refused(request: Request, identity_endpoint: bool) -> JSONResponse | None:
        if request.headers.get("metadata", "").lower() != "true":
            if identity_endpoint:
                return _token_error("bad_request_102", "Required metadata header not specified")
            return _json(400, {"error": "Bad request. Required metadata header not specified"})
        if "x-forwarded-for" in request.headers:
            return _json(400, {"error": "Bad request. Request must not contain X-Forwarded-For header"})
        return None

    def bad_version(request: Request, supported: tuple[str, ...]) -> JSONResponse | None:
        version = request.query_params.get("api-version")
        if version is None:
            return _json(400, {"error": "Bad request. api-version was not specified in the request. For more "
                                        "information refer to aka.ms/azureimds", "newest-versions": _NEWEST})
        if version not in supported:
            return _json(400, {"error": "Bad request. api-version is invalid or was not specified in the request. "
                                        "For more information refer to aka.ms/azureimds",
                               "newest-versions": _NEWEST})
        return None

    @app.get("/metadata/identity/oauth2/token")
    def token(request: Request) -> JSONResponse:
        if (r := refused(request, True)) or (r := bad_version(request, IDENTITY_API_VERSIONS)):
            return r
        resource = request.query_params.get("resource")
        if not resource:
            return _token_error("invalid_request", "Required audience parameter not specified")
        audience = audience_for(resource)
        if audience is None:
            return _token_error("invalid_resource", f"AADSTS500011: The resource principal named {resource} was "
                                                    f"not found in the tenant named {issuer.tenant}.")
        chosen = select(identities, dict(request.query_params))
        if isinstance(chosen, str):
            return _token_error("invalid_request", chosen)
        access, ttl = issuer.mint(chosen.principal_id, chosen.client_id, chosen.name, audience)
        now = int(time.time())
        return _json(200, {"access_token": access, "client_id": chosen.client_id, "expires_in": str(ttl),
                           "expires_on": str(now + ttl), "ext_expires_in": str(ttl), "not_before": str(now),
                           "resource": resource, "token_type": "Bearer"})

    @app.get("/metadata/instance")
    def instance(request: Request) -> JSONResponse:
        if (r := refused(request, False)) or (r := bad_version(request, INSTANCE_API_VERSIONS)):
            return r
        compute = {"azEnvironment": "AzurePublicCloud", "location": vm.location, "name": vm.name,
                   "osType": vm.os_type, "resourceGroupName": vm.resource_group,
                   "subscriptionId": vm.subscription_id, "vmId": vm_id, "vmSize": vm.vm_size,
                   "provider": "Microsoft.Compute", "tags": "", "tagsList": []}
        if request.query_params.get("format", "json") != "json":
            return _json(400, {"error": "Bad request. Only format=json is supported by vmforge"})
        return _json(200, {"compute": compute})

    return app


class IdentityMissing(Exception):
    """A template names a build VM identity that does not exist (any more)."""


def for_run(db: Any, settings: Any, properties: dict[str, Any], *, name: str, location: str,
            subscription: str | None, group: str | None, os_type: str = "Linux") -> FastAPI:
    """The metadata app of one run's build VM: the identities of ``vmProfile.userAssignedIdentities``, each
    looked up now (``IdentityMissing`` names the first that does not exist, so the run fails before a boot)."""
    from vmforge.identity.managed import by_id

    vm_profile = properties.get("vmProfile") or {}
    identities = []
    for rid in vm_profile.get("userAssignedIdentities") or []:
        ident = by_id(db, rid)
        if ident is None:
            raise IdentityMissing(f"The user-assigned identity '{rid}' named in vmProfile.userAssignedIdentities "
                                  "does not exist.")
        identities.append(ident)
    sub = subscription or settings.subscription_id
    vm = VMInfo(name=f"vmforge-build-{name}"[:64], location=location or settings.default_location,
                subscription_id=sub, resource_group=f"IT_{group or 'vmforge'}_{name}"[:90],
                vm_size=vm_profile.get("vmSize") or "Standard_D2ds_v4", os_type=os_type)
    return create_app(identities, issuer_for(settings), vm)
