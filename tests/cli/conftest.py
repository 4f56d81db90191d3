"""Fixtures of the CLI tests: a CliRunner bound to the session's server (found through its data dir's
server.json, exactly as a user's shell finds the local server), and template files to feed it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from tests.conftest import Server
from tests.wire.helpers import minimal
from vmforge.cli import app
from vmforge.cli.client import DEFAULT_SUBSCRIPTION

Invoke = Callable[..., Result]

# Variables of the developer's shell that would point the CLI elsewhere.
CLEAN_ENV = {"VMFORGE_SERVER": None, "VMFORGE_TOKEN": None, "VMFORGE_SUBSCRIPTION": None, "VMFORGE_CA_BUNDLE": None,
             "VMFORGE_RESOURCE_GROUP": None, "REQUESTS_CA_BUNDLE": None, "NO_COLOR": None}


def invoke(args: list[str], env: dict[str, str | None] | None = None) -> Result:
    """Run ``vmforge ARGS`` in-process; stdout and stderr stay apart (``result.stdout``/``result.stderr``)."""
    return CliRunner().invoke(app, [str(a) for a in args], env={**CLEAN_ENV, **(env or {})}, catch_exceptions=False)


@pytest.fixture
def cli(server: Server) -> Invoke:
    """``vmforge`` against the session's server, found through ``VMFORGE_HOME`` (no --server, no token flag)."""
    def run(*args: Any, env: dict[str, str | None] | None = None) -> Result:
        return invoke(list(args), {"VMFORGE_HOME": str(server.data_dir), **(env or {})})
    return run


@pytest.fixture
def group(server: Server) -> str:
    """A new resource group in the CLI's default subscription (templates need a group that exists)."""
    name = f"cli-{uuid.uuid4().hex[:8]}"
    server.ensure_group(DEFAULT_SUBSCRIPTION, name)
    return name


@pytest.fixture
def template_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a template (the small valid one unless given) to a file; returns its path."""
    def write(body: Any = None, name: str = "tpl.json") -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(minimal() if body is None else body))
        return path
    return write
