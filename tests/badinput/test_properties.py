"""Generated requests against the router with real paths and stores.

Hypothesis builds case objects that are mostly valid with some fields broken in
random ways. Whatever it sends, the router must not answer 5xx; an accepted
record is stored exactly once, and a rejected one not at all. The OpenAPI
schema at /openapi.json must accept every record the router accepts, and its
batch description must state the router's batch limits.
"""

from __future__ import annotations

import itertools
import json

import jsonschema
import pytest
from covid_common import names, record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from router.batch import MAX_BATCH_BODY_BYTES, MAX_BATCH_RECORDS
from router.openapi import OPENAPI_ROUTE, case_input_schema

from tests.integration.support import HTTP, sample_case
from tests.integration.test_batch import schema_validator
from tests.support.servers import wait_until

JSON = {"Content-Type": "application/json"}
_ids = itertools.count()
# record_ids the router accepted during the property test.
accepted: list[str] = []

any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy = any_json):
    """Draw from `good` nine times in ten, so many whole cases are valid."""
    return st.integers(0, 9).flatmap(lambda pick: good if pick else bad)


# Printable text of any script; control characters and overlong text come
# from any_json and from the length bound.
plain_text = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")),
    min_size=1,
    max_size=record.TEXT_MAX_CHARS + 5,
)
field_values = {
    "name": mostly(plain_text),
    "location": mostly(plain_text),
    "age": mostly(st.integers(min_value=-5, max_value=record.AGE_MAX + 5)),
    "infected_type": mostly(
        st.sampled_from(record.INFECTED_TYPES)
        | st.sampled_from([f" {t.upper()} " for t in record.INFECTED_TYPES])
    ),
    "state": mostly(st.sampled_from(record.STATES)),
}


@st.composite
def case_objects(draw) -> dict:
    """A case whose fields are each valid, missing or of any JSON value."""
    case = {}
    for field, values in field_values.items():
        if draw(st.integers(0, 19)) == 0:
            continue  # missing
        case[field] = draw(values)
    if draw(st.integers(0, 19)) == 0:
        case[draw(st.text(min_size=1, max_size=8))] = draw(any_json)
    return case


@pytest.fixture(scope="module")
def openapi(routers) -> dict:
    return HTTP.request("GET", routers["both"].url + OPENAPI_ROUTE).json()


def test_openapi_document_describes_cases(openapi):
    schema = openapi["components"]["schemas"]["CaseInput"]

    assert openapi["openapi"].startswith("3.")
    assert names.CASES_ROUTE in openapi["paths"]
    assert schema["required"] == list(record.INPUT_FIELDS)
    assert schema["properties"]["age"]["maximum"] == record.AGE_MAX
    assert schema["additionalProperties"] is False
    jsonschema.Draft202012Validator.check_schema(schema)


def test_openapi_batch_limits_match_router(openapi):
    operation = openapi["paths"][names.CASES_BATCH_ROUTE]["post"]
    schema = openapi["components"]["schemas"]["BatchInput"]
    array_form, object_form = schema["oneOf"]

    assert array_form["minItems"] == 1
    assert array_form["maxItems"] == MAX_BATCH_RECORDS
    assert array_form["items"] == {"$ref": "#/components/schemas/CaseInput"}
    assert object_form["required"] == ["records"]
    assert object_form["properties"]["records"] == array_form
    assert object_form["additionalProperties"] is False
    assert str(MAX_BATCH_BODY_BYTES) in operation["requestBody"]["description"]
    assert str(MAX_BATCH_BODY_BYTES) in operation["responses"]["413"]["description"]
    assert str(MAX_BATCH_RECORDS) in operation["responses"]["413"]["description"]
    assert set(operation["responses"]) == {"200", "400", "413", "415", "422"}
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator.check_schema(
        openapi["components"]["schemas"]["BatchReply"]
    )


def test_openapi_batch_schema_checks_shape(openapi):
    validator = schema_validator(openapi, "BatchInput")
    cases = [sample_case(record_id=f"s-{i}") for i in range(MAX_BATCH_RECORDS)]

    assert validator.is_valid(cases)
    assert validator.is_valid({"records": cases[:1]})
    assert not validator.is_valid([])
    assert not validator.is_valid(cases + [sample_case()])
    assert not validator.is_valid(sample_case())
    assert not validator.is_valid({"records": cases[:1], "mode": "fast"})
    assert not validator.is_valid([sample_case(age=-1)])


def test_batch_reply_matches_openapi(routers, openapi):
    cases = [
        sample_case(record_id="schema-1"),
        sample_case(record_id="schema-2"),
        sample_case(record_id="schema-1"),
        sample_case(state="sleepy"),
    ]

    response = HTTP.request(
        "POST",
        routers["both"].url + names.CASES_BATCH_ROUTE,
        body=json.dumps(cases).encode(),
        headers=JSON,
    )

    assert response.status == 200
    reply = response.json()
    assert [r["status"] for r in reply["results"]] == [201, 201, 200, 422]
    schema_validator(openapi, "BatchReply").validate(reply)


@settings(max_examples=300, deadline=None)
@given(case=case_objects())
def test_schema_accepts_what_validation_accepts(case):
    schema = case_input_schema()
    try:
        record.validate_case(case)
    except record.ValidationError:
        return
    jsonschema.validate(case, schema)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=case_objects())
def test_router_never_fails_on_generated_cases(routers, cases, case):
    record_id = f"prop-{next(_ids)}"
    sent = {**case, "record_id": record_id}

    response = HTTP.request(
        "POST",
        routers["both"].url + names.CASES_ROUTE,
        body=json.dumps(sent).encode(),
        headers=JSON,
    )

    assert response.status < 500, response.data
    assert response.headers["Content-Type"] == "application/json"
    answer = response.json()
    if response.status in (200, 201):
        accepted.append(record_id)
        wait_until(
            lambda: cases.count_documents({"record_id": record_id}) == 1,
            f"accepted record {record_id} stored",
            timeout_s=15,
        )
    else:
        assert response.status in (400, 422), answer
        assert answer["fields"], answer
        assert cases.count_documents({"record_id": record_id}) == 0


def test_generated_records_stored_once(routers, cases):
    # Runs after the property test in this module: every prop- id has at most
    # one document.
    ids = [doc["record_id"] for doc in cases.find({}, {"record_id": 1})]

    assert len(accepted) >= 20, "too few generated cases were valid"
    assert len(ids) == len(set(ids))
    assert set(accepted) <= set(ids)
