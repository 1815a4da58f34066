"""`inferwatch generate [--check]`: write every generated file, or fail when one has drifted.

Generated files are committed so reviewers see the real YAML/JSON; each generator is a function
returning {path relative to the repository root: content}.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# "module:function" returning dict[str, str]; a part adds its generator here.
GENERATORS: list[str] = [
    "alerts.generate:render",
    "inference.telemetry.metrics_doc:render",
    "deploy.generate:render",  # Prometheus configs, docker-compose.yml, deploy/kubernetes
    "dashboards.generate:render",  # dashboards/generated/*.json, dashboards/provisioning
]


def render_all() -> dict[str, str]:
    files: dict[str, str] = {}
    for ref in GENERATORS:
        module_name, func_name = ref.split(":")
        module = importlib.import_module(module_name)
        func: Callable[[], dict[str, str]] = getattr(module, func_name)
        for path, content in func().items():
            if path in files:
                raise RuntimeError(f"two generators write {path}")
            files[path] = content
    return files


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="fail if a committed file differs")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root")


def run(args: argparse.Namespace) -> int:
    files = render_all()
    drifted = []
    for rel, content in sorted(files.items()):
        path = args.root / rel
        current = path.read_text() if path.exists() else None
        if current == content:
            continue
        if args.check:
            drifted.append(rel)
            diff = difflib.unified_diff(
                (current or "").splitlines(keepends=True),
                content.splitlines(keepends=True),
                fromfile=f"committed/{rel}",
                tofile=f"generated/{rel}",
            )
            sys.stdout.writelines(list(diff)[:40])
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            print(f"wrote {rel}")
    if drifted:
        print(f"generated files out of date: {', '.join(drifted)}; run `inferwatch generate`")
        return 1
    print(f"{len(files)} generated files {'up to date' if args.check else 'written'}")
    return 0
