"""Typed dependencies: the services, the caller, the api-version."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from vmforge import wire
from vmforge.auth import Principal
from vmforge.service.container import Services


def get_services(request: Request) -> Services:
    return request.app.state.services


def get_principal(request: Request) -> Principal:
    """The one place that decides who the caller is (replaceable by the identity work)."""
    return request.app.state.authenticator.authenticate(request.headers.get("authorization"))


def get_api_version(request: Request) -> str:
    return wire.check_api_version(request.query_params.get("api-version"))


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
ApiVersionDep = Annotated[str, Depends(get_api_version)]
