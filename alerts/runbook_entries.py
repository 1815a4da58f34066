"""What the on-call reads for each alert: meaning, first checks, what automation does.

Kept apart from the thresholds in spec.py because it is prose; runbooks.py renders it together
with the numbers from the spec, so a threshold change shows up in the runbook by itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Runbook:
    meaning: str
    first_checks: tuple[str, ...]
    automation: str  # the dashboard link comes from alerts/dashboard_links.py, not from prose


_CONTROLLER = (
    'Alertmanager sends the alert to the service webhook (route `action=~".+"`), and the '
    "service's in-process evaluator (alerts/evaluator.py) runs the same rule every second over "
    "30 s windows, so the degradation controller usually hears of the breach before Prometheus "
    "does. It steps up one level (shed `batch`, cap `max_tokens`, shed `standard`, tighten "
    "concurrency) with a dwell time, and steps down after a longer cooldown once it clears."
)
_WEBHOOK_ONLY = (
    'Alertmanager sends the alert to the service webhook (route `action=~".+"`); the '
    "degradation controller steps up one level with a dwell time and steps down after a longer "
    "cooldown once the alert resolves. The in-process evaluator does not run static guards."
)


RUNBOOKS: dict[str, Runbook] = {
    "InferwatchTimeToFirstTokenAboveBaseline": Runbook(
        meaning="Users wait noticeably longer for the first token than they did an hour ago: "
        "prefill is contended (long prompts, a burst, preemptions) or requests queue.",
        first_checks=(
            "Compare queue wait and TTFT panels: queueing means too little capacity.",
            "Look at prompt-token rate and prefix-cache hit ratio for a change in workload.",
            "Open an exemplar of a slow bucket to see the trace's queue/prefill spans.",
        ),
        automation=_CONTROLLER,
    ),
    "InferwatchRequestLatencyAboveBaseline": Runbook(
        meaning="The slowest 1% of requests take much longer end to end than an hour ago: longer "
        "generations, slower decode steps, or preemptions.",
        first_checks=(
            "Check generation-token rate and max_tokens caps: longer answers are expected "
            "to be slower.",
            "Check engine step duration (decode) and batch size, and preemptions.",
            "Check GPU clock-event (throttle) reasons and temperature.",
        ),
        automation=_CONTROLLER,
    ),
    "InferwatchErrorRatioAboveBaseline": Runbook(
        meaning="A larger share of the requests this model served (completed or failed) fails "
        "than usual. Refusals (shedding, a full queue, oversized prompts) are neither failures "
        "nor served here, so the controller's own shedding can neither feed nor dilute it; they "
        "have InferwatchRefusalRatioHigh. It needs 5 failures in the window: one failure at "
        "night is no breach.",
        first_checks=(
            "Read the service log lines with outcome=failed for the error kind.",
            "Check GPU up/XID errors and KV-cache exhaustion around the start.",
            "Check for a deploy or a new client sending unusual requests.",
        ),
        automation=_CONTROLLER,
    ),
    "InferwatchInterTokenLatencyAboveBaseline": Runbook(
        meaning="Tokens stream more slowly than an hour ago (time per output token): the batch "
        "is bigger than the GPU decodes at its usual speed, or the GPU is slower (clocks, "
        "another tenant). Unlike whole-request latency, it does not follow answer length.",
        first_checks=(
            "Check running sequences and batch size against an hour ago.",
            "Check engine step duration (decode) and preemptions.",
            "Check GPU clock-event (throttle) reasons, temperature and utilisation.",
        ),
        automation=_CONTROLLER,
    ),
    "InferwatchQueueDepthAboveBaseline": Runbook(
        meaning="More requests wait than usual: arrivals exceed what the engine completes.",
        first_checks=(
            "Compare request rate per priority with an hour ago.",
            "Check KV-cache usage: a full cache stops admission even with an idle GPU.",
            "Check the admission concurrency limit and the degradation level.",
        ),
        automation=_CONTROLLER,
    ),
    "InferwatchQueueWaitAboveBaseline": Runbook(
        meaning="Requests wait longer to be scheduled than usual.",
        first_checks=(
            "Check the oldest waiting request's age per priority: starvation of batch "
            "traffic is expected under shedding; premium waiting is not.",
            "Check KV-cache usage and preemptions.",
        ),
        automation=_CONTROLLER,
    ),
    "InferwatchGPUSaturated": Runbook(
        meaning="A GPU has been more than 90% busy for a minute: no headroom for a burst.",
        first_checks=(
            "Check request rate and tokens per second against capacity.",
            "Check whether one model or priority dominates.",
        ),
        automation=_WEBHOOK_ONLY,
    ),
    "InferwatchKVCacheSaturated": Runbook(
        meaning="The KV cache is more than 90% full: new sequences will preempt running ones.",
        first_checks=(
            "Check preemptions and average sequence length.",
            "Check the prefix-cache hit ratio: a drop means more blocks per request.",
        ),
        automation=_WEBHOOK_ONLY,
    ),
    "InferwatchQueueDepthHigh": Runbook(
        meaning="More than 100 requests wait, whatever the baseline says.",
        first_checks=(
            "Same checks as InferwatchQueueDepthAboveBaseline.",
            "If it persists while shedding, add replicas (KEDA scales on queue depth).",
        ),
        automation=_WEBHOOK_ONLY,
    ),
    "InferwatchRequestLatencyHigh": Runbook(
        meaning="More than 1% of tokens have come more than the guard's gap (0.4 s by default, "
        "alerts/values.yml) after the previous one for 2 minutes: streams stutter. It watches "
        "the time per output token because a whole request's duration follows its answer's "
        "length (median 3 s, p99 over 20 s for ordinary chat traffic).",
        first_checks=(
            "Check engine step duration by phase: long prefills stall every decode in the batch.",
            "Check preemptions and KV-cache usage.",
            "Follow InferwatchInterTokenLatencyAboveBaseline's checks.",
        ),
        automation="None: this is a ticket. The baseline alert carries the action.",
    ),
    "InferwatchErrorRatioHigh": Runbook(
        meaning="More than 5% of the requests the model served (completed or failed), and at "
        "least 5 of them, have failed for 3 evaluations: users see errors now. Refused "
        "requests are not in the ratio, so heavy shedding cannot hide failures.",
        first_checks=(
            "Read the failing requests' log lines and traces.",
            "Check GPU up and XID errors; roll back a recent deploy.",
        ),
        automation="None beyond the baseline alert's `tighten_concurrency`; this one pages a "
        "human.",
    ),
    "InferwatchRefusalRatioHigh": Runbook(
        meaning="The service has refused more than 10% of arriving requests (full queue, open "
        "circuit) for 5 minutes: too little capacity for the traffic. The controller's own "
        "shedding is not counted (InferwatchDegradationActive says when it lasts), nor are "
        "the client's refusals (rate limits, oversized prompts).",
        first_checks=(
            "Read `model:inferwatch_request_rejections:ratio_rate5m` by reason.",
            "Compare arrivals with an hour ago; check replicas and the autoscaler.",
        ),
        automation="None: a ticket. Capacity is a human's (or the autoscaler's) decision.",
    ),
    "InferwatchHostCPUHigh": Runbook(
        meaning="The host CPU has been more than 85% busy for 5 minutes; tokenisation and the "
        "event loop slow down every request.",
        first_checks=("Check the process CPU of the service and of other processes.",),
        automation="None: ticket.",
    ),
    "InferwatchResourceUsageHigh": Runbook(
        meaning="GPU or host memory (label `resource`) has been more than 80% used for 10 minutes.",
        first_checks=(
            "GPU memory: check the KV-cache block count against the card.",
            "Host memory: check the service's resident memory for growth.",
        ),
        automation="None: ticket.",
    ),
    "InferwatchErrorBudgetBurn": Runbook(
        meaning="The SLO in label `slo` burns its error budget too fast, over both windows in "
        "labels `long_window`/`short_window`. At 14.4x a 30-day budget lasts about 2 days "
        "(2% spent in the hour), at 6x 5 days (5% in 6 h): both page. At 1x over 3 days it "
        "is a ticket (10% of the budget spent).",
        first_checks=(
            "availability: failed requests and server-side refusals (queue_full, shed, "
            "circuit_open) among what the service served or refused; see which reason dominates.",
            "ttft: share of requests whose first token took longer than 1 s.",
            "Check the baseline and static alerts firing for the same model: they say why.",
        ),
        automation="None directly; the baseline alerts behind the burn carry actions.",
    ),
    "InferwatchServiceDown": Runbook(
        meaning="Prometheus cannot scrape the service (`up == 0`) or has no target for it at all. "
        "Every per-model alert of that instance is inhibited meanwhile.",
        first_checks=(
            "Is the process running? Read its last log lines.",
            "Is /metrics answering (curl it) and is the scrape config right?",
        ),
        automation="None: nothing in the service can act when it is down.",
    ),
    "InferwatchGPUDown": Runbook(
        meaning="NVML fails on a host that reported a working GPU in the last 6 hours: the GPU "
        "fell off the bus, the driver crashed, or XID errors took it out.",
        first_checks=(
            "Check XID error counters and the kernel log.",
            "Check ECC errors; drain the node if the GPU does not come back.",
        ),
        automation="None.",
    ),
    "InferwatchDegradationActive": Runbook(
        meaning="The degradation controller has been above level 0 for 30 minutes: protection has "
        "become the normal state, so capacity does not match demand.",
        first_checks=(
            "Check which trigger (local, alertmanager, manual) raised the level.",
            "Add capacity or lower demand; check that the triggering alert still fires.",
        ),
        automation="The controller steps down by itself after its cooldown once triggers clear.",
    ),
    "InferwatchWatchdog": Runbook(
        meaning="Always firing. It goes to the dead-man's switch, which pages when it stops "
        "hearing it: Prometheus, Alertmanager or the network between them is broken.",
        first_checks=("Nothing to do while it fires; it must never be silenced.",),
        automation="It reaches the service webhook every minute too: when the other alerts' "
        "notifications stop while the Watchdog is silent as well, the degradation controller "
        "keeps its level frozen instead of relaxing it (the pipeline broke, not the breach); "
        "`GET /admin/degradation` shows `watchdog: heard | silent | never heard`.",
    ),
}
