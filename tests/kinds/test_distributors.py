from __future__ import annotations

from vmforge.kinds.distributors.shared_image import target_regions


def test_target_regions_and_replication_regions() -> None:
    regions, loc = target_regions({"targetRegions": [{"name": "eastus", "replicaCount": 3}, {"name": "westus"}]}, "x")
    assert loc == "eastus" and regions[0]["regionalReplicaCount"] == 3 and regions[1]["regionalReplicaCount"] == 1
    regions, loc = target_regions({"replicationRegions": ["northeurope"], "storageAccountType": "Standard_ZRS"}, "x")
    assert regions == [{"name": "northeurope", "regionalReplicaCount": 1, "storageAccountType": "Standard_ZRS"}]
    assert target_regions({}, "westus")[1] == "westus"
