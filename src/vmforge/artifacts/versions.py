"""Gallery image version numbers: parsing, ``latest`` resolution and AIB's numbering schemes (pure functions).

A gallery image version is ``Major.Minor.Patch``, each a 32-bit signed integer, ordered numerically.

AIB's ``versioning`` for SharedImage distribution:

* ``{"scheme": "Latest", "major": M}`` — take the highest existing version (with major M when M >= 0; -1 or
  absent means any) and add one to its patch. Microsoft's example, with 0.1.1, 0.1.2, 1.0.0, 1.0.1, 1.1.0, 1.1.1,
  1.2.0, 2.0.0, 2.0.1, 2.1.0 published: no major (or 2) gives 2.1.1, major 1 gives 1.2.1, major 0 gives 0.1.3.
  Every existing version counts, ``excludeFromLatest`` ones too (the new name must not collide). With none to
  start from: ``M.0.0`` (``1.0.0`` when no major is given) — vmforge's choice; Microsoft's docs don't say.
* ``{"scheme": "Source"}`` — reuse the source image's version (a platform image's or a gallery version's),
  which must itself be a valid gallery version number (kept as written, e.g. ``22.04.202401010``) and
  not exist yet (compared numerically).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from vmforge.artifacts.errors import InvalidParameter
from vmforge.errors import Conflict

_VERSION_RE = re.compile(r"^(\d{1,10})\.(\d{1,10})\.(\d{1,10})$")
INT32_MAX = 2**31 - 1

Version = tuple[int, int, int]


def parse_version(text: str, *, target: str | None = None) -> Version:
    """``'1.2.3'`` -> ``(1, 2, 3)``; raises ``InvalidParameter`` for anything else."""
    m = _VERSION_RE.match(text or "")
    if not m or any(int(p) > INT32_MAX for p in m.groups()):
        raise InvalidParameter(
            f"The version '{text}' is invalid: use Major.Minor.Patch, each a whole number up to {INT32_MAX}.",
            target=target)
    return int(m[1]), int(m[2]), int(m[3])


def is_version(text: str) -> bool:
    m = _VERSION_RE.match(text or "")
    return bool(m) and all(int(p) <= INT32_MAX for p in m.groups())


def fmt(v: Version) -> str:
    return f"{v[0]}.{v[1]}.{v[2]}"


@dataclass(frozen=True)
class Candidate:
    """An existing version as ``latest`` resolution sees it."""

    name: str
    exclude_from_latest: bool = False


def latest(candidates: Iterable[Candidate]) -> str | None:
    """The highest version not excluded from latest, or None."""
    best: tuple[Version, str] | None = None
    for c in candidates:
        if c.exclude_from_latest or not is_version(c.name):
            continue
        v = parse_version(c.name)
        if best is None or v > best[0]:
            best = (v, c.name)
    return best[1] if best else None


def latest_platform(versions: Iterable[str]) -> str | None:
    """The highest platform image version: numeric dotted parts compare as numbers, others as text."""
    def key(v: str) -> tuple:
        return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in v.split("."))

    vs = list(versions)
    return max(vs, key=key) if vs else None


def next_gallery_version(existing: Iterable[str], scheme: str = "Latest", *, major: int | None = -1,
                         source_version: str | None = None) -> str:
    """The version number AIB would give the next image version of a definition holding ``existing``."""
    names = [e for e in existing if is_version(e)]
    taken = {parse_version(n) for n in names}
    kind = (scheme or "Latest").lower()
    if kind == "source":
        if not source_version:
            raise InvalidParameter("The 'Source' versioning scheme needs a source image with a version (a platform "
                                   "image or a gallery image version).", target="versioning.scheme")
        v = parse_version(source_version.strip(), target="versioning")
        if v in taken:
            raise Conflict(f"The image version '{source_version}' (the source image's version) already exists.",
                           code="Conflict", target="versioning")
        return source_version.strip()
    if kind != "latest":
        raise InvalidParameter(f"Unknown versioning scheme '{scheme}'; use 'Latest' or 'Source'.",
                               target="versioning.scheme")
    m = -1 if major is None else major
    if m < -1 or m > INT32_MAX:
        raise InvalidParameter(f"versioning.major must be -1 or a version major number, not {m}.",
                               target="versioning.major")
    pool = [v for v in taken if m == -1 or v[0] == m]
    if not pool:
        return fmt((1 if m == -1 else m, 0, 0))
    top = max(pool)
    if top[2] >= INT32_MAX:
        raise Conflict(f"No patch number is left after {fmt(top)}.", code="Conflict", target="versioning")
    return fmt((top[0], top[1], top[2] + 1))
