"""The generated Prometheus configurations, checked by the real promtool (Debian's 2.42)."""

from __future__ import annotations

from pathlib import Path

import yaml

from alerts.spec import SERVICE_JOB
from deploy import topology as t
from deploy.prometheus_config import prometheus_config
from tests.deploy.manifests import REPO
from tests.deploy.tools import run

LOCAL = REPO / t.PROMETHEUS_LOCAL
COMPOSE = REPO / t.PROMETHEUS_COMPOSE
RULES = sorted(str(p) for p in (REPO / "alerts" / "generated").glob("*.rules.yml"))


def check(config: Path, *flags: str) -> str:
    result = run("promtool", "check", "config", *flags, str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def checked_rules(out: str) -> list[str]:
    """The rule files promtool opened and found valid."""
    assert f"SUCCESS: {len(RULES)} rule files found" in out, out
    return sorted(line.split()[1] for line in out.splitlines() if line.startswith("Checking ")
                  and line.endswith(".rules.yml"))  # fmt: skip


def fails(config: Path, *flags: str) -> str:
    result = run("promtool", "check", "config", *flags, str(config))
    assert result.returncode != 0, f"promtool accepted {config}"
    return result.stdout + result.stderr


def test_local_config_passes_promtool_with_its_rule_files() -> None:
    assert checked_rules(check(LOCAL)) == RULES


def test_local_config_fails_where_its_rule_files_do_not_resolve(tmp_path: Path) -> None:
    moved = tmp_path / "prometheus.local.yml"
    moved.write_text(LOCAL.read_text())
    assert "rule" in fails(moved).lower()


def test_a_typo_in_a_key_fails(tmp_path: Path) -> None:
    broken = tmp_path / "prometheus.yml"
    broken.write_text(COMPOSE.read_text().replace("scrape_interval:", "scrape_intervall:"))
    assert "scrape_intervall" in fails(broken, "--syntax-only")


def test_compose_config_passes_promtool_with_the_rules_it_mounts(tmp_path: Path) -> None:
    """The compose config's rule paths point into the container; here, at the same files."""
    check(COMPOSE, "--syntax-only")
    local = tmp_path / "prometheus.yml"
    rules = str(REPO / "alerts" / "generated")
    local.write_text(COMPOSE.read_text().replace(t.COMPOSE_RULES_DIR, rules))
    assert checked_rules(check(local)) == RULES


def test_runner_entry_point_with_test_intervals(tmp_path: Path) -> None:
    """What `inferwatch stack up` will call: loopback URLs, 1 s intervals, no exporter."""
    text = prometheus_config(
        service_url="http://127.0.0.1:18000",
        exporter_url=None,
        alertmanager_url="http://127.0.0.1:19093",
        rule_files=RULES,
        scrape_interval=1,
        evaluation_interval=1,
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(text)
    check(config)
    document = yaml.safe_load(text)
    assert document["global"] == {"scrape_interval": "1s", "evaluation_interval": "1s"}
    assert [job["job_name"] for job in document["scrape_configs"]] == [SERVICE_JOB]


def test_every_variant_scrapes_the_job_the_rules_read() -> None:
    for path in (LOCAL, COMPOSE):
        jobs = {job["job_name"] for job in yaml.safe_load(path.read_text())["scrape_configs"]}
        assert jobs == {SERVICE_JOB, t.EXPORTER_JOB}, path
    assert f'up{{job="{SERVICE_JOB}"}}' in (REPO / "alerts/generated/guards.rules.yml").read_text()


def test_optional_gpu_exporter_is_found_by_dns_in_compose() -> None:
    jobs = {j["job_name"]: j for j in yaml.safe_load(COMPOSE.read_text())["scrape_configs"]}
    dns = jobs[t.EXPORTER_JOB]["dns_sd_configs"]
    assert dns == [{"names": [t.COMPOSE_GPU_EXPORTER], "type": "A", "port": t.EXPORTER_PORT}]
