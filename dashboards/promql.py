"""A small PromQL reader: the selectors, functions and aggregations of one expression, and the
same expression with variable matchers added to every selector.

The dashboards build their queries from the alert spec's own PromQL (SLIs, recorded names), so
`$job`, `$instance`, ... have to be added to text someone else wrote; and the dashboard linter
(tests/dashboards) asks of every query which metrics it reads, whether each counter sits inside
`rate()`, and what each aggregation keeps. One scanner serves both. It reads the PromQL the
dashboards write (and Grafana's `$variables` inside strings and ranges), not every corner of the
language: subqueries, `@` modifiers and unary minus on selectors are not needed here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

AGGREGATIONS = frozenset(
    {"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk",
     "quantile", "count_values"}
)  # fmt: skip
KEYWORDS = frozenset({"and", "or", "unless", "offset", "bool", "inf", "nan"})
GROUPINGS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})

_TOKEN = re.compile(
    r"""(?P<space>\s+|\#[^\n]*)
    |(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    |(?P<matchers>\{(?:[^}"'`]|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)*\})
    |(?P<range>\[[^\]]*\])
    |(?P<number>\d[\w.]*|\.\d[\w.]*)
    |(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    |(?P<lparen>\()|(?P<rparen>\))|(?P<comma>,)
    |(?P<op>=~|!~|==|!=|<=|>=|[-+*/%^<>=])""",
    re.VERBOSE,
)
_MATCHER = re.compile(
    r"""\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)\s*(,|$)"""
)


class PromQLSyntaxError(ValueError):
    """The text is not PromQL this reader understands."""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    start: int
    end: int


def tokens(expr: str) -> list[Token]:
    out, pos = [], 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if match is None:
            raise PromQLSyntaxError(f"cannot read {expr[pos : pos + 20]!r} in {expr!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            out.append(Token(kind, match.group(), match.start(), match.end()))
        pos = match.end()
    return out


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str  # as written, quotes removed


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """`{a="b", c=~"d"}` -> its matchers."""
    body, out, pos = text[1:-1], [], 0
    while body[pos:].strip():
        match = _MATCHER.match(body, pos)
        if match is None:
            raise PromQLSyntaxError(f"cannot read the matchers {text!r}")
        out.append(Matcher(match.group(1), match.group(2), match.group(3)[1:-1]))
        pos = match.end()
    return tuple(out)


@dataclass(frozen=True)
class Selector:
    """A series selector: `name{matchers}[range]`, and the function it is the whole argument of."""

    name: str
    matchers: tuple[Matcher, ...]
    range: str | None  # "5m", "$__rate_interval"; None for an instant selector
    function: str | None  # rate, increase, ... or an aggregation; None at the top or in operators
    name_end: int  # where `{...}` goes when the selector has none
    matchers_span: tuple[int, int] | None

    def matcher(self, label: str) -> Matcher | None:
        return next((m for m in self.matchers if m.label == label), None)


@dataclass
class Aggregation:
    op: str
    grouping: str | None = None  # "by" | "without"
    labels: tuple[str, ...] = ()
    selectors: list[Selector] = field(default_factory=list)  # everything it aggregates


@dataclass(frozen=True)
class Parsed:
    selectors: tuple[Selector, ...]
    aggregations: tuple[Aggregation, ...]
    functions: frozenset[str]


@dataclass
class _Frame:
    kind: str  # call | agg | paren
    name: str = ""
    aggregation: Aggregation | None = None


def _grouping_labels(toks: list[Token], i: int) -> tuple[tuple[str, ...], int]:
    """Labels of `by (a, b)` with toks[i] the `(`; returns them and the index after `)`."""
    labels, i = [], i + 1
    while i < len(toks) and toks[i].kind != "rparen":
        if toks[i].kind == "ident":
            labels.append(toks[i].text)
        i += 1
    if i >= len(toks):
        raise PromQLSyntaxError("unclosed grouping clause")
    return tuple(labels), i + 1


_NEXT = ("lparen", "ident")  # what follows an aggregation's name: `(`, or `by`/`without`


def _aggregation(toks: list[Token], i: int, expr: str) -> tuple[Aggregation, int]:
    """`sum by (a) (` at toks[i]: the aggregation, and the index after its `(`."""
    aggregation = Aggregation(toks[i].text.lower())
    j = i + 1
    if toks[j].kind == "ident" and toks[j].text in ("by", "without"):
        if j + 1 >= len(toks) or toks[j + 1].kind != "lparen":
            raise PromQLSyntaxError(f"{toks[i].text} {toks[j].text} needs (labels)")
        aggregation.grouping = toks[j].text
        aggregation.labels, j = _grouping_labels(toks, j + 1)
    if j >= len(toks) or toks[j].kind != "lparen":
        raise PromQLSyntaxError(f"{toks[i].text} needs an argument in {expr!r}")
    return aggregation, j + 1


def parse(expr: str) -> Parsed:
    """The selectors, aggregations and function names of one expression."""
    toks = tokens(expr)
    selectors: list[Selector] = []
    aggregations: list[Aggregation] = []
    functions: set[str] = set()
    stack: list[_Frame] = []

    def kind_at(j: int) -> str:
        return toks[j].kind if j < len(toks) else ""

    closed: Aggregation | None = None  # the aggregation whose `)` is the previous token
    i = 0
    while i < len(toks):
        tok = toks[i]
        just_closed, closed = closed, None
        if tok.kind == "ident" and tok.text in GROUPINGS:
            if kind_at(i + 1) != "lparen":  # group_left without labels
                i += 1
                continue
            labels, i = _grouping_labels(toks, i + 1)
            # `sum (x) by (a)`: a clause after the argument belongs to the aggregation that
            # just closed; on/ignoring/group_* belong to binary operators and keep no labels.
            if just_closed is not None and tok.text in ("by", "without"):
                just_closed.grouping, just_closed.labels = tok.text, labels
            continue
        if tok.kind == "ident" and tok.text.lower() in AGGREGATIONS and kind_at(i + 1) in _NEXT:
            aggregation, i = _aggregation(toks, i, expr)
            aggregations.append(aggregation)
            functions.add(aggregation.op)
            stack.append(_Frame("agg", aggregation.op, aggregation))
            continue
        if tok.kind == "ident" and kind_at(i + 1) == "lparen":
            functions.add(tok.text)
            stack.append(_Frame("call", tok.text))
            i += 2
            continue
        if tok.kind == "lparen":
            stack.append(_Frame("paren"))
        elif tok.kind == "rparen":
            if not stack:
                raise PromQLSyntaxError(f"unbalanced ) in {expr!r}")
            closed = stack.pop().aggregation
        elif tok.kind in ("ident", "matchers") and tok.text not in KEYWORDS:
            i = _selector(toks, i, stack, selectors)
            continue
        i += 1
    if stack:
        raise PromQLSyntaxError(f"unclosed ( in {expr!r}")
    return Parsed(tuple(selectors), tuple(aggregations), frozenset(functions))


def _selector(toks: list[Token], i: int, stack: list[_Frame], out: list[Selector]) -> int:
    """Reads the selector starting at toks[i]; returns the index after it."""
    start = i
    name, name_end = "", toks[i].start
    if toks[i].kind == "ident":
        name, name_end = toks[i].text, toks[i].end
        i += 1
    matchers: tuple[Matcher, ...] = ()
    span = None
    if i < len(toks) and toks[i].kind == "matchers":
        matchers, span = parse_matchers(toks[i].text), (toks[i].start, toks[i].end)
        i += 1
    range_ = None
    if i < len(toks) and toks[i].kind == "range":
        range_ = toks[i].text[1:-1].strip()
        i += 1
    if i + 1 < len(toks) and toks[i].text == "offset":
        i += 2
    function = None
    if stack and stack[-1].kind in ("call", "agg"):
        before = toks[start - 1].kind if start > 0 else ""
        after = toks[i].kind if i < len(toks) else ""
        if before in ("lparen", "comma") and after in ("rparen", "comma"):
            function = stack[-1].name
    selector = Selector(name, matchers, range_, function, name_end, span)
    out.append(selector)
    for frame in stack:
        if frame.aggregation is not None:
            frame.aggregation.selectors.append(selector)
    return i


def metric_names(expr: str) -> set[str]:
    return {s.name for s in parse(expr).selectors if s.name}


MatchersFor = Callable[[str], Mapping[str, str]]


def with_matchers(expr: str, matchers_for: MatchersFor) -> str:
    """`expr` with `label=~"value"` added to every selector, as `matchers_for(name)` says;
    a label the selector already matches on is left as written."""
    edits: list[tuple[int, int, str]] = []
    for selector in parse(expr).selectors:
        wanted = {
            label: value
            for label, value in matchers_for(selector.name).items()
            if selector.matcher(label) is None
        }
        if not wanted:
            continue
        added = ", ".join(f'{label}=~"{value}"' for label, value in wanted.items())
        if selector.matchers_span is None:
            edits.append((selector.name_end, selector.name_end, f"{{{added}}}"))
        else:
            start, end = selector.matchers_span
            inner = expr[start + 1 : end - 1].strip().rstrip(",")
            edits.append((start, end, f"{{{inner + ', ' if inner else ''}{added}}}"))
    for start, end, text in sorted(edits, reverse=True):
        expr = expr[:start] + text + expr[end:]
    return expr
