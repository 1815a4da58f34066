"""The files other generators render that deploy/ builds on: rule files and dashboards.

They are rendered afresh rather than read from disk, so after a change to the alert spec or a
dashboard one `inferwatch generate` updates the PrometheusRule and the dashboard ConfigMaps too
(reading the committed files would leave them one run behind). A pattern that no registered
generator renders yet (the dashboards, while their generator is being built) falls back to the
files on disk, and to nothing when there are none.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from fnmatch import fnmatch
from functools import cache
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
RULE_FILES = "alerts/generated/*.rules.yml"
DASHBOARDS = "dashboards/generated/*.json"


@cache
def _rendered() -> dict[str, str]:
    """Every file the generators outside deploy/ render, once per process."""
    from inferwatch.commands.generate import GENERATORS

    files: dict[str, str] = {}
    for ref in GENERATORS:
        module_name, func_name = ref.split(":")
        if module_name.split(".")[0] == __package__:
            continue
        func: Callable[[], dict[str, str]] = getattr(
            importlib.import_module(module_name), func_name
        )
        files.update(func())
    return files


def files(pattern: str, root: Path = ROOT) -> dict[str, str]:
    """{path relative to the root: text} of the files matching `pattern`, sorted by path."""
    found = {path: text for path, text in _rendered().items() if _matches(path, pattern)}
    if not found:
        found = {str(p.relative_to(root)): p.read_text() for p in root.glob(pattern)}
    return dict(sorted(found.items()))


def _matches(path: str, pattern: str) -> bool:
    """`pattern`'s glob on the file name, in exactly its folder (as Path.glob)."""
    where, what = PurePosixPath(path), PurePosixPath(pattern)
    return where.parent == what.parent and fnmatch(where.name, what.name)
