"""Case records: the input the router accepts and the record the paths store.

Input rules, checked by `validate_case` (every problem is reported at once, keyed
by field name):

- Fields: name, location, age, infected_type, state are required; record_id is
  optional (null counts as absent). Any other field is rejected by name, and so
  are received_at, received_ts and path, which the router sets.
- name, location: strings. Text is normalised to Unicode NFC, leading and
  trailing whitespace (tabs and newlines included) is removed and each inner
  run of spaces becomes one space, so "  Guatemala   City " and "Guatemala
  City" count as one location. Inside the trimmed text, control characters
  (Unicode category Cc, so tabs and newlines too), lone surrogates (Cs) and
  line or paragraph separators (Zl, Zp) are rejected. The result is 1 to 100
  characters (code points) long.
- age: a JSON integer from 0 to 130. Booleans, floats (even 35.0), strings,
  NaN and infinities are rejected.
- infected_type: one of INFECTED_TYPES; state: one of STATES. Both are matched
  case-insensitively after trimming and stored in lower case.
- record_id: 1 to 64 characters from [A-Za-z0-9._:-]. It is the client's
  idempotency key; when absent the router assigns a uuid4 hex string.

The router then adds received_at (UTC ISO-8601 with milliseconds), received_ts
(the same instant as float unix seconds) and path, producing a `CaseRecord`.
The path services and the gRPC server check that full record with
`parse_record`, which applies the same rules plus checks on the added fields.
"""

from __future__ import annotations

import math
import re
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from covid_common import names

INFECTED_TYPES = ("communitary", "imported", "contact")
STATES = (
    "asymptomatic",
    "symptomatic",
    "mild",
    "moderate",
    "severe",
    "critical",
    "recovered",
    "deceased",
)

TEXT_MAX_CHARS = 100
AGE_MIN = 0
AGE_MAX = 130
RECORD_ID_MAX_CHARS = 64
RECORD_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")

INPUT_FIELDS = ("name", "location", "age", "infected_type", "state")
OPTIONAL_INPUT_FIELDS = ("record_id",)
# Fields the router adds; a client may not send them.
ROUTER_FIELDS = ("received_at", "received_ts", "path")
RECORD_FIELDS = ("record_id", *INPUT_FIELDS, *ROUTER_FIELDS)

# Age ranges of the Redis view BY_AGE_RANGE: "0-9", "10-19", ..., "80-89", "90+".
AGE_RANGE_LABELS = tuple(f"{low}-{low + 9}" for low in range(0, 90, 10)) + ("90+",)

_REJECTED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_WHITESPACE_RUN = re.compile(r"\s+")


class ValidationError(ValueError):
    """Invalid record; `fields` maps each bad field name to its problem."""

    def __init__(self, fields: Mapping[str, str]):
        self.fields = dict(fields)
        summary = "; ".join(
            f"{name}: {problem}" for name, problem in self.fields.items()
        )
        super().__init__(f"invalid record: {summary}")


@dataclass(frozen=True)
class CaseInput:
    """A validated client case, before the router assigns id, time and path."""

    name: str
    location: str
    age: int
    infected_type: str
    state: str
    record_id: str | None = None


@dataclass(frozen=True)
class CaseRecord:
    """A validated case as the router forwards it and the paths store it."""

    record_id: str
    name: str
    location: str
    age: int
    infected_type: str
    state: str
    # UTC ISO-8601 with milliseconds, e.g. "2024-05-01T12:00:00.123Z".
    received_at: str
    # The same instant as unix seconds.
    received_ts: float
    path: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def age_range(self) -> str:
        return age_range(self.age)

    @property
    def received_datetime(self) -> datetime:
        return parse_timestamp(self.received_at)


def validate_case(data: object) -> CaseInput:
    """Check a client's case object and return it normalised.

    Raises ValidationError naming every bad field.
    """
    if not isinstance(data, Mapping):
        raise ValidationError({"body": "must be a JSON object"})

    problems: dict[str, str] = {}
    allowed = set(INPUT_FIELDS) | set(OPTIONAL_INPUT_FIELDS)
    for key in data:
        if key not in allowed:
            problems[str(key)] = "unknown field"

    values = _check_case_fields(data, problems)

    record_id = data.get("record_id")
    if record_id is not None:
        problem = _record_id_problem(record_id)
        if problem:
            problems["record_id"] = problem

    if problems:
        raise ValidationError(problems)
    return CaseInput(**values, record_id=record_id)


def new_record(case: CaseInput, path: str, now: datetime | None = None) -> CaseRecord:
    """Build the record the router forwards: assign record_id, receipt time and path."""
    if path not in names.PATHS:
        raise ValueError(f"unknown path {path!r}; expected one of {names.PATHS}")
    now = now or datetime.now(UTC)
    return CaseRecord(
        record_id=case.record_id or uuid.uuid4().hex,
        name=case.name,
        location=case.location,
        age=case.age,
        infected_type=case.infected_type,
        state=case.state,
        received_at=format_timestamp(now),
        received_ts=now.timestamp(),
        path=path,
    )


def parse_record(data: object) -> CaseRecord:
    """Check a full record as the router forwards it (all RECORD_FIELDS required).

    Raises ValidationError naming every bad field.
    """
    if not isinstance(data, Mapping):
        raise ValidationError({"body": "must be a JSON object"})

    problems: dict[str, str] = {}
    for key in data:
        if key not in RECORD_FIELDS:
            problems[str(key)] = "unknown field"

    values = _check_case_fields(data, problems)

    record_id = data.get("record_id")
    problem = "is required" if record_id is None else _record_id_problem(record_id)
    if problem:
        problems["record_id"] = problem

    received_at = data.get("received_at")
    if received_at is None:
        problems["received_at"] = "is required"
    elif not isinstance(received_at, str):
        problems["received_at"] = "must be a string"
    else:
        try:
            parse_timestamp(received_at)
        except ValueError:
            problems["received_at"] = "must be a UTC ISO-8601 timestamp"

    received_ts = data.get("received_ts")
    if received_ts is None:
        problems["received_ts"] = "is required"
    elif isinstance(received_ts, bool) or not isinstance(received_ts, int | float):
        problems["received_ts"] = "must be a number"
    elif not math.isfinite(received_ts) or received_ts < 0:
        problems["received_ts"] = "must be a finite, non-negative number of seconds"

    path = data.get("path")
    if path is None:
        problems["path"] = "is required"
    elif path not in names.PATHS:
        problems["path"] = f"must be one of: {', '.join(names.PATHS)}"

    if problems:
        raise ValidationError(problems)
    return CaseRecord(
        record_id=record_id,
        **values,
        received_at=received_at,
        received_ts=float(received_ts),
        path=path,
    )


def age_range(age: int) -> str:
    """Return the BY_AGE_RANGE label of an age: "0-9", ..., "80-89" or "90+"."""
    if age >= 90:
        return "90+"
    low = (age // 10) * 10
    return f"{low}-{low + 9}"


def format_timestamp(moment: datetime) -> str:
    """Format an aware datetime as UTC ISO-8601 with milliseconds and a Z suffix."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO-8601 timestamp with a UTC offset into an aware UTC datetime.

    Raises ValueError for text without an offset or with a non-zero one.
    """
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None or moment.utcoffset().total_seconds() != 0:
        raise ValueError(f"timestamp {text!r} is not in UTC")
    return moment.astimezone(UTC)


def _check_case_fields(data: Mapping, problems: dict[str, str]) -> dict[str, Any]:
    """Check the five input fields, adding problems; return the normalised values."""
    values: dict[str, Any] = {}
    for field in ("name", "location"):
        text, problem = _normalise_text(data.get(field))
        if problem:
            problems[field] = problem
        values[field] = text

    age = data.get("age")
    if age is None:
        problems["age"] = "is required"
    elif isinstance(age, bool) or not isinstance(age, int):
        problems["age"] = "must be an integer"
    elif not AGE_MIN <= age <= AGE_MAX:
        problems["age"] = f"must be between {AGE_MIN} and {AGE_MAX}"
    values["age"] = age

    for field, choices in (("infected_type", INFECTED_TYPES), ("state", STATES)):
        choice, problem = _normalise_choice(data.get(field), choices)
        if problem:
            problems[field] = problem
        values[field] = choice
    return values


def _normalise_text(value: object) -> tuple[str, str | None]:
    if value is None:
        return "", "is required"
    if not isinstance(value, str):
        return "", "must be a string"
    text = value.strip()
    if any(unicodedata.category(char) in _REJECTED_CATEGORIES for char in text):
        return "", "must not contain control characters or line separators"
    text = _WHITESPACE_RUN.sub(" ", unicodedata.normalize("NFC", text))
    if not text:
        return "", "must not be empty"
    if len(text) > TEXT_MAX_CHARS:
        return "", f"must be at most {TEXT_MAX_CHARS} characters"
    return text, None


def _normalise_choice(
    value: object, choices: tuple[str, ...]
) -> tuple[str, str | None]:
    if value is None:
        return "", "is required"
    if not isinstance(value, str):
        return "", "must be a string"
    choice = value.strip().lower()
    if choice not in choices:
        return "", f"must be one of: {', '.join(choices)}"
    return choice, None


def _record_id_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if not RECORD_ID_PATTERN.fullmatch(value):
        return (
            f"must be 1 to {RECORD_ID_MAX_CHARS} characters from letters, digits "
            "and . _ : -"
        )
    return None
