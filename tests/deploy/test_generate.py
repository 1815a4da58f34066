"""deploy/'s files are registered with `inferwatch generate` and committed as rendered."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from deploy.generate import render
from inferwatch.commands import generate
from tests.deploy.manifests import K8S, REPO


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return render()


def test_deploy_generator_is_registered() -> None:
    assert "deploy.generate:render" in generate.GENERATORS


def test_committed_files_are_what_deploy_renders(rendered: dict[str, str]) -> None:
    drifted = [p for p, text in rendered.items() if (REPO / p).read_text() != text]
    assert not drifted, f"run `inferwatch generate`: {drifted}"


def test_no_stale_manifest_is_left_behind(rendered: dict[str, str]) -> None:
    on_disk = {str(p.relative_to(REPO)) for p in K8S.rglob("*.yaml")}
    assert on_disk == {p for p in rendered if p.startswith("deploy/kubernetes/")}


def test_every_generated_file_says_do_not_edit(rendered: dict[str, str]) -> None:
    assert all("Do not edit" in text.splitlines()[0] for text in rendered.values())


def test_generate_check_fails_on_a_drifted_deploy_file(tmp_path: Path) -> None:
    """The real `generate --check` over a tree holding every rendered file, then one edit."""
    for rel, text in generate.render_all().items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    args = argparse.Namespace(check=True, root=tmp_path)
    assert generate.run(args) == 0
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("restart: unless-stopped", "restart: no", 1))
    assert generate.run(args) == 1
