"""Which exported metric families the rules query, so a rename cannot break an alert silently.

A deliberately small PromQL scanner: strings, label matchers, grouping clauses and durations are
removed, then every identifier that is not a function, keyword or recording rule is a metric.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import yaml

from alerts.rules import render_rules
from alerts.spec import Spec
from alerts.values import load_values

# Series Prometheus makes itself; rules may use them without any exporter.
BUILTINS = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds"})
KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
     "offset", "bool", "inf", "nan", "atan2", "topk", "bottomk", "count_values", "quantile"}
)  # fmt: skip
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_NUMBER = re.compile(r"(?<![\w:])\d[\w.]*")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*(?!\s*\()")
_FUNCTION = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\s*\(")


def expr_metrics(expr: str) -> set[str]:
    """Metric names in one expression; recording rules (names with ':') are left out."""
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _FUNCTION.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names = set()
    for name in _IDENT.findall(text):
        if name in KEYWORDS or ":" in name or name in BUILTINS:
            continue
        names.add(name)
    return names


def recording_refs(expr: str) -> set[str]:
    """Recording rules (level:metric:operation) an expression reads."""
    text = _FUNCTION.sub(" ", _RANGE.sub(" ", _MATCHERS.sub(" ", _STRING.sub(" ", expr))))
    return {name for name in _IDENT.findall(text) if name.count(":") == 2}


def family(name: str) -> str:
    """Map a histogram's _bucket/_sum/_count series to the family name the catalog defines."""
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def _exprs_of_files(paths: Iterable[Path | str]) -> list[str]:
    exprs = []
    for path in paths:
        for group in (yaml.safe_load(Path(path).read_text()) or {}).get("groups", []):
            exprs += [rule["expr"] for rule in group.get("rules", [])]
    return exprs


def referenced_metrics(rule_files_or_spec: Spec | Iterable[Path | str]) -> set[str]:
    """Exported metric families every rule expression needs, across the given rules."""
    if isinstance(rule_files_or_spec, Spec):
        spec = rule_files_or_spec
        documents = render_rules(spec, spec.prometheus, load_values().runbook_url_base).values()
        exprs = [
            rule["expr"]
            for text in documents
            for group in yaml.safe_load(text)["groups"]
            for rule in group["rules"]
        ]
    else:
        exprs = _exprs_of_files(rule_files_or_spec)
    return {family(name) for expr in exprs for name in expr_metrics(expr)}
