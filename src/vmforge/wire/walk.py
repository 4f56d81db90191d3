"""The schema-guided walk that runs before pydantic.

It follows the wire models over a client's JSON and, object by object:
- matches property names (exactly in strict versions, case-insensitively in lenient ones) and writes them in
  their canonical case;
- drops read-only properties (a client may send a GET body back), nulls (null means "not given"), and
  properties the request's api-version does not define — reporting them as UnknownProperty when the version
  is strict, dropping them silently when it is lenient;
- in lenient versions, writes enum and discriminator values in their canonical case;
- runs each model's prose ``rules`` on the normalized object.

Pydantic then checks types and swagger constraints on the result. Because the walk only descends where the
schema does, a deeply nested or enormous value under an unknown or scalar property costs nothing here.
The same walk, with ``ctx.check`` off, renders a stored template for an older api-version.
"""

from __future__ import annotations

import functools
import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import Discriminator, ValidationError

from vmforge.errors import ErrorDetail, InvalidRequestContent, ValidationFailed
from vmforge.wire.base import Ctx, WireModel, tag_of
from vmforge.wire.errors import NOT_A_STRING, TYPE, UNKNOWN, Path, from_pydantic, merge, shown
from vmforge.wire.versions import allowed


@dataclass(frozen=True)
class WireField:
    name: str  # the JSON name
    annotation: Any  # with its Annotated metadata (discriminators, version markers)
    metadata: tuple[Any, ...]


@functools.cache
def wire_fields(model: type[WireModel]) -> dict[str, WireField]:
    out = {}
    for attr, info in model.model_fields.items():
        name = info.alias or attr
        ann = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        out[name] = WireField(name, ann, tuple(info.metadata))
    return out


@functools.cache
def folded_fields(model: type[WireModel]) -> dict[str, WireField]:
    return {name.casefold(): f for name, f in wire_fields(model).items()}


@functools.cache
def folded_read_only(model: type[WireModel]) -> frozenset[str]:
    return frozenset(n.casefold() for n in model.read_only)


def walk(value: Any, ann: Any, path: Path, ctx: Ctx) -> Any:
    """Normalize ``value`` as the annotation ``ann`` describes it; anything unexpected is left for pydantic."""
    origin = get_origin(ann)
    if origin is Annotated:
        base, *meta = get_args(ann)
        disc = next((m for m in meta if isinstance(m, Discriminator)), None)
        if disc is not None and isinstance(disc.discriminator, str):
            return _walk_tagged(value, base, disc.discriminator, path, ctx)
        return walk(value, base, path, ctx)
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(ann) if a is not type(None)]
        return walk(value, members[0], path, ctx) if len(members) == 1 else value
    if origin is list:
        if not isinstance(value, list):
            return value
        (item,) = get_args(ann)
        return [walk(v, item, (*path, i), ctx) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            return value
        _, item = get_args(ann)
        return {k: walk(v, item, (*path, k), ctx) if isinstance(k, str) else v for k, v in value.items()}
    if origin is Literal:
        if not ctx.strict and isinstance(value, str):
            for lit in get_args(ann):
                if isinstance(lit, str) and lit.casefold() == value.casefold():
                    return lit
        return value
    if isinstance(ann, type) and issubclass(ann, WireModel):
        return walk_object(value, ann, path, ctx)
    return value


def _walk_tagged(value: Any, members_ann: Any, tag_field: str, path: Path, ctx: Ctx) -> Any:
    if not isinstance(value, dict):
        return value
    members = get_args(members_ann) or (members_ann,)
    key = tag_field
    if not ctx.strict and tag_field not in value:
        key = next((k for k in value if isinstance(k, str) and k.casefold() == tag_field), tag_field)
    tag = value.get(key)
    if tag is not None and not isinstance(tag, str):
        # Reported here; pydantic would render the value (a nested array may be deeper than repr can go).
        if ctx.check:
            ctx.add(TYPE, f"The value of '{tag_field}' must be a string.", (*path, tag_field))
        value = {**{k: v for k, v in value.items() if k != key}, tag_field: NOT_A_STRING}
        key, tag = tag_field, NOT_A_STRING
    if isinstance(tag, str):
        for model in members:
            want = tag_of(model, tag_field)
            if tag == want or (not ctx.strict and tag.casefold() == want.casefold()):
                return walk_object(value, model, path, ctx)
    if key != tag_field:  # lenient: at least let pydantic find the (unknown) tag under its canonical name
        value = {**{k: v for k, v in value.items() if k != key}, tag_field: tag}
    return value


def walk_object(value: Any, model: type[WireModel], path: Path, ctx: Ctx) -> Any:
    if not isinstance(value, dict):
        return value
    fields = wire_fields(model) if ctx.strict else folded_fields(model)
    read_only = model.read_only if ctx.strict else folded_read_only(model)
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            if ctx.check and ctx.strict:
                ctx.add(UNKNOWN, f"Could not find member {shown(key)} on object of type '{model.__name__}'.",
                        (*path, str(key)))
            continue
        lookup = key if ctx.strict else key.casefold()
        f = fields.get(lookup)
        if f is None:
            if lookup not in read_only and ctx.check and ctx.strict:
                hint = folded_fields(model).get(key.casefold())
                extra = f" Property names are case-sensitive: did you mean '{hint.name}'?" if hint else ""
                ctx.add(UNKNOWN, f"Could not find member {shown(key)} on object of type '{model.__name__}'.{extra}",
                        (*path, key))
            continue
        if not allowed(f.metadata, ctx.api_version):
            if ctx.check and ctx.strict:
                ctx.add(UNKNOWN, f"The property '{f.name}' is not supported in api-version '{ctx.api_version}'.",
                        (*path, key))
            continue
        if item is None:
            continue
        out[f.name] = walk(item, f.annotation, (*path, f.name), ctx)
    if ctx.check:
        model.rules(out, path, ctx)
    return out


def validate_object(model: type[WireModel], body: Any, ctx: Ctx, errors: list[ErrorDetail] | None = None
                    ) -> dict[str, Any]:
    """Walk, validate and dump ``body`` as ``model``: its canonical form (names and enum values canonical,
    read-only properties and nulls dropped), or one ``ValidationFailed`` with every error (``errors``, found
    beforehand, first). A body that is not a JSON object is ``InvalidRequestContent``."""
    if not isinstance(body, dict):
        raise InvalidRequestContent("The request content must be a JSON object.")
    data = walk_object(body, model, (), ctx)
    try:
        parsed = model.model_validate(data)
    except ValidationError as e:
        found = merge(errors or [], from_pydantic(e, data), ctx.errors)
    else:
        found = merge(errors or [], ctx.errors)
    if found:
        raise ValidationFailed.from_details(found)
    return parsed.model_dump(mode="json", by_alias=True, exclude_unset=True)
