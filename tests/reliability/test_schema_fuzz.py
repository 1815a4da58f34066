"""schemathesis against the running service's own `/openapi.json`, over real HTTP, with all
its checks: no server errors, every status documented, every response conforming to the
schema (so the schema tells the truth about errors). Bounded: FUZZ_EXAMPLES cases per
operation (`make reliability` raises it).

The operations are driven with hypothesis directly rather than through schemathesis' pytest
plugin, whose collection hook does not work with the pytest this project pins."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import positive_data_acceptance

from tests.support.service import serve, small_engine

CROSS_FIELD_CODES = {"context_length_exceeded", "empty_prompt"}
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
OPERATIONS = [
    "POST /v1/completions",
    "POST /v1/chat/completions",
    "GET /v1/models",
    "GET /health",
    "GET /ready",
]


@pytest.fixture(scope="module")
def api_schema() -> Iterator[schemathesis.BaseSchema]:
    # A short context keeps each generated request cheap; the fuzzer explores the rest.
    thread, _, _, _ = serve(small_engine(max_model_len=256))
    with thread as base_url:
        yield schemathesis.openapi.from_url(base_url + "/openapi.json")


def test_every_operation_is_fuzzed(api_schema: schemathesis.BaseSchema) -> None:
    labels = {op.ok().label for op in api_schema.get_all_operations()}
    assert set(OPERATIONS) <= labels, labels


@pytest.mark.parametrize("label", OPERATIONS)
def test_operation_conforms_to_its_own_schema(
    api_schema: schemathesis.BaseSchema, label: str
) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None
    cases = st.one_of(
        operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: schemathesis.Case) -> None:
        response = case.call(timeout=60)
        # Every schemathesis check but one: schema-valid data may still break a rule across
        # fields that JSON Schema cannot state (prompt + max_tokens within the context, some
        # text in the messages); such a 400 must say which, by its code.
        case.validate_response(response, excluded_checks=[positive_data_acceptance])
        positive = case.meta is not None and case.meta.generation.mode.is_positive
        if positive and response.status_code == 400:
            assert response.json()["error"]["code"] in CROSS_FIELD_CODES, response.text

    check()
