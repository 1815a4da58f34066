"""Who each SLI counts: served requests, every arrival, failures among the served, refusals.

The histograms only hold what the service observed (alerts/exposition.py): time to first token
and queue wait for every request that got that far (cancelled ones too), request duration for
completed requests only. Refused requests are in none of them, so the traffic gate of the
latency SLIs counts served requests (completed or failed), and so does the error ratio's
denominator: 80% refusals must neither open the gate of an idle model nor dilute its failures.
Refusals have their own ratio, by reason, over every arrival.
"""

from __future__ import annotations

from alerts.exposition import REJECTIONS, REQUESTS, SERVED
from alerts.promql_text import number
from alerts.sli import CounterRate, CounterRatio
from alerts.spec_types import PER_MODEL, Record

SERVED_TRAFFIC = CounterRate(
    metric=REQUESTS, by=PER_MODEL, match=("outcome", SERVED), name="served"
)
ARRIVALS = CounterRate(metric=REQUESTS, by=PER_MODEL)  # every outcome, `rejected` included
ERROR_RATIO = CounterRatio(
    metric=REQUESTS, label="outcome", value="failed", op="error_ratio", by=PER_MODEL, among=SERVED
)
_BY = ", ".join(PER_MODEL)


def refusal_ratio(window: str, arrivals_record: str, min_rate: float) -> Record:
    """The share of arrivals refused, by `reason`, where enough requests arrive to mean it."""
    on = f"on({_BY})"
    return Record(
        record=f"model:{REJECTIONS.removesuffix('_total')}:ratio_rate{window}",
        expr=f"sum by ({_BY}, reason) (rate({REJECTIONS}[{window}])) / {on} group_left() "
        f"{arrivals_record} and {on} ({arrivals_record} >= {number(min_rate)})",
    )
