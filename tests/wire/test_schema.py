"""The models against the swagger files: for each api-version, the properties each model accepts are exactly
the swagger's (read-only ones included), and the enums have the swagger's values. Also the plumbing: JSON
paths, discriminator tags in pydantic locations, the kind registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
from pydantic import ValidationError

from tests.wire.helpers import load_swagger, require_spec
from vmforge import wire
from vmforge.wire import customizers, distributors, sources, template, trigger, validators
from vmforge.wire.base import WireModel, kind
from vmforge.wire.errors import _strip_tags, fmt_path
from vmforge.wire.versions import allowed
from vmforge.wire.walk import wire_fields

# swagger definition (or "Definition.inlineProperty") → model
MODELS: dict[str, type[WireModel]] = {
    "ImageTemplatePlatformImageSource": sources.ImageTemplatePlatformImageSource,
    "ImageTemplateManagedImageSource": sources.ImageTemplateManagedImageSource,
    "ImageTemplateSharedImageVersionSource": sources.ImageTemplateSharedImageVersionSource,
    "PlatformImagePurchasePlan": sources.PlatformImagePurchasePlan,
    "ImageTemplateShellCustomizer": customizers.ImageTemplateShellCustomizer,
    "ImageTemplatePowerShellCustomizer": customizers.ImageTemplatePowerShellCustomizer,
    "ImageTemplateFileCustomizer": customizers.ImageTemplateFileCustomizer,
    "ImageTemplateRestartCustomizer": customizers.ImageTemplateRestartCustomizer,
    "ImageTemplateWindowsUpdateCustomizer": customizers.ImageTemplateWindowsUpdateCustomizer,
    "ImageTemplateShellValidator": validators.ImageTemplateShellValidator,
    "ImageTemplatePowerShellValidator": validators.ImageTemplatePowerShellValidator,
    "ImageTemplateFileValidator": validators.ImageTemplateFileValidator,
    "ImageTemplateManagedImageDistributor": distributors.ImageTemplateManagedImageDistributor,
    "ImageTemplateSharedImageDistributor": distributors.ImageTemplateSharedImageDistributor,
    "ImageTemplateVhdDistributor": distributors.ImageTemplateVhdDistributor,
    "TargetRegion": distributors.TargetRegion,
    "DistributeVersionerLatest": distributors.DistributeVersionerLatest,
    "DistributeVersionerSource": distributors.DistributeVersionerSource,
    "ImageTemplateIdentity": template.ImageTemplateIdentity,
    "UserAssignedIdentity": template.UserAssignedIdentity,
    "VirtualNetworkConfig": template.VirtualNetworkConfig,
    "ImageTemplateVmProfile": template.ImageTemplateVmProfile,
    "DataDisk": template.DataDisk,
    "ImageTemplateAutoRun": template.ImageTemplateAutoRun,
    "ImageTemplateProperties": template.ImageTemplateProperties,
    "ImageTemplateProperties.optimize": template.ImageTemplatePropertiesOptimize,
    "ImageTemplateProperties.optimize.vmBoot": template.ImageTemplatePropertiesOptimizeVmBoot,
    "ImageTemplateProperties.optimize.workload": template.ImageTemplatePropertiesOptimizeWorkload,
    "ImageTemplateProperties.validate": template.ImageTemplatePropertiesValidate,
    "ImageTemplateProperties.errorHandling": template.ImageTemplatePropertiesErrorHandling,
    "ImageTemplate": template.ImageTemplate,
    "ImageTemplateUpdateParameters": template.ImageTemplateUpdateParameters,
    "ImageTemplateUpdateParameters.properties": template.ImageTemplateUpdateParametersProperties,
    "SourceImageTriggerProperties": trigger.SourceImageTriggerProperties,
    "Trigger": trigger.Trigger,
}


def _resolve(ref: str, here: Path) -> tuple[dict[str, Any], Path]:
    file, _, pointer = ref.partition("#")
    path = (here.parent / file).resolve() if file else here
    node: Any = json.loads(path.read_text())
    for part in pointer.strip("/").split("/"):
        node = node[part]
    return node, path


def _properties(schema: dict[str, Any], here: Path) -> dict[str, Any]:
    """The properties of a schema, following $ref and allOf (the discriminator bases and ARM resources)."""
    if "$ref" in schema:
        schema, here = _resolve(schema["$ref"], here)
    out: dict[str, Any] = {}
    for base in schema.get("allOf", []):
        out.update(_properties(base, here))
    out.update(schema.get("properties", {}))
    return out


# Models that a version's swagger does not define at all: the property holding them arrived later.
NEWER_MODELS = {"DataDisk": "2025-10-01", "ImageTemplateProperties.optimize.workload": "2025-10-01",
                "ImageTemplateAutoRun": "2024-02-01", "ImageTemplateProperties.errorHandling": "2023-07-01",
                "ImageTemplateUpdateParameters.properties": "2023-07-01"}


def _definition(version: str, name: str) -> dict[str, Any] | None:
    here = require_spec() / "ImageBuilder" / "stable" / version / "imagebuilder.json"
    defs = json.loads(here.read_text())["definitions"]
    head, *inner = name.split(".")
    if head not in defs:
        return None
    props = _properties(defs[head], here)
    for part in inner:
        if part not in props:
            return None
        props = _properties(props[part], here)
    return props


def _accepted(model: type[WireModel], version: str) -> set[str]:
    return {n for n, f in wire_fields(model).items() if allowed(f.metadata, version)} | set(model.read_only)


@pytest.mark.parametrize("version", wire.API_VERSIONS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_accept_exactly_the_swagger_properties(version: str, name: str) -> None:
    swagger = _definition(version, name)
    if swagger is None:
        since = NEWER_MODELS[name]
        assert wire.API_VERSIONS.index(version) < wire.API_VERSIONS.index(since)
        return
    mine = _accepted(MODELS[name], version)
    assert mine == set(swagger), f"{name} under {version}: only mine {mine - set(swagger)}, " \
                                 f"only swagger's {set(swagger) - mine}"


def _literal_values(model: type[WireModel], field: str) -> set[str]:
    ann = model.model_fields[field].annotation
    if get_origin(ann) is not Literal:  # Optional[Literal[...]]
        (ann,) = [a for a in get_args(ann) if a is not type(None)]
    return set(get_args(ann))


@pytest.mark.parametrize("version", wire.API_VERSIONS)
def test_enums_match_the_swagger(version: str) -> None:
    defs = load_swagger(version)["definitions"]
    assert _literal_values(template.ImageTemplateIdentity, "type") == set(
        defs["ImageTemplateIdentity"]["properties"]["type"]["enum"])
    assert _literal_values(distributors.TargetRegion, "storageAccountType") == set(
        defs["SharedImageStorageAccountType"]["enum"])
    optimize = defs["ImageTemplateProperties"]["properties"]["optimize"]["properties"]
    assert _literal_values(template.ImageTemplatePropertiesOptimizeVmBoot, "state") == set(
        optimize["vmBoot"]["properties"]["state"]["enum"])
    on_error = defs.get("OnBuildError") or defs.get("onBuildError")
    if on_error:
        assert _literal_values(template.ImageTemplatePropertiesErrorHandling, "onCustomizerError") == set(
            on_error["enum"])
    if "ImageTemplateAutoRun" in defs:
        assert _literal_values(template.ImageTemplateAutoRun, "state") == set(
            defs["ImageTemplateAutoRun"]["properties"]["state"]["enum"])
    mode = defs["ImageTemplateSharedImageDistributor"]["properties"].get("replicationMode")
    if mode:
        assert _literal_values(distributors.ImageTemplateSharedImageDistributor, "replicationMode") == set(mode["enum"])


@pytest.mark.parametrize("version", wire.API_VERSIONS)
def test_discriminator_values_match_the_swagger(version: str) -> None:
    defs = load_swagger(version)["definitions"]

    def values(base: str) -> set[str]:
        return {d["x-ms-discriminator-value"] for d in defs.values()
                if any(a.get("$ref") == f"#/definitions/{base}" for a in d.get("allOf", []))}

    def mine(union: Any) -> set[str]:
        members = getattr(union, "__origin__", None) and union.__args__[0].__args__
        return {m.model_fields["type"].annotation.__args__[0] for m in members}

    assert values("ImageTemplateSource") == mine(template.Source)
    assert values("ImageTemplateCustomizer") == mine(template.Customizer)
    assert values("ImageTemplateInVMValidator") == mine(template.Validator)
    assert values("ImageTemplateDistributor") == mine(template.Distributor)
    assert values("TriggerProperties") == {"SourceImage"}
    assert values("DistributeVersioner") == {"Latest", "Source"}


def test_fmt_path() -> None:
    assert fmt_path(("properties", "customize", 1, "inline")) == "properties.customize[1].inline"
    assert fmt_path(("tags", "new-tag")) == "tags['new-tag']"
    assert fmt_path(("identity", "userAssignedIdentities", "/subscriptions/x")) == (
        "identity.userAssignedIdentities['/subscriptions/x']")
    assert fmt_path(("a", "it's")) == "a['it\\'s']"
    assert fmt_path(()) is None


def test_discriminator_tags_are_stripped_from_pydantic_locations() -> None:
    data = {"properties": {"customize": [{"type": "Shell"}, {"type": "Shell", "inline": 5}],
                           "source": {"type": "PlatformImage"}}}
    assert _strip_tags(("properties", "customize", 1, "Shell", "inline"), data) == [
        "properties", "customize", 1, "inline"]
    assert _strip_tags(("properties", "source", "PlatformImage", "publisher"), data) == [
        "properties", "source", "publisher"]
    with pytest.raises(ValidationError) as e:
        template.ImageTemplateProperties.model_validate(
            {"source": {"type": "ManagedImage"}, "distribute": [{"type": "VHD", "runOutputName": 5}]})
    locs = {e["loc"] for e in e.value.errors()}
    assert ("source", "ManagedImage", "imageId") in locs  # what pydantic writes; the path drops the tag


def test_a_duplicate_kind_registration_fails_at_import() -> None:
    with pytest.raises(RuntimeError, match="duplicate wire kind"):

        @kind("customizer")
        class Another(WireModel):  # noqa: F841
            type: Literal["Shell"]
