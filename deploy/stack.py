"""`inferwatch stack up`: the whole loop on loopback, from the generated configurations.

The service (on the default model, its admin webhook on with a token generated per run), the
standalone exporter, a real Prometheus (exemplar storage on, the generated rules, scraping both)
and a real Alertmanager (the generated routing tree, its webhook to the service's
`/admin/alerts` with that token), data and logs under one run folder. Without the Prometheus or
Alertmanager binaries it says what is missing and runs the rest. `--load` drives a demo workload
with `inferwatch bench` (a priority mix with a periodic overload) so something fires.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from alerts.alertmanager import config as alertmanager_config
from alerts.values import load_values
from deploy import topology as t
from deploy.prometheus_config import prometheus_config

ROOT = Path(__file__).resolve().parents[1]
INFERWATCH = str(Path(sys.executable).parent / "inferwatch")
PROMETHEUS = "prometheus"
ALERTMANAGER = ("prometheus-alertmanager", "alertmanager")  # Debian's name, upstream's


@dataclass
class StackConfig:
    run_dir: Path = Path(".run")
    service_port: int = t.SERVICE_PORT
    exporter_port: int = t.EXPORTER_PORT
    prometheus_port: int = t.PROMETHEUS_PORT
    alertmanager_port: int = t.ALERTMANAGER_PORT
    scrape_interval: float = 5.0
    evaluation_interval: float = 5.0
    load: bool = False
    load_rate: float = 4.0
    serve_args: list[str] = field(default_factory=list)
    ready_timeout: float = 300.0
    # A test's faster copy of the same rules (alerts.rules.render_rules with a faster Timing);
    # None: the committed alerts/generated/*.rules.yml.
    rule_files: list[Path] | None = None
    service_env: dict[str, str] = field(default_factory=dict)  # e.g. OTEL_* for a span sink
    # A test's faster clocks for the routing tree (its intervals); the identity by default.
    alertmanager_edit: Callable[[dict[str, Any]], dict[str, Any]] = lambda tree: tree


@dataclass
class Part:
    name: str
    argv: list[str]
    ready_url: str
    log: Path
    process: subprocess.Popen[bytes] | None = None


class Stack:
    def __init__(self, config: StackConfig, say: Callable[[str], None] = print) -> None:
        self.config = config
        self.say = say
        self.parts: list[Part] = []

    # -- configuration -------------------------------------------------------------------------
    def prepare(self) -> list[Part]:
        c = self.config
        run = c.run_dir.resolve()
        for sub in ("prometheus", "alertmanager"):
            (run / sub).mkdir(parents=True, exist_ok=True)
        token = run / "admin.token"
        token.write_text(secrets.token_urlsafe(32) + "\n")
        token.chmod(0o600)
        service = f"http://127.0.0.1:{c.service_port}"
        parts = [
            Part(
                "service",
                [INFERWATCH, "serve", "--port", str(c.service_port), *_admin_flag(token),
                 *c.serve_args],
                service + t.READINESS_PATH, run / "service.log",
            ),
            Part(
                "exporter",
                [INFERWATCH, "exporter", "--host", "127.0.0.1", "--port", str(c.exporter_port)],
                f"http://127.0.0.1:{c.exporter_port}{t.METRICS_PATH}", run / "exporter.log",
            ),
        ]  # fmt: skip
        alertmanager = _binary(*ALERTMANAGER)
        am_url = f"http://127.0.0.1:{c.alertmanager_port}"
        if alertmanager is None:
            self.say("alertmanager: not found (`make system-deps` installs it); not started")
        else:
            values = dataclasses.replace(
                load_values(),
                service_webhook_url=service + t.ADMIN_ALERTS_PATH,
                service_webhook_credentials_file=str(token),
            )
            (run / "alertmanager.yml").write_text(
                yaml.safe_dump(c.alertmanager_edit(alertmanager_config(values)), sort_keys=False)
            )
            parts.append(
                Part(
                    "alertmanager",
                    [alertmanager, f"--config.file={run / 'alertmanager.yml'}",
                     f"--storage.path={run / 'alertmanager'}",
                     f"--web.listen-address=127.0.0.1:{c.alertmanager_port}",
                     "--cluster.listen-address="],
                    am_url + "/-/ready", run / "alertmanager.log",
                )
            )  # fmt: skip
        prometheus = _binary(PROMETHEUS)
        if prometheus is None:
            self.say("prometheus: not found (`make system-deps` installs it); not started")
        else:
            rules = [str(p) for p in c.rule_files or _committed_rules()]
            (run / "prometheus.yml").write_text(
                prometheus_config(
                    service + t.METRICS_PATH,
                    f"http://127.0.0.1:{c.exporter_port}{t.METRICS_PATH}",
                    am_url,
                    rules,
                    c.scrape_interval,
                    c.evaluation_interval,
                )
            )
            parts.append(
                Part(
                    "prometheus",
                    [prometheus, f"--config.file={run / 'prometheus.yml'}",
                     f"--storage.tsdb.path={run / 'prometheus'}",
                     f"--web.listen-address=127.0.0.1:{c.prometheus_port}",
                     *t.PROMETHEUS_FEATURE_FLAGS],
                    f"http://127.0.0.1:{c.prometheus_port}/-/ready", run / "prometheus.log",
                )
            )  # fmt: skip
        if c.load:
            parts.append(
                Part(
                    "load",
                    [INFERWATCH, "bench", "--base-url", service + "/v1",
                     "--rate", str(c.load_rate), "--duration", str(7 * 86400),
                     "--burst", "120,3,0.25", "--max-tokens", "48", "--max-retries", "2"],
                    "", run / "load.log",
                )
            )  # fmt: skip
        self.parts = parts
        return parts

    # -- lifetime ------------------------------------------------------------------------------
    def start(self) -> None:
        env = {**os.environ, "INFERWATCH_LOG_LEVEL": os.environ.get("INFERWATCH_LOG_LEVEL", "info")}
        for part in self.parts:
            if part.name == "load":
                self._wait_ready(self.parts[0])  # the bench asks the service for its model
            log = part.log.open("ab")
            own = {**env, **self.config.service_env} if part.name == "service" else env
            part.process = subprocess.Popen(
                part.argv, cwd=ROOT, env=own, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        for part in self.parts:
            if part.ready_url:
                self._wait_ready(part)
        c = self.config
        self.say(f"service:      http://127.0.0.1:{c.service_port} (OpenAI API under /v1)")
        self.say(f"exporter:     http://127.0.0.1:{c.exporter_port}/metrics")
        names = {p.name for p in self.parts}
        if "prometheus" in names:
            self.say(f"prometheus:   http://127.0.0.1:{c.prometheus_port}")
        if "alertmanager" in names:
            self.say(f"alertmanager: http://127.0.0.1:{c.alertmanager_port}")
        if "load" in names:
            self.say(
                f"load:         inferwatch bench at {c.load_rate}/s with 3x bursts "
                f"(log {c.run_dir}/load.log)"
            )
        self.say(f"data and logs under {c.run_dir}/; Ctrl-C stops everything")

    def _wait_ready(self, part: Part) -> None:
        deadline = time.monotonic() + self.config.ready_timeout
        while time.monotonic() < deadline:
            assert part.process is not None
            if part.process.poll() is not None:
                raise RuntimeError(
                    f"{part.name} exited ({part.process.returncode}); see {part.log}"
                )
            try:
                if httpx.get(part.ready_url, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{part.name} not ready within {self.config.ready_timeout:.0f} s")

    def wait(self) -> int:
        """Until Ctrl-C (0) or a part exits on its own (its exit code)."""
        try:
            while True:
                for part in self.parts:
                    assert part.process is not None
                    code = part.process.poll()
                    if code is not None:
                        self.say(f"{part.name} exited with {code}; see {part.log}")
                        return code or 1
                time.sleep(0.5)
        except KeyboardInterrupt:
            return 0

    def stop(self) -> None:
        """Load first, the service last (it drains: SIGTERM is a graceful stop everywhere)."""
        for part in sorted(self.parts, key=lambda p: p.name != "load"):
            if part.process is not None and part.process.poll() is None:
                part.process.send_signal(signal.SIGTERM)
        for part in self.parts:
            if part.process is None:
                continue
            try:
                part.process.wait(timeout=t.SHUTDOWN.grace_seconds)
            except subprocess.TimeoutExpired:
                part.process.kill()
                part.process.wait()


def _committed_rules() -> list[Path]:
    return sorted((ROOT / "alerts" / "generated").glob("*.rules.yml"))


def _admin_flag(token: Path) -> list[str]:
    """The service's admin token flag, where this build of the service has admin endpoints
    (the degradation controller's webhook); without it Alertmanager's webhook gets a 404."""
    probe = subprocess.run([INFERWATCH, "serve", "--help"], capture_output=True, text=True)
    return ["--admin-token-file", str(token)] if "--admin-token-file" in probe.stdout else []


def _binary(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None
