"""Microsoft's imagebuilder swagger, bundled into one self-contained document for schemathesis: the
definitions and parameters it borrows from ``common-types`` are copied in (refs rewritten), example links are
dropped, and ``api-version`` is pinned to the file's own version."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tests.conftest import spec_root

REL = "specification/imagebuilder/resource-manager/Microsoft.VirtualMachineImages/ImageBuilder/stable"


def swagger_path(version: str) -> Path | None:
    root = spec_root()
    if root is None:
        return None
    p = root / REL / version / "imagebuilder.json"
    return p if p.exists() else None


class _Bundler:
    def __init__(self, main: Path) -> None:
        self.main = main.resolve()
        self.docs: dict[Path, dict[str, Any]] = {}
        self.out: dict[str, Any] = json.loads(self.main.read_text())
        self.imported: set[tuple[Path, str, str]] = set()
        self.extra: dict[str, dict[str, Any]] = {}

    def doc(self, path: Path) -> dict[str, Any]:
        if path not in self.docs:
            self.docs[path] = json.loads(path.read_text())
        return self.docs[path]

    def local_name(self, path: Path, name: str) -> str:
        return name if path == self.main else f"{path.parent.name}_{name}"

    def rewrite(self, node: Any, base: Path) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k == "x-ms-examples":
                    continue
                if k == "$ref" and isinstance(v, str):
                    out[k] = self.ref(v, base)
                else:
                    out[k] = self.rewrite(v, base)
            return out
        if isinstance(node, list):
            return [self.rewrite(v, base) for v in node]
        return node

    def ref(self, ref: str, base: Path) -> str:
        file, _, pointer = ref.partition("#")
        target = (base.parent / file).resolve() if file else base
        section, name = pointer.strip("/").split("/", 1)
        local = self.local_name(target, name)
        key = (target, section, name)
        if target != self.main and key not in self.imported:
            self.imported.add(key)
            value = self.doc(target)[section][name]
            self.extra.setdefault(section, {})[local] = self.rewrite(copy.deepcopy(value), target)
        return f"#/{section}/{local}"

    def bundle(self, version: str) -> dict[str, Any]:
        for key in ("paths", "definitions", "parameters"):
            if key in self.out:
                self.out[key] = self.rewrite(self.out[key], self.main)
        for section, items in self.extra.items():
            self.out.setdefault(section, {}).update(items)
        # vmforge (like ARM's own front door) writes ``"target": null`` in errors that have no target; the
        # swagger types it as a plain string. Accepted here as the one known deviation.
        for name, d in self.out.get("definitions", {}).items():
            if "Error" in name and "target" in d.get("properties", {}):
                d["properties"]["target"]["x-nullable"] = True
        for name, p in list(self.out.get("parameters", {}).items()):
            if p.get("name") == "api-version":
                p.pop("minLength", None)
                p["enum"] = [version]
        return self.out


def bundled(version: str) -> dict[str, Any] | None:
    path = swagger_path(version)
    return _Bundler(path).bundle(version) if path else None
