"""Every manifest under deploy/kubernetes against a schema: core kinds with kubernetes-validate
(the Kubernetes 1.37 OpenAPI schemas it ships, strict: unknown fields rejected), custom
resources with the small schemas of tests/deploy/cr_schemas.py; and each check failing on a
broken copy."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.deploy.cr_schemas import BY_KIND
from tests.deploy.manifests import K8S, documents, manifest_files

K8S_VERSION = "1.37.0"
CORE_GROUPS = {"", "apps", "policy", "autoscaling", "rbac.authorization.k8s.io"}


def group(obj: dict[str, Any]) -> str:
    return obj["apiVersion"].rpartition("/")[0]


def every_object() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.relative_to(K8S)}:{doc['kind']}/{doc['metadata']['name']}", doc)
        for path in manifest_files()
        for doc in documents(path)
    ]


OBJECTS = every_object()
CORE = [(name, obj) for name, obj in OBJECTS if group(obj) in CORE_GROUPS]
CUSTOM = [(name, obj) for name, obj in OBJECTS if group(obj) not in CORE_GROUPS]


def validate_core(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def validate_custom(obj: dict[str, Any]) -> None:
    jsonschema.validate(obj, BY_KIND[obj["kind"]])


def test_every_object_is_core_or_has_a_schema() -> None:
    assert {obj["kind"] for _, obj in CUSTOM} == set(BY_KIND)
    assert len(CORE) >= 10


@pytest.mark.parametrize("obj", [obj for _, obj in CORE], ids=[name for name, _ in CORE])
def test_core_manifest_is_valid(obj: dict[str, Any]) -> None:
    validate_core(obj)


@pytest.mark.parametrize("obj", [obj for _, obj in CUSTOM], ids=[name for name, _ in CUSTOM])
def test_custom_resource_has_its_crd_structure(obj: dict[str, Any]) -> None:
    validate_custom(obj)


def deployment() -> dict[str, Any]:
    (obj,) = documents(K8S / "base" / "deployment.yaml")
    return obj


def names_images(obj: dict[str, Any]) -> bool:
    pod = obj.get("spec", {}).get("template", {}).get("spec")
    return pod is None or all(c.get("image") for c in pod["containers"])


def test_every_container_names_an_image() -> None:
    """The API schema leaves `image` optional (for tools that fill it in), so a Deployment
    without one passes kubernetes-validate; one we apply as it is must name it."""
    assert all(names_images(obj) for _, obj in CORE)
    broken = _broken(deployment(), ["spec", "template", "spec", "containers", 0, "image"])
    validate_core(broken)
    assert not names_images(broken)


def _broken(obj: dict[str, Any], path: list[str | int], value: Any = None) -> dict[str, Any]:
    """A copy with the field at `path` deleted (value None) or replaced."""
    broken = copy.deepcopy(obj)
    where: Any = broken
    for step in path[:-1]:
        where = where[step]
    if value is None:
        del where[path[-1]]
    else:
        where[path[-1]] = value
    return broken


@pytest.mark.parametrize(
    "path, value",
    [
        (["spec", "selector"], None),  # required by apps/v1
        (["spec", "template", "spec", "terminationGracePeriod"], 45),  # a typo'd key
        (["spec", "template", "spec", "containers", 0, "ports", 0, "containerPort"], "8000"),
    ],
)
def test_kubernetes_validate_rejects_a_broken_deployment(path: list[str | int], value: Any) -> None:
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_core(_broken(deployment(), path, value))


def custom(kind: str) -> dict[str, Any]:
    (obj,) = [obj for _, obj in CUSTOM if obj["kind"] == kind]
    return obj


@pytest.mark.parametrize(
    "kind, path, value",
    [
        ("ServiceMonitor", ["spec", "selector"], None),
        ("ServiceMonitor", ["spec", "endpoints", 0, "intervall"], "15s"),
        ("PrometheusRule", ["spec", "groups", 0, "name"], None),
        ("PrometheusRule", ["spec", "groups", 0, "rules", 0, "expr"], None),
        ("ScaledObject", ["spec", "scaleTargetRef", "name"], None),
        ("ScaledObject", ["spec", "triggers", 0, "metadata", "threshold"], 10),
        ("InferencePool", ["spec", "targetPorts"], None),
        ("InferencePool", ["spec", "endpointPickerRef", "failureMode"], "FailSoft"),
    ],
)
def test_custom_resource_schema_rejects_a_broken_copy(
    kind: str, path: list[str | int], value: Any
) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate_custom(_broken(custom(kind), path, value))


def test_schemas_are_found_offline() -> None:
    """kubernetes-validate reads the schemas it ships: a kind it has none for is an error."""
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate_core({"apiVersion": "example.org/v1", "kind": "Nothing", "metadata": {}})
