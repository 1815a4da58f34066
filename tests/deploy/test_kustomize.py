"""deploy/kubernetes/ as `kubectl apply -k` sees it: every file listed by its folder's
kustomization, every reference resolving, and each entry point building the intended set."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.deploy.manifests import K8S, KUSTOMIZATION, build, key, kustomization, manifest_files

ENTRY_POINTS = {
    ".": "KEDA",
    "overlays/hpa": "HPA",
    "overlays/fleet": "KEDA",
}


def folders() -> list[Path]:
    return sorted(p.parent for p in K8S.rglob(KUSTOMIZATION))


def listed_files(folder: Path) -> set[Path]:
    spec = kustomization(folder)
    return {(folder / e).resolve() for e in spec.get("resources", []) if e.endswith(".yaml")}


def unlisted(paths: list[Path]) -> list[Path]:
    """Manifest files that no kustomization beside them lists."""
    return [
        path
        for path in paths
        if not (path.parent / KUSTOMIZATION).is_file()
        or path.resolve() not in listed_files(path.parent)
    ]


def test_every_manifest_file_is_listed_by_its_folder() -> None:
    assert unlisted(manifest_files()) == []


def test_every_listed_reference_exists_and_every_component_is_used() -> None:
    used: set[Path] = set()
    for folder in folders():
        spec = kustomization(folder)
        assert spec["kind"] in {"Kustomization", "Component"}
        for entry in [*spec.get("resources", []), *spec.get("components", [])]:
            target = (folder / entry).resolve()
            assert target.exists(), f"{folder}: {entry} does not exist"
            if target.is_dir():
                assert (target / KUSTOMIZATION).is_file(), f"{folder}: {entry} is no kustomization"
                used.add(target)
    components = {f.resolve() for f in folders() if kustomization(f)["kind"] == "Component"}
    assert components <= used


def test_components_are_only_used_as_components() -> None:
    for folder in folders():
        spec = kustomization(folder)
        for entry in spec.get("resources", []):
            target = (folder / entry).resolve()
            if target.is_dir():
                assert kustomization(target)["kind"] == "Kustomization", (folder, entry)


@pytest.mark.parametrize("entry, autoscaler", ENTRY_POINTS.items())
def test_entry_point_builds_one_of_each_object_and_one_autoscaler(
    entry: str, autoscaler: str
) -> None:
    objects = build(K8S / entry)
    keys = [key(obj) for obj in objects]
    assert len(keys) == len(set(keys)), f"{entry}: duplicate objects"
    kinds = {kind for kind, _ in keys}
    assert {"Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor"} <= kinds
    assert {"PrometheusRule"} <= kinds
    scalers = kinds & {"ScaledObject", "HorizontalPodAutoscaler"}
    assert scalers == {"ScaledObject" if autoscaler == "KEDA" else "HorizontalPodAutoscaler"}
    assert ("InferencePool" in kinds) == entry.endswith("fleet")


def test_an_unlisted_file_is_caught(tmp_path: Path) -> None:
    """The listing check on a copy whose kustomization forgot a file."""
    folder = tmp_path / "base"
    folder.mkdir()
    spec = kustomization(K8S / "base")
    for name in spec["resources"]:
        (folder / name).write_text((K8S / "base" / name).read_text())
    forgotten = spec["resources"].pop(0)
    (folder / KUSTOMIZATION).write_text(yaml.safe_dump(spec))
    files = [p for p in folder.glob("*.yaml") if p.name != KUSTOMIZATION]
    assert unlisted(files) == [folder / forgotten]
