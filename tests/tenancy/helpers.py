"""Clients of the tenancy tests: Microsoft's SDKs for resource groups, managed identities and authorization,
pointed at a test server."""

from __future__ import annotations

from typing import Any

from tests.conftest import SUBSCRIPTION, Server, StaticToken


def _kw(srv: Server) -> dict[str, Any]:
    return {"base_url": srv.url, "connection_verify": srv.cert, "retry_total": 0}


def resource_client(srv: Server, subscription: str = SUBSCRIPTION, credential: Any = None):  # noqa: ANN201
    from azure.mgmt.resource.resources import ResourceManagementClient

    return ResourceManagementClient(credential or StaticToken(srv.token), subscription, **_kw(srv))


def msi_client(srv: Server, subscription: str = SUBSCRIPTION, credential: Any = None):  # noqa: ANN201
    from azure.mgmt.msi import ManagedServiceIdentityClient

    return ManagedServiceIdentityClient(credential or StaticToken(srv.token), subscription, **_kw(srv))


def auth_client(srv: Server, subscription: str = SUBSCRIPTION, credential: Any = None):  # noqa: ANN201
    from azure.mgmt.authorization import AuthorizationManagementClient

    return AuthorizationManagementClient(credential or StaticToken(srv.token), subscription, **_kw(srv))
