"""The PromQL reader the dashboards and their linter share (dashboards/promql.py), on the
shapes the spec's rules and the dashboards write."""

from __future__ import annotations

import pytest

from dashboards.promql import PromQLSyntaxError, parse, with_matchers

SLI = (
    "histogram_quantile(0.95, sum by (instance, job, model, le) "
    "(rate(inferwatch_time_to_first_token_seconds_bucket[$__rate_interval])))"
)


def test_selectors_know_their_range_and_the_function_they_are_the_argument_of() -> None:
    (bucket,) = parse(SLI).selectors
    assert (bucket.name, bucket.range, bucket.function) == (
        "inferwatch_time_to_first_token_seconds_bucket", "$__rate_interval", "rate",
    )  # fmt: skip
    parsed = parse('sum(x_total{a="b"}) / rate(y_total[5m] offset 1m) > 0.5 and on(c) z')
    assert [(s.name, s.function) for s in parsed.selectors] == [
        ("x_total", "sum"), ("y_total", "rate"), ("z", None),
    ]  # fmt: skip
    assert parsed.selectors[0].matcher("a").value == "b"  # type: ignore[union-attr]


def test_aggregations_keep_their_grouping_before_or_after_the_argument() -> None:
    (inner,) = parse(SLI).aggregations
    assert (inner.op, inner.grouping, inner.labels) == (
        "sum",
        "by",
        ("instance", "job", "model", "le"),
    )
    after = parse("sum(rate(x[1m])) by (priority) * on(instance) group_left(name) info")
    (agg,) = after.aggregations
    assert (agg.grouping, agg.labels, [s.name for s in agg.selectors]) == (
        "by", ("priority",), ["x"],
    )  # fmt: skip


def test_strings_and_braces_inside_matchers_are_not_selectors() -> None:
    parsed = parse('ALERTS{alertname=~"Inferwatch.*", le=~"1(\\\\.0)?"} or vector(1)')
    assert [s.name for s in parsed.selectors] == ["ALERTS"]


def test_with_matchers_adds_only_what_is_missing() -> None:
    expr = 'sum by (job) (rate(a_total{outcome="failed", job="x"}[5m]) or b) / c:d:e'
    out = with_matchers(expr, lambda name: {"job": "$job", "model": "$model"})
    assert out == (
        'sum by (job) (rate(a_total{outcome="failed", job="x", model=~"$model"}[5m]) or '
        'b{job=~"$job", model=~"$model"}) / c:d:e{job=~"$job", model=~"$model"}'
    )
    assert with_matchers("up", lambda name: {}) == "up"


@pytest.mark.parametrize("bad", ["sum(rate(x[5m])", "x)", "sum by (a", "a ? b"])
def test_what_is_not_promql_is_refused(bad: str) -> None:
    with pytest.raises(PromQLSyntaxError):
        parse(bad)
