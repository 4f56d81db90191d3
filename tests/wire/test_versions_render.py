"""api-versions, and rendering a stored template for an older api-version."""

from __future__ import annotations

import copy

import pytest

from tests.wire.helpers import minimal
from vmforge import wire
from vmforge.errors import InvalidApiVersion, MissingApiVersion


def test_check_api_version() -> None:
    for v in wire.API_VERSIONS:
        assert wire.check_api_version(v) == v
    for missing in (None, "", "  "):
        with pytest.raises(MissingApiVersion) as e:
            wire.check_api_version(missing)
        assert e.value.message == "The api-version query parameter (?api-version=) is required for all requests."
    for bad in ("2019-01-01", "2024-02-01-preview", "latest", "2025-10-1"):
        with pytest.raises(InvalidApiVersion) as e:
            wire.check_api_version(bad)
        assert f"'{bad}'" in e.value.message
        assert all(v in e.value.message for v in wire.API_VERSIONS)
        assert e.value.code == "InvalidApiVersionParameter"


@pytest.mark.parametrize("fn", [wire.validate_template, wire.validate_template_update, wire.validate_trigger,
                                wire.render_template_properties])
def test_every_entry_point_refuses_an_unknown_version(fn) -> None:  # noqa: ANN001
    with pytest.raises(InvalidApiVersion):
        fn(minimal(), "2021-10-01")


def _stored() -> dict:
    """A template stored through 2025-10-01 using every version-specific property."""
    body = minimal()
    p = body["properties"]
    p.update(errorHandling={"onCustomizerError": "abort", "onValidationError": "cleanup"},
             autoRun={"state": "Enabled"}, managedResourceTags={"team": "img"}, additionalDataDisks=[{"sizeGB": 8}],
             optimize={"vmBoot": {"state": "Enabled"}, "workload": {"state": "Enabled", "scriptUri": "u"}},
             vmProfile={"vmSize": "Standard_D2s_v3", "vnetConfig": {"subnetId": "s", "containerInstanceSubnetId": "a"}})
    p["distribute"].append({"type": "SharedImage", "runOutputName": "g", "galleryImageId": "gid",
                            "targetRegions": [{"name": "westus"}], "replicationMode": "Shallow"})
    return wire.validate_template(body, "2025-10-01")["properties"]


def test_render_latest_is_the_stored_form() -> None:
    stored = _stored()
    assert wire.render_template_properties(copy.deepcopy(stored), "2025-10-01") == stored


def test_render_drops_what_older_versions_do_not_define() -> None:
    stored = _stored()
    before = copy.deepcopy(stored)
    r24 = wire.render_template_properties(stored, "2024-02-01")
    assert stored == before, "rendering must not modify the stored properties"
    assert "additionalDataDisks" not in r24 and "workload" not in r24["optimize"]
    assert "replicationMode" not in r24["distribute"][1]
    assert r24["autoRun"] == {"state": "Enabled"} and r24["managedResourceTags"] == {"team": "img"}
    assert r24["vmProfile"]["vnetConfig"] == {"subnetId": "s", "containerInstanceSubnetId": "a"}

    r23 = wire.render_template_properties(stored, "2023-07-01")
    assert "autoRun" not in r23 and "managedResourceTags" not in r23
    assert r23["vmProfile"]["vnetConfig"] == {"subnetId": "s"}
    assert r23["errorHandling"] == {"onCustomizerError": "abort", "onValidationError": "cleanup"}

    r22 = wire.render_template_properties(stored, "2022-07-01")
    assert "errorHandling" not in r22
    assert r22["optimize"] == {"vmBoot": {"state": "Enabled"}}
    assert r22["distribute"] == [stored["distribute"][0], {"type": "SharedImage", "runOutputName": "g",
                                                           "galleryImageId": "gid",
                                                           "targetRegions": [{"name": "westus"}]}]
    assert r22["customize"] == stored["customize"] and r22["source"] == stored["source"]


@pytest.mark.parametrize("version", wire.API_VERSIONS)
def test_render_of_an_older_template_is_valid_input_for_that_version(version: str) -> None:
    rendered = wire.render_template_properties(_stored(), version)
    body = {"location": "westus", "identity": {"type": "None"}, "properties": rendered}
    assert wire.validate_template(body, version)["properties"] == rendered
