"""Reading deploy/kubernetes/ as kustomize would, without kustomize: the documents of a file,
and the objects a kustomization builds (resources and components, recursively)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "kubernetes"
KUSTOMIZATION = "kustomization.yaml"


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifest_files() -> list[Path]:
    """Every manifest file (kustomizations aside) under deploy/kubernetes."""
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != KUSTOMIZATION)


def kustomization(folder: Path) -> dict[str, Any]:
    return yaml.safe_load((folder / KUSTOMIZATION).read_text())


def build(folder: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize folder` emits (no patches or generators are used here)."""
    spec = kustomization(folder)
    objects: list[dict[str, Any]] = []
    for entry in [*spec.get("resources", []), *spec.get("components", [])]:
        target = (folder / entry).resolve()
        objects += build(target) if target.is_dir() else documents(target)
    return objects


def key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [obj for obj in objects if obj["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]
