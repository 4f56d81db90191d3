"""additionalDataDisks and source.planInfo through azure-mgmt-imagebuilder: validated at PUT with ARM errors at
their JSON path, kept and echoed in every api-version that has them (no VM)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.api.test_sdk_templates import VERSIONS, create_body, rg
from tests.conftest import imagebuilder_client

PLAN = {"planName": "pro-12", "planProduct": "debian-pro", "planPublisher": "vmforge-labs"}
SOURCE = {"type": "PlatformImage", "publisher": "vmforge", "offer": "debian", "sku": "12", "version": "latest",
          "planInfo": PLAN}


def refused(client, server, body: dict) -> list[tuple[str, str]]:  # noqa: ANN001
    group = rg(server)
    with pytest.raises(HttpResponseError) as e:
        client.virtual_machine_image_templates.begin_create_or_update(group, "broken", body).result()
    assert e.value.status_code == 400 and e.value.error.code == "ValidationFailed"
    with pytest.raises(ResourceNotFoundError):
        client.virtual_machine_image_templates.get(group, "broken")
    return [(d.code, d.target) for d in e.value.error.details]


@pytest.mark.parametrize("disks,expected", [
    ([{"sizeGB": 0}], ("OutOfRange", "properties.additionalDataDisks[0].sizeGB")),
    ([{"sizeGB": 4}, {"sizeGB": 16384}], ("OutOfRange", "properties.additionalDataDisks[1].sizeGB")),
    ([{}], ("MissingRequiredProperty", "properties.additionalDataDisks[0].sizeGB")),
    ([{"sizeGB": -2}], ("OutOfRange", "properties.additionalDataDisks[0].sizeGB")),
    ([{"sizeGB": "8"}], ("InvalidType", "properties.additionalDataDisks[0].sizeGB")),
    ([{"sizeGB": 1}] * 17, ("OutOfRange", "properties.additionalDataDisks")),
], ids=["zero", "too-big", "no-size", "negative", "string", "too-many"])
def test_bad_data_disks_are_400_at_their_path(server, disks, expected) -> None:  # noqa: ANN001
    body, _ = create_body(None)
    body["properties"]["additionalDataDisks"] = disks
    assert refused(imagebuilder_client(server), server, body) == [expected]


def test_data_disks_are_not_in_older_api_versions(server) -> None:  # noqa: ANN001
    body, _ = create_body("2024-02-01")
    body["properties"]["additionalDataDisks"] = [{"sizeGB": 4}]
    assert refused(imagebuilder_client(server, "2024-02-01"), server, body) == [
        ("UnknownProperty", "properties.additionalDataDisks")]


def test_data_disks_round_trip(server) -> None:  # noqa: ANN001
    client = imagebuilder_client(server)
    body, _ = create_body(None)
    body["properties"]["additionalDataDisks"] = [{"sizeGB": 4}, {"sizeGB": 16383}]
    group = rg(server)
    ops = client.virtual_machine_image_templates
    ops.begin_create_or_update(group, "disks", body).result()
    assert [d.size_gb for d in ops.get(group, "disks").additional_data_disks] == [4, 16383]


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v or "default")
def test_plan_info_round_trips_in_every_api_version(server, version) -> None:  # noqa: ANN001
    client = imagebuilder_client(server, version)
    body, _ = create_body(version)
    body["properties"]["source"] = dict(SOURCE)
    group = rg(server)
    ops = client.virtual_machine_image_templates
    ops.begin_create_or_update(group, "plan", body).result()
    got = ops.get(group, "plan").source.plan_info
    assert (got.plan_name, got.plan_product, got.plan_publisher) == ("pro-12", "debian-pro", "vmforge-labs")
    body["properties"]["source"]["planInfo"] = {"planName": "n", "planProduct": "p"}
    assert refused(client, server, body) == [("MissingRequiredProperty", "properties.source.planInfo.planPublisher")]
