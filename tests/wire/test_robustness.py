"""Pathological input never escapes as anything but an ArmError (a non-ArmError exception would be a 500)."""

from __future__ import annotations

import copy
import random
import time
from typing import Any

import pytest

from tests.wire.helpers import minimal
from vmforge import wire
from vmforge.errors import ArmError, ValidationFailed
from vmforge.wire.errors import MAX_DETAILS


def deep(depth: int, leaf: Any = 1, kind: str = "list") -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


@pytest.mark.parametrize("version", wire.API_VERSIONS)
@pytest.mark.parametrize("kind", ["list", "dict"])
def test_deep_nesting_anywhere_is_a_validation_error_not_a_crash(version: str, kind: str) -> None:
    nested = deep(10_000, kind=kind)  # ten times Python's recursion limit
    spots = [
        lambda b: b.update(foo=nested),  # unknown property
        lambda b: b["properties"].update(extra=nested),
        lambda b: b.update(tags={"t": nested}),  # a string-valued map
        lambda b: b["properties"]["customize"][0].update(inline=nested),  # an array of strings
        lambda b: b["properties"]["customize"][0].update(type=nested),  # a discriminator
        lambda b: b["identity"].update(type=nested),  # an enum
        lambda b: b["properties"].update(source=nested),  # a union
        lambda b: b["properties"].update(buildTimeoutInMinutes=nested),  # an integer
        lambda b: b.update(properties=nested),
    ]
    for i, spot in enumerate(spots):
        body = minimal()
        spot(body)
        try:
            wire.validate_template(body, version)
        except ValidationFailed:
            pass
        else:
            assert version not in wire.STRICT_VERSIONS and i < 2, f"spot {i} accepted"


def test_huge_arrays_are_fast_and_errors_are_capped() -> None:
    body = minimal()
    body["properties"]["customize"] = [{"type": "Shell"} for _ in range(20_000)]  # each breaks a rule
    t0 = time.monotonic()
    with pytest.raises(ValidationFailed) as e:
        wire.validate_template(body, "2025-10-01")
    assert len(e.value.details) == MAX_DETAILS
    assert e.value.details[-1].target is None and "more errors" in e.value.details[-1].message
    body = minimal()
    body["properties"]["customize"][0]["inline"] = ["echo x"] * 200_000
    assert len(wire.validate_template(body, "2025-10-01")["properties"]["customize"][0]["inline"]) == 200_000
    assert time.monotonic() - t0 < 10


def test_odd_python_values() -> None:
    """Callers inside the process could pass what JSON cannot hold: non-string keys, huge numbers, floats."""
    for version in wire.API_VERSIONS:
        for mutate in (
            lambda b: b.update({1: "x"}),
            lambda b: b["properties"].update({None: 1}),
            lambda b: b["properties"].update(buildTimeoutInMinutes=10**5000),
            lambda b: b["properties"].update(buildTimeoutInMinutes=60.0),
            lambda b: b["properties"].update(buildTimeoutInMinutes=float("nan")),
            lambda b: b.update(tags={1: "x"}),
            lambda b: b["identity"].update(userAssignedIdentities={5: {}}),
            lambda b: b["properties"]["customize"][0].update(type="x" * 1_000_000),
            lambda b: b.update({"k" * 1_000_000: 1}),
        ):
            body = minimal()
            mutate(body)
            try:
                wire.validate_template(body, version)
            except ArmError as e:
                assert all(len(d.message) < 2000 and len(d.target or "") < 2000 for d in e.details)


JUNK: list[Any] = [None, 0, -1, 2**40, 1.5, True, "", "x", "Shell", [], [1], {}, {"type": "Shell"}, ["a"],
                   {"a": {"b": []}}]


def _nodes(value: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _nodes(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _nodes(v, (*path, i))
    return out


def _mutate(body: Any, rng: random.Random) -> Any:
    path = rng.choice(_nodes(body))
    if not path:
        return rng.choice(JUNK)
    parent = body
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    action = rng.random()
    if action < 0.5:
        parent[last] = copy.deepcopy(rng.choice(JUNK))
    elif action < 0.7 and isinstance(parent, dict):
        del parent[last]
    elif action < 0.85 and isinstance(parent, dict):
        parent[str(last).swapcase()] = parent.pop(last)
    elif isinstance(parent, dict):
        parent[rng.choice(["type", "inline", "scriptUri", "foo", "runAsSystem", "targetRegions"])] = rng.choice(JUNK)
    return body


def _full_template() -> dict:
    body = minimal()
    p = body["properties"]
    p["customize"].append({"type": "PowerShell", "scriptUri": "u", "runElevated": True, "validExitCodes": [0]})
    p["customize"].append({"type": "File", "sourceUri": "u", "destination": "/f"})
    p["validate"] = {"inVMValidations": [{"type": "Shell", "inline": ["x"]}], "continueDistributeOnFailure": False}
    p["distribute"].append({"type": "SharedImage", "runOutputName": "g", "galleryImageId": "gid",
                            "targetRegions": [{"name": "w", "replicaCount": 2}], "versioning": {"scheme": "Latest"}})
    p["vmProfile"] = {"vmSize": "s", "vnetConfig": {"subnetId": "s"}}
    p["errorHandling"] = {"onCustomizerError": "abort"}
    return body


@pytest.mark.parametrize("version", wire.API_VERSIONS)
def test_random_mutations_never_crash(version: str) -> None:
    rng = random.Random(f"wire-fuzz-{version}")
    base = _full_template()
    for _ in range(400):
        body = copy.deepcopy(base)
        for _ in range(rng.randint(1, 4)):
            body = _mutate(body, rng)
        for fn in (wire.validate_template, wire.validate_template_update, wire.validate_trigger):
            try:
                out = fn(copy.deepcopy(body), version)
            except ArmError:
                continue
            assert isinstance(out, dict)
            if fn is wire.validate_template:  # what was accepted is stored, and must pass the latest version as is
                assert wire.validate_template(copy.deepcopy(out), wire.API_VERSIONS[-1]) == out
        if isinstance(body, dict) and isinstance(body.get("properties"), dict):
            assert isinstance(wire.render_template_properties(body["properties"], version), dict)


@pytest.mark.parametrize("version", wire.API_VERSIONS)
def test_deep_nesting_in_patch_trigger_and_render(version: str) -> None:
    nested = deep(10_000)
    for fn, body in (
        (wire.validate_trigger, {"properties": {"kind": nested}}),
        (wire.validate_trigger, {"properties": nested}),
        (wire.validate_template_update, {"properties": {"distribute": [
            {"type": "SharedImage", "runOutputName": "g", "galleryImageId": "x", "replicationRegions": ["w"],
             "versioning": {"scheme": nested}}]}}),
        (wire.validate_template_update, {"identity": {"type": nested}, "tags": nested}),
    ):
        try:
            out = fn(body, version)
        except ValidationFailed:
            continue
        # Only 2022-07-01 has no PATCH properties at all: lenient, it ignores them.
        assert version == "2022-07-01" and out == {}
    rendered = wire.render_template_properties({"source": nested, "customize": [{"type": nested}]}, version)
    assert isinstance(rendered, dict)
