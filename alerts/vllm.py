"""The same spec on vLLM's own metrics: a target that maps names, not a second spec.

The spec (alerts/spec.py) names its source metrics once, in inferwatch's vocabulary
(alerts/exposition.py). A vLLM fleet exports the same signals under other names and labels, so
the vLLM rule files are the spec's own rules with every name mapped (`rename`): the same
baselines (150% for 3 evaluations, own and fleet), burn rates, guards and runbook links. What
vLLM does not export is left out, never faked (`LACKS`): a rule that reads such a series is
dropped, and so is every rule that reads a series a dropped rule would have recorded.

vLLM lacks: anything per priority (its scheduler has priorities, its metrics do not), refusals
(it has no admission: a full queue just grows), HTTP answers before the engine, the degradation
controller, and GPU/host series (run inferwatch's exporter next to it for those). So the vLLM
availability SLO counts failed generations (`finished_reason="error"`) among served requests
only; the refusal ratio, its guard, the degradation alert and the GPU/host guards do not exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import yaml

from alerts.annotations import Links
from alerts.exposition import REQUESTS, SERVED
from alerts.rules import HEADER, render_rules
from alerts.sli import selector
from alerts.spec import PER_SERVICE_MODEL, SLOS, SPEC
from alerts.spec_types import SERVICE_JOB, SLO, Spec, Timing

VLLM_JOB = "vllm"  # the scrape job of the vLLM replicas
METRICS: dict[str, str] = {
    "inferwatch_time_to_first_token_seconds": "vllm:time_to_first_token_seconds",
    "inferwatch_inter_token_latency_seconds": "vllm:inter_token_latency_seconds",
    "inferwatch_request_duration_seconds": "vllm:e2e_request_latency_seconds",
    "inferwatch_queue_wait_seconds": "vllm:request_queue_time_seconds",
    "inferwatch_queue_depth": "vllm:num_requests_waiting",
    "inferwatch_requests_running": "vllm:num_requests_running",
    "inferwatch_kv_cache_usage_ratio": "vllm:kv_cache_usage_perc",  # a 0..1 fraction
    "inferwatch_requests_total": "vllm:request_success_total",
    "inferwatch_preemptions_total": "vllm:num_preemptions_total",
    "inferwatch_prefix_cache_hits_total": "vllm:prefix_cache_hits_total",
    "inferwatch_prefix_cache_queries_total": "vllm:prefix_cache_queries_total",
    "inferwatch_prompt_tokens_total": "vllm:prompt_tokens_total",
    "inferwatch_generation_tokens_total": "vllm:generation_tokens_total",
}
LABELS = {"model": "model_name", "outcome": "finished_reason"}
# inferwatch's outcomes as vLLM's finish reasons (vllm/v1/engine FinishReason). `rejected` has
# none: vLLM refuses nothing, so a matcher on it drops its rule or panel.
OUTCOMES: dict[str, tuple[str, ...]] = {
    "completed": ("stop", "length", "repetition"),
    "failed": ("error",),
    "cancelled": ("abort",),
}
# Prefixes of inferwatch families with no vLLM counterpart (what a rule reading them loses).
LACKS = (
    "inferwatch_request_rejections", "inferwatch_http_responses", "inferwatch_degradation",
    "inferwatch_admission", "inferwatch_alert_notifications", "inferwatch_gpu", "inferwatch_host",
    "inferwatch_queue_oldest", "inferwatch_engine_step", "inferwatch_batch_size",
    "inferwatch_kv_cache_blocks", "inferwatch_exporter",
)  # fmt: skip
GENERATED = "alerts/generated-vllm"  # not alerts/generated/: deploy/ loads every file there
HEADER_VLLM = HEADER.replace("alerts/spec.py", "alerts/spec.py for vLLM (alerts/vllm.py)")

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[A-Za-z_:][A-Za-z0-9_:]*')
# A dashboard link: the vLLM boards are the same boards, uid and title marked (dashboards/vllm.py).
_BOARD_LINK = re.compile(r"/d/inferwatch-([a-z-]+)/inferwatch-")
_OUTCOME_MATCH = re.compile(r'\boutcome\s*(=~|!=|=)\s*"([^"]*)"')


class Unmapped(ValueError):
    """The expression reads something vLLM does not export."""


def _outcome_matcher(m: re.Match[str]) -> str:
    op, values = m.group(1), m.group(2).split("|")
    if op == "!=" or any(v not in OUTCOMES for v in values):
        raise Unmapped(f"outcome {op} {m.group(2)}")
    reasons = [r for v in values for r in OUTCOMES[v]]
    return f'finished_reason{"=" if len(reasons) == 1 else "=~"}"{"|".join(reasons)}"'


def _name(token: str) -> str:
    for suffix in ("_bucket", "_count", "_sum", ""):
        stem = token.removesuffix(suffix) if suffix else token
        if suffix and stem == token:
            continue
        if stem in METRICS:
            return METRICS[stem] + suffix
    if token.startswith("inferwatch_") or any(token.startswith(p) for p in LACKS):
        raise Unmapped(token)
    if ":" in token:  # a recorded name: level:metric:operation, its metric renamed
        level, _, rest = token.partition(":")
        metric, sep, ops = rest.partition(":")
        if metric.startswith("inferwatch_"):
            return f"{level}:{metric.replace('inferwatch_', 'vllm_', 1)}{sep}{ops}"
    return LABELS.get(token, token)


def rename(expr: str) -> str:
    """`expr` over vLLM's names and labels; Unmapped when it reads what vLLM lacks."""
    expr = _OUTCOME_MATCH.sub(_outcome_matcher, expr)
    expr = expr.replace(f'job="{SERVICE_JOB}"', f'job="{VLLM_JOB}"')
    return _TOKEN.sub(lambda m: m.group() if m.group().startswith('"') else _name(m.group()), expr)


def rename_text(text: str) -> str:
    """Annotations and legends: Go/Grafana templates over the renamed labels."""
    for old, new in LABELS.items():
        text = re.sub(rf"(\$labels\.|\{{\{{){old}\b", rf"\g<1>{new}", text)
    text = _BOARD_LINK.sub(r"/d/inferwatch-vllm-\g<1>/inferwatch-for-vllm-", text)
    return text.replace(f"job {SERVICE_JOB}", f"job {VLLM_JOB}")


def _availability() -> SLO:
    """The availability SLO without the parts vLLM cannot count (refusals, pre-engine 5xx)."""
    base = next(slo for slo in SLOS if slo.name == "availability")
    by = ", ".join(PER_SERVICE_MODEL)
    served = selector(REQUESTS, ("outcome", SERVED))
    return replace(
        base,
        bad=f'sum by ({by}) ({{fn}}({REQUESTS}{{outcome="failed"}}[{{window}}]))',
        total=f"sum by ({by}) ({{fn}}({served}[{{window}}]))",
        what="requests vLLM failed (finished_reason error) among those it served",
    )


def vllm_spec(spec: Spec = SPEC) -> Spec:
    slos = tuple(_availability() if s.name == "availability" else s for s in spec.slos)
    return replace(spec, slos=slos)


@dataclass
class _Dropped:
    records: set[str]
    rules: list[str]


def _rule(rule: dict[str, Any], dropped: _Dropped) -> dict[str, Any] | None:
    try:
        expr = rename(rule["expr"])
    except Unmapped as exc:
        dropped.rules.append(f"{rule.get('record') or rule.get('alert')}: {exc}")
        if "record" in rule:
            dropped.records.add(rule["record"])
        return None
    if any(name in rule["expr"] for name in dropped.records):
        dropped.rules.append(f"{rule.get('record') or rule.get('alert')}: reads a dropped record")
        if "record" in rule:
            dropped.records.add(rule["record"])
        return None
    out = {**rule, "expr": expr}
    if "record" in rule:
        out["record"] = _name(rule["record"])
    if "annotations" in rule:
        out["annotations"] = {k: rename_text(v) for k, v in rule["annotations"].items()}
    return out


def render_vllm_rules(
    links: Links | str, spec: Spec = SPEC, timing: Timing | None = None
) -> tuple[dict[str, str], list[str]]:
    """({file name: YAML}, what was dropped and why) at `timing` (the spec's Prometheus
    timing for the committed files; a test's faster one keeps the same record names)."""
    dropped = _Dropped(set(), [])
    files: dict[str, str] = {}
    rendered = render_rules(vllm_spec(spec), timing or spec.prometheus, links)
    for name, text in rendered.items():
        groups = []
        for group in yaml.safe_load(text)["groups"]:
            rules = [r for r in (_rule(rule, dropped) for rule in group["rules"]) if r is not None]
            groups.append({**group, "name": group["name"].replace("inferwatch-", "vllm-"),
                           "rules": rules})  # fmt: skip
        files[name] = HEADER_VLLM + yaml.safe_dump(
            {"groups": groups}, sort_keys=False, width=4096, allow_unicode=True
        )
    return files, dropped.rules
