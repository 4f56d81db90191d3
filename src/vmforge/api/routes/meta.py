"""The few Microsoft.Resources calls Microsoft's clients make around image templates: the Azure CLI lists
subscriptions and tenants at login and locations on ``az image builder create``. Resource groups are real
resources: ``vmforge.api.routes.resources``.

vmforge has no subscription objects: a subscription exists for a principal when it holds a role in it.
A principal with a role at the root scope ``/`` sees the configured default subscription plus every
subscription that holds resource groups.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import select

from vmforge.api.deps import PrincipalDep, require
from vmforge.auth import Principal
from vmforge.errors import MissingApiVersion
from vmforge.identity import roles
from vmforge.identity.tokens import graph_audience
from vmforge.store.tenancy_models import ResourceGroup

router = APIRouter()

LOCATIONS = [
    ("eastus", "East US", "US"), ("eastus2", "East US 2", "US"), ("westus", "West US", "US"),
    ("westus2", "West US 2", "US"), ("westus3", "West US 3", "US"), ("centralus", "Central US", "US"),
    ("northcentralus", "North Central US", "US"), ("southcentralus", "South Central US", "US"),
    ("canadacentral", "Canada Central", "Canada"), ("brazilsouth", "Brazil South", "South America"),
    ("northeurope", "North Europe", "Europe"), ("westeurope", "West Europe", "Europe"),
    ("uksouth", "UK South", "UK"), ("francecentral", "France Central", "Europe"),
    ("germanywestcentral", "Germany West Central", "Europe"), ("swedencentral", "Sweden Central", "Europe"),
    ("switzerlandnorth", "Switzerland North", "Europe"), ("eastasia", "East Asia", "Asia Pacific"),
    ("southeastasia", "Southeast Asia", "Asia Pacific"), ("japaneast", "Japan East", "Asia Pacific"),
    ("koreacentral", "Korea Central", "Asia Pacific"), ("australiaeast", "Australia East", "Asia Pacific"),
    ("centralindia", "Central India", "Asia Pacific"), ("uaenorth", "UAE North", "Middle East"),
    ("southafricanorth", "South Africa North", "Africa"),
]


async def _api_version(request: Request) -> str:
    """Microsoft.Resources accepts many api-versions; only its presence is checked."""
    v = request.query_params.get("api-version")
    if not v:
        raise MissingApiVersion("The api-version query parameter (?api-version=) is required for all requests.")
    return v


ApiVersion = Annotated[str, Depends(_api_version)]


def _subscription(request: Request, sub: str) -> dict[str, Any]:
    settings = request.app.state.settings
    return {"id": f"/subscriptions/{sub}", "authorizationSource": "RoleBased", "managedByTenants": [],
            "subscriptionId": sub, "tenantId": settings.tenant_id, "displayName": f"vmforge {sub}",
            "state": "Enabled", "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01",
                                                         "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"}}


def _visible_subscriptions(request: Request, principal: Principal) -> list[str]:
    authorizer = request.app.state.identity.authorizer
    subs, root = authorizer.subscriptions(principal.object_id)
    if not root:
        return sorted(subs)
    found = {s.lower(): s for s in sorted(subs)}
    found.setdefault(request.app.state.settings.subscription_id.lower(), request.app.state.settings.subscription_id)
    with request.app.state.services.db.read() as s:
        for sub in s.scalars(select(ResourceGroup.subscription_id).distinct().limit(1000)):
            found.setdefault(sub.lower(), sub)
    return list(found.values())


@router.get("/subscriptions")
async def list_subscriptions(request: Request, principal: PrincipalDep, _v: ApiVersion) -> JSONResponse:
    subs = await run_in_threadpool(_visible_subscriptions, request, principal)
    value = [_subscription(request, s) for s in subs]
    return JSONResponse({"value": value, "count": {"type": "Total", "value": len(value)}})


@router.get("/subscriptions/{subscriptionId}")
async def get_subscription(request: Request, subscriptionId: str,
                           _p: Annotated[Principal, require(roles.SUBSCRIPTION_READ)], _v: ApiVersion) -> JSONResponse:
    return JSONResponse(_subscription(request, subscriptionId))


@router.get("/tenants")
async def list_tenants(request: Request, principal: PrincipalDep, _v: ApiVersion) -> JSONResponse:
    tid = request.app.state.settings.tenant_id
    tenant = {"id": f"/tenants/{tid}", "tenantId": tid, "countryCode": "US", "displayName": "vmforge",
              "domains": ["vmforge.local"], "tenantCategory": "Home", "defaultDomain": "vmforge.local",
              "tenantType": "AAD"}
    return JSONResponse({"value": [tenant]})


@router.get("/subscriptions/{subscriptionId}/locations")
async def list_locations(request: Request, subscriptionId: str,
                         _p: Annotated[Principal, require(roles.LOCATIONS_READ)], _v: ApiVersion) -> JSONResponse:
    value = [{"id": f"/subscriptions/{subscriptionId}/locations/{name}", "name": name, "type": "Region",
              "displayName": display, "regionalDisplayName": f"({geo}) {display}",
              "metadata": {"regionType": "Physical", "regionCategory": "Recommended", "geographyGroup": geo}}
             for name, display, geo in LOCATIONS]
    return JSONResponse({"value": value})


@router.get("/metadata/endpoints")
async def metadata_endpoints(request: Request) -> JSONResponse:
    """ARM's cloud metadata (no authentication, as on ARM): ``az cloud register --endpoint-resource-manager URL``
    reads it to learn the login endpoint and audiences."""
    settings = request.app.state.settings
    base = settings.base_url
    return JSONResponse({
        "name": "vmforge", "portal": base, "resourceManager": base + "/", "gallery": base + "/",
        # The directory is the server's own (vmforge.api.routes.graph): clients never ask the internet.
        "graph": graph_audience(base), "graphAudience": graph_audience(base),
        "microsoftGraphResourceId": graph_audience(base),
        "authentication": {"loginEndpoint": base, "audiences": ["https://management.core.windows.net/",
                                                                "https://management.azure.com/"],
                           "tenant": settings.tenant_id, "identityProvider": "AAD"},
        "suffixes": {"storage": "core.windows.net", "keyVaultDns": "vault.azure.net",
                     "acrLoginServer": "azurecr.io", "sqlServerHostname": "database.windows.net"},
    })
