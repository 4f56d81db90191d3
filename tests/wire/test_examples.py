"""Every example request of Microsoft's spec is accepted, and the canonical form of each Create example is the
example's response (minus read-only fields)."""

from __future__ import annotations

import copy

import pytest

from tests.wire.helpers import example_path, load_example, require_spec, strip_read_only
from vmforge import wire

# (version, example) pairs the spec copy holds. 2023-07-01 has no examples: it uses 2024-02-01's (see below).
CREATE = [(v, n) for v in ("2022-07-01", "2024-02-01", "2025-10-01")
          for n in ("CreateImageTemplateLinux", "CreateImageTemplateWindows")]
TRIGGER = [(v, "CreateSourceImageTrigger") for v in ("2022-07-01", "2024-02-01", "2025-10-01")]
UPDATE = [(v, n) for v in ("2022-07-01", "2024-02-01", "2025-10-01")
          for n in ("UpdateImageTemplateTags", "UpdateImageTemplateToRemoveIdentities")] + [
    ("2024-02-01", "UpdateImageTemplateVmProfile"), ("2025-10-01", "UpdateImageTemplateVmProfile")]
ALL = CREATE + TRIGGER + UPDATE


def test_the_spec_copy_has_every_example_these_tests_expect() -> None:
    require_spec()
    missing = [(v, n) for v, n in ALL if example_path(v, n) is None]
    assert missing == []


def _request(version: str, name: str) -> dict:
    ex = load_example(version, name)
    assert ex["parameters"]["api-version"] == version
    return copy.deepcopy(ex["parameters"]["parameters"])


# (api-version of the request, version folder of the example, example): 2023-07-01 borrows 2024-02-01's.
CREATE_AS = [(v, v, n) for v, n in CREATE] + [("2023-07-01", "2024-02-01", n) for v, n in CREATE if v == "2024-02-01"]


@pytest.mark.parametrize("version,folder,name", CREATE_AS, ids=[f"{v}-{n}" for v, _, n in CREATE_AS])
def test_create_example_canonical_form_is_the_201_response(version: str, folder: str, name: str) -> None:
    ex = load_example(folder, name)
    body = copy.deepcopy(ex["parameters"]["parameters"])
    out = wire.validate_template(body, version)
    resp = ex["responses"]["201"]["body"]
    assert set(out) == {"location", "tags", "identity", "properties"}
    assert out["location"] == resp["location"]
    assert out["tags"] == body["tags"]
    # The identity as stored: the type and the ids as sent, each with {} (principalId/clientId are read-only).
    assert out["identity"] == strip_read_only(resp["identity"])
    assert out["properties"] == strip_read_only(resp["properties"])
    assert body == ex["parameters"]["parameters"], "the client's body must not be modified"


@pytest.mark.parametrize("version,name", CREATE, ids=[f"{v}-{n}" for v, n in CREATE])
def test_create_example_200_response_differs_only_by_its_missing_vnet_config(version: str, name: str) -> None:
    """The examples' 200 responses (an update of an existing template) lack vmProfile.vnetConfig while the 201
    responses and the requests have it: an inconsistency of the examples, not a rule of the service (dropping a
    client's subnet would make the build VM land elsewhere). vmforge echoes vnetConfig in both cases."""
    ex = load_example(version, name)
    out = wire.validate_template(copy.deepcopy(ex["parameters"]["parameters"]), version)
    r200 = strip_read_only(ex["responses"]["200"]["body"]["properties"])
    mine = copy.deepcopy(out["properties"])
    sent = ex["parameters"]["parameters"]["properties"]["vmProfile"]["vnetConfig"]
    assert mine["vmProfile"].pop("vnetConfig") == sent
    assert mine == r200


@pytest.mark.parametrize("version,name", CREATE, ids=[f"{v}-{n}" for v, n in CREATE])
def test_create_example_response_sent_back_as_a_put_body_gives_the_same_template(version: str, name: str) -> None:
    ex = load_example(version, name)
    first = wire.validate_template(copy.deepcopy(ex["parameters"]["parameters"]), version)
    # A client may PUT a GET body back: id, name, type, principalId/clientId are dropped without an error.
    again = wire.validate_template(copy.deepcopy(ex["responses"]["201"]["body"]), version)
    assert again == {**first, "tags": {}}  # the example response carries no tags


@pytest.mark.parametrize("version", wire.API_VERSIONS)
@pytest.mark.parametrize("name", ["GetImageTemplate", "ListImageTemplates", "ListImageTemplatesByRg"])
def test_listed_templates_sent_back_are_valid(version: str, name: str) -> None:
    """The GET/List example responses hold more shapes (PlatformImage with planInfo, SharedImage with
    replicationRegions and storageAccountType): each template in them is a valid PUT body."""
    ex = load_example("2024-02-01" if version == "2023-07-01" else version, name)
    body = ex["responses"]["200"]["body"]
    for item in body.get("value", [body]):
        out = wire.validate_template(copy.deepcopy(item), version)
        assert out["properties"] == strip_read_only(item["properties"])


@pytest.mark.parametrize("version", wire.API_VERSIONS)
def test_canonical_form_is_valid_under_the_latest_version(version: str) -> None:
    """The service re-validates a stored template (merged with a PATCH) under the latest version: whatever
    version stored it, its canonical form must pass the strict latest version unchanged."""
    for kind in ("Linux", "Windows"):
        src = "2024-02-01" if version == "2023-07-01" else version
        out = wire.validate_template(_request(src, f"CreateImageTemplate{kind}"), version)
        assert wire.validate_template(copy.deepcopy(out), wire.API_VERSIONS[-1]) == out


@pytest.mark.parametrize("version,name", TRIGGER + [("2023-07-01", "CreateSourceImageTrigger")],
                         ids=[f"{v}-{n}" for v, n in TRIGGER] + ["2023-07-01-CreateSourceImageTrigger"])
def test_trigger_example(version: str, name: str) -> None:
    body = _request("2024-02-01" if version == "2023-07-01" else version, name)
    assert wire.validate_trigger(body, version) == {"properties": {"kind": "SourceImage"}}


@pytest.mark.parametrize("version,name", UPDATE, ids=[f"{v}-{n}" for v, n in UPDATE])
def test_update_example_gives_exactly_its_keys(version: str, name: str) -> None:
    body = _request(version, name)
    assert wire.validate_template_update(body, version) == body


@pytest.mark.parametrize("name", ["UpdateImageTemplateTags", "UpdateImageTemplateToRemoveIdentities"])
def test_update_examples_as_2023_07_01(name: str) -> None:
    body = _request("2024-02-01", name)
    assert wire.validate_template_update(body, "2023-07-01") == body


def test_update_vm_profile_example_as_2023_07_01_drops_the_2024_addition() -> None:
    """PATCH properties.vmProfile is a 2024-02-01 addition; 2023-07-01 is lenient, so it is ignored, not refused."""
    body = _request("2024-02-01", "UpdateImageTemplateVmProfile")
    assert wire.validate_template_update(body, "2023-07-01") == {"properties": {}}
