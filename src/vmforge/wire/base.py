"""Building blocks of the wire models: the base model, the context of one validation, the kind registry and
the shared field types and rule helpers.

Every wire model is named after its swagger definition (``ImageTemplateShellCustomizer``, ...), so that error
messages name the same types Microsoft's service names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Discriminator, Field, model_validator

from vmforge.errors import ErrorDetail
from vmforge.wire.errors import INVALID, MISSING, PATTERN, Path, detail

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

# JSON integers are int32 in the swagger ("format": "int32"); the swagger's own minimum/maximum narrow them.
Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]
NonNegativeInt32 = Annotated[int, Field(ge=0, le=INT32_MAX)]
PositiveInt32 = Annotated[int, Field(ge=1, le=INT32_MAX)]
# A required string that must carry a value (a resource id, a location, a name).
NonEmptyStr = Annotated[str, Field(min_length=1)]

SHA256 = re.compile(r"^[0-9A-Fa-f]{64}$")


@dataclass
class Ctx:
    """One walk over a body: the api-version, its strictness, and the errors found so far."""

    api_version: str
    strict: bool
    check: bool = True  # False when rendering a stored template: no rules, no errors, unknown fields dropped
    errors: list[ErrorDetail] = field(default_factory=list)

    def add(self, code: str, message: str, path: Sequence[str | int]) -> None:
        self.errors.append(detail(code, message, path))


class WireModel(BaseModel):
    """A wire object: unknown properties forbidden, JSON types strict (no "5" for 5, no 1 for true).

    Class attributes (not fields):
    - ``read_only``: properties the service fills in responses; a client may send them back, they are dropped.
    - ``echo_defaults``: fields whose swagger default the service writes into the stored template (and so echoes
      on GET) even when the client left them out.
    - ``rules``: the prose rules of the swagger and of the service, checked on the object's normalized JSON.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    read_only: ClassVar[frozenset[str]] = frozenset()
    echo_defaults: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _mark_echoed_defaults(self) -> WireModel:
        self.__pydantic_fields_set__.update(self.echo_defaults)
        return self

    @classmethod
    def rules(cls, data: dict[str, Any], path: Path, ctx: Ctx) -> None:
        """Check the rules the schema cannot express. ``data`` is this object's JSON after normalization (names
        and enum values canonical), not yet type-checked: a rule looks only at well-typed values, so that one
        mistake gives one error. Subclasses extend this with ``super().rules(data, path, ctx)``."""


# ------------------------------------------------------------------------------------------- kind registry
_KINDS: dict[tuple[str, str], type[WireModel]] = {}


def tag_of(model: type[WireModel], tag_field: str) -> str:
    (tag,) = get_args(model.model_fields[tag_field].annotation)
    return tag


def kind(phase: str, tag_field: str = "type"):  # noqa: ANN201
    """Register a model as the variant of ``phase`` (source, customizer, validator, distributor, versioner,
    trigger) whose ``tag_field`` has the model's Literal value. A duplicate registration fails at import."""

    def register(model: type[WireModel]) -> type[WireModel]:
        key = (phase, tag_of(model, tag_field))
        if key in _KINDS:
            raise RuntimeError(f"duplicate wire kind {key}: {_KINDS[key].__name__} and {model.__name__}")
        _KINDS[key] = model
        return model

    return register


def union(phase: str, tag_field: str = "type") -> Any:
    """The discriminated union of every model registered for ``phase`` (a single model stands alone)."""
    members = tuple(m for (p, _), m in _KINDS.items() if p == phase)
    if not members:
        raise RuntimeError(f"no wire kinds registered for {phase!r}")
    if len(members) == 1:
        return members[0]
    return Annotated[Union[members], Discriminator(tag_field)]  # noqa: UP007


# ------------------------------------------------------------------------------------------- rule helpers
def given(data: dict[str, Any], name: str) -> bool:
    """Whether a property carries a value: present, and not an empty string or empty array."""
    value = data.get(name)
    return value is not None and value != "" and value != []


def require(data: dict[str, Any], names: Sequence[str], path: Path, ctx: Ctx, why: str = "") -> None:
    for name in names:
        if not given(data, name):
            ctx.add(MISSING, f"The property '{name}' is required{why}.", (*path, name))


def check_sha256(data: dict[str, Any], path: Path, ctx: Ctx) -> None:
    """``sha256Checksum`` is "" (the swagger default, "not given"; the Azure CLI sends it) or 64 hex digits."""
    value = data.get("sha256Checksum")
    if isinstance(value, str) and value != "" and not SHA256.match(value):
        ctx.add(PATTERN, "The sha256Checksum must be empty or exactly 64 hexadecimal characters.",
                (*path, "sha256Checksum"))


def check_one_of(data: dict[str, Any], names: tuple[str, str], path: Path, ctx: Ctx) -> None:
    a, b = names
    if given(data, a) == given(data, b):
        which = "both were given" if given(data, a) else "neither was given"
        ctx.add(INVALID, f"Exactly one of '{a}' or '{b}' must be specified; {which}.", path)


OnOff = Literal["Enabled", "Disabled"]
