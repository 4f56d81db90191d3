"""Shared helpers of the wire tests: the spec's examples and a small valid template to break."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SPEC_MISSING, missing_dependency
from vmforge.errors import ErrorDetail, ValidationFailed

IDENTITY = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1/providers/"
            "Microsoft.ManagedIdentity/userAssignedIdentities/identity_1")
SUB = "/subscriptions/00000000-0000-0000-0000-000000000000"
RP = "specification/imagebuilder/resource-manager/Microsoft.VirtualMachineImages"

# Properties every api-version's response carries only as read-only output.
READ_ONLY = {"provisioningState", "provisioningError", "lastRunStatus", "exactStagingResourceGroup", "exactVersion",
             "principalId", "clientId"}


def spec_root() -> Path | None:
    """The spec copy: ``../shared/spec`` next to the repository, else $VMFORGE_SPEC_DIR."""
    candidates = [Path(__file__).resolve().parents[2].parent / "shared" / "spec"]
    if os.environ.get("VMFORGE_SPEC_DIR"):
        candidates.append(Path(os.environ["VMFORGE_SPEC_DIR"]))
    for cand in candidates:
        if (cand / "azure-rest-api-specs" / RP).is_dir():
            return cand / "azure-rest-api-specs" / RP
    return None


def require_spec() -> Path:
    root = spec_root()
    if root is None:
        missing_dependency(SPEC_MISSING)
    return root


def example_path(version: str, name: str) -> Path | None:
    """An example of ``version``: under ImageBuilder/stable/ or, for some, the older stable/ layout."""
    root = require_spec()
    for cand in (root / "ImageBuilder" / "stable" / version / "examples" / f"{name}.json",
                 root / "stable" / version / "examples" / f"{name}.json"):
        if cand.is_file():
            return cand
    return None


def load_example(version: str, name: str) -> dict[str, Any]:
    path = example_path(version, name)
    if path is None:
        missing_dependency(f"the spec copy at {require_spec()} has no example {name} for {version}")
    return json.loads(path.read_text())


def load_swagger(version: str) -> dict[str, Any]:
    path = require_spec() / "ImageBuilder" / "stable" / version / "imagebuilder.json"
    return json.loads(path.read_text())


def strip_read_only(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_read_only(v) for k, v in value.items() if k not in READ_ONLY}
    if isinstance(value, list):
        return [strip_read_only(v) for v in value]
    return value


def minimal() -> dict[str, Any]:
    """A small valid template that every api-version accepts."""
    return copy.deepcopy({
        "location": "westus",
        "identity": {"type": "UserAssigned", "userAssignedIdentities": {IDENTITY: {}}},
        "properties": {
            "source": {"type": "PlatformImage", "publisher": "Canonical", "offer": "ubuntu-24_04-lts",
                       "sku": "server", "version": "latest"},
            "customize": [{"type": "Shell", "name": "hello", "inline": ["echo hello"]}],
            "distribute": [{"type": "ManagedImage", "runOutputName": "out1", "location": "westus",
                            "imageId": f"{SUB}/resourceGroups/rg1/providers/Microsoft.Compute/images/img1"}],
        },
    })


def errors_of(fn, body: Any, version: str) -> list[ErrorDetail]:  # noqa: ANN001
    with pytest.raises(ValidationFailed) as e:
        fn(body, version)
    assert e.value.details, "a ValidationFailed without details"
    return e.value.details


def pairs(details: list[ErrorDetail]) -> set[tuple[str, str | None]]:
    return {(d.code, d.target) for d in details}
