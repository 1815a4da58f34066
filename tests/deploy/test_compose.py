"""docker-compose.yml, validated by Debian's docker-compose v1 (`config -q` needs no engine),
and the compose wiring the validator cannot see: healthchecks, the webhook, the mounts."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import compose
from deploy import topology as t
from tests.deploy.manifests import REPO
from tests.deploy.tools import run

COMPOSE_FILE = REPO / "docker-compose.yml"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def config_q(folder: Path) -> tuple[int, str]:
    result = run("docker-compose", "--project-directory", str(folder), "-f",
                 str(folder / "docker-compose.yml"), "config", "-q")  # fmt: skip
    return result.returncode, result.stdout + result.stderr


def test_compose_file_is_valid() -> None:
    code, out = config_q(REPO)
    assert code == 0, out


def test_gpu_profile_is_valid_too() -> None:
    result = run("docker-compose", "-f", str(COMPOSE_FILE), "--profile", "gpu", "config",
                 "--services", cwd=REPO)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert t.COMPOSE_GPU_EXPORTER in result.stdout.split()


@pytest.mark.parametrize(
    "old, new, complaint",
    [
        ("restart: unless-stopped", "restartt: unless-stopped", "'restartt'"),  # a typo'd key
        ("depends_on:\n    - jaeger", "depends_on:\n    - jaegr", "'jaegr'"),  # unknown service
        ("- 127.0.0.1:9090:9090", "- {port: 9090}", "'port'"),  # a port of the wrong shape
    ],
)
def test_a_broken_copy_fails(tmp_path: Path, old: str, new: str, complaint: str) -> None:
    text = COMPOSE_FILE.read_text()
    assert old in text
    (tmp_path / "docker-compose.yml").write_text(text.replace(old, new, 1))
    code, out = config_q(tmp_path)
    assert code != 0, f"docker-compose accepted {new!r}"
    assert complaint in out


def test_every_service_has_a_healthcheck_and_a_restart_policy(spec: dict[str, Any]) -> None:
    for name, service in spec["services"].items():
        assert service["healthcheck"]["test"][0] == "CMD", name
        assert service["restart"] == "unless-stopped", name


def test_service_is_ready_checked_listens_beyond_loopback_and_traces_to_jaeger(
    spec: dict[str, Any],
) -> None:
    service = spec["services"][t.COMPOSE_SERVICE]
    assert t.READINESS_PATH in service["healthcheck"]["test"][-1]
    env = service["environment"]
    assert env["INFERWATCH_HOST"] == "0.0.0.0"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://{t.COMPOSE_JAEGER}:4318"
    jaeger = spec["services"][t.COMPOSE_JAEGER]
    assert {"127.0.0.1:4317:4317", "127.0.0.1:4318:4318", "127.0.0.1:16686:16686"} <= set(
        jaeger["ports"]
    )


def test_service_stop_grace_covers_its_drain(spec: dict[str, Any]) -> None:
    service = spec["services"][t.COMPOSE_SERVICE]
    env = service["environment"]
    given = float(env["INFERWATCH_SHUTDOWN_GRACE_SECONDS"]) + float(
        env["INFERWATCH_SPAN_FLUSH_SECONDS"]
    )
    needed = given + t.SHUTDOWN.cut_seconds + t.SHUTDOWN.close_seconds
    assert float(service["stop_grace_period"].removesuffix("s")) > needed


def test_prometheus_keeps_exemplars_and_mounts_what_its_config_reads(
    spec: dict[str, Any],
) -> None:
    prometheus = spec["services"][t.COMPOSE_PROMETHEUS]
    assert "--enable-feature=exemplar-storage" in prometheus["command"]
    mounts = dict(v.split(":")[:2] for v in prometheus["volumes"] if v.startswith("./"))
    assert mounts[f"./{t.PROMETHEUS_COMPOSE}"] == "/etc/prometheus/prometheus.yml"
    rules_dir = REPO / next(src for src, dst in mounts.items() if dst == t.COMPOSE_RULES_DIR)
    config = yaml.safe_load((REPO / t.PROMETHEUS_COMPOSE).read_text())
    for path in config["rule_files"]:
        assert (rules_dir / Path(path).relative_to(t.COMPOSE_RULES_DIR)).is_file(), path


def test_alertmanager_webhook_reaches_the_admin_endpoint_with_the_secret(
    spec: dict[str, Any],
) -> None:
    config = yaml.safe_load((REPO / t.ALERTMANAGER_COMPOSE).read_text())
    (receiver,) = [r for r in config["receivers"] if r["name"] == "service-webhook"]
    (webhook,) = receiver["webhook_configs"]
    assert webhook["url"] == f"http://{t.COMPOSE_SERVICE}:{t.SERVICE_PORT}/admin/alerts"
    token = webhook["http_config"]["authorization"]["credentials_file"]
    assert token == compose.SECRET_PATH
    for name in (t.COMPOSE_SERVICE, t.COMPOSE_ALERTMANAGER):
        assert compose.ADMIN_TOKEN_SECRET in spec["services"][name]["secrets"]
    env = spec["services"][t.COMPOSE_SERVICE]["environment"]
    assert env["INFERWATCH_ADMIN_TOKEN_FILE"] == token
    assert spec["secrets"][compose.ADMIN_TOKEN_SECRET]["file"].startswith("./deploy/secrets/")


def test_compose_alertmanager_config_passes_amtool() -> None:
    result = run("amtool", "check-config", str(REPO / t.ALERTMANAGER_COMPOSE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_mounts_the_dashboards_and_their_provisioning(spec: dict[str, Any]) -> None:
    """The dashboards' folders are another part's output; compose mounts them by path, and
    docker creates an empty folder for one that does not exist yet."""
    volumes = spec["services"][t.COMPOSE_GRAFANA]["volumes"]
    assert "./dashboards/provisioning:/etc/grafana/provisioning:ro" in volumes
    assert f"./dashboards/generated:{compose.GRAFANA_DASHBOARDS_DIR}:ro" in volumes


def test_gpu_exporter_is_optional_and_reserves_a_gpu(spec: dict[str, Any]) -> None:
    exporter = spec["services"][t.COMPOSE_GPU_EXPORTER]
    assert exporter["profiles"] == ["gpu"]
    (device,) = exporter["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]
    assert exporter["command"][:1] == ["exporter"]


def test_third_party_images_are_pinned(spec: dict[str, Any]) -> None:
    for name, service in spec["services"].items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), (name, image)


def test_compose_tool_missing_fails_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="install-system-deps.sh"):
        config_q(REPO)
