"""OpenAPI 3.1 description of the router's API, built from the record rules.

Every limit and choice in the schema comes from covid_common.record, and the
batch limits from router.batch, so the description cannot drift from what
`validate_case` and `read_batch` accept. JSON Schema cannot
state every rule: text is trimmed and NFC-normalised before its length is
checked, control characters are rejected, and choices match case-insensitively
after trimming. The descriptions say so, and the schema's own limits are the
loosest ones that still hold (e.g. maxLength allows surrounding whitespace).
"""

from __future__ import annotations

from typing import Any

from covid_common import names, record

from router.batch import MAX_BATCH_BODY_BYTES, MAX_BATCH_RECORDS

OPENAPI_ROUTE = "/openapi.json"
API_VERSION = "1.0.0"

_TEXT_RULE = (
    "Trimmed, inner whitespace runs collapsed to one space and normalised to "
    f"Unicode NFC, then 1 to {record.TEXT_MAX_CHARS} characters. Control "
    "characters, lone surrogates and line or paragraph separators are rejected."
)


def _text(description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": 1,
        "description": f"{description} {_TEXT_RULE}",
    }


def _choice(description: str, choices: tuple[str, ...]) -> dict[str, Any]:
    # Input matches case-insensitively after trimming, so an enum would be too
    # strict for requests; the stored value is always one of `choices`.
    return {
        "type": "string",
        "description": (
            f"{description} One of: {', '.join(choices)} (case-insensitive, "
            "surrounding whitespace ignored; stored in lower case)."
        ),
        "examples": [choices[0]],
    }


def case_input_schema() -> dict[str, Any]:
    """Return the JSON Schema of the body of POST /cases."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(record.INPUT_FIELDS),
        "properties": {
            "name": _text("Patient name."),
            "location": _text("Where the case was found."),
            "age": {
                "type": "integer",
                "minimum": record.AGE_MIN,
                "maximum": record.AGE_MAX,
                "description": "Age in years. Floats such as 35.0 are rejected.",
            },
            "infected_type": _choice(
                "How the patient was infected.", record.INFECTED_TYPES
            ),
            "state": _choice("The patient's state.", record.STATES),
            "record_id": {
                "type": ["string", "null"],
                "pattern": f"^{record.RECORD_ID_PATTERN.pattern}$",
                "maxLength": record.RECORD_ID_MAX_CHARS,
                "description": (
                    "Idempotency key. Sending the same record_id again stores "
                    "nothing new. When absent or null the router assigns a "
                    "uuid4 hex string."
                ),
            },
        },
        "examples": [
            {
                "name": "Pablo Mendoza",
                "location": "Guatemala City",
                "age": 35,
                "infected_type": "communitary",
                "state": "asymptomatic",
            }
        ],
    }


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "description": "Machine-readable code."},
            "message": {"type": "string"},
            "fields": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "Field (or body, Content-Type) -> problem.",
            },
        },
    }


def _accepted_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["record_id", "path", "received_at"],
        "properties": {
            "record_id": {"type": "string"},
            "path": {"type": "string", "enum": list(names.PATHS)},
            "received_at": {
                "type": "string",
                "description": "UTC ISO-8601 with milliseconds.",
            },
            "duplicate": {"type": "boolean"},
        },
    }


def batch_input_schema() -> dict[str, Any]:
    """Return the JSON Schema of the body of POST /cases/batch."""
    items = {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_BATCH_RECORDS,
        # An invalid item gets its own 422 result, so this schema describes a
        # batch whose items are all valid.
        "items": {"$ref": "#/components/schemas/CaseInput"},
    }
    return {
        "description": (
            f"1 to {MAX_BATCH_RECORDS} cases, as a JSON array or as "
            '{"records": [...]}. Each item is checked like the body of POST '
            "/cases, and an invalid item gets a 422 result of its own while "
            "the others go on. A record_id repeated within the batch is sent "
            "once, and its later items are answered as duplicates."
        ),
        "oneOf": [
            items,
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["records"],
                "properties": {"records": items},
            },
        ],
    }


def _batch_reply_schema() -> dict[str, Any]:
    accepted = {
        "allOf": [
            {"$ref": "#/components/schemas/Accepted"},
            {
                "type": "object",
                "required": ["status"],
                "properties": {
                    "status": {
                        "enum": [200, 201],
                        "description": (
                            "201 stored or published, 200 a duplicate of a "
                            "stored record_id or of an earlier item."
                        ),
                    }
                },
            },
        ]
    }
    invalid = {
        "type": "object",
        "required": ["status", "error", "message", "fields"],
        "properties": {
            "status": {"const": 422},
            "error": {"const": "validation_failed"},
            "message": {"type": "string"},
            "fields": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    failed = {
        "type": "object",
        "required": ["status", "record_id", "path", "error", "message"],
        "description": (
            "The path failed for the item's chunk. The item may still have been "
            "stored, so resend it with the same record_id."
        ),
        "properties": {
            "status": {"enum": [502, 503, 504]},
            "record_id": {"type": "string"},
            "path": {"type": "string", "enum": list(names.PATHS)},
            "error": {"type": "string"},
            "message": {"type": "string"},
        },
    }
    count = {"type": "integer", "minimum": 0, "maximum": MAX_BATCH_RECORDS}
    return {
        "type": "object",
        "required": ["accepted", "rejected", "failed", "results"],
        "properties": {
            "accepted": {**count, "description": "Items with status 200 or 201."},
            "rejected": {**count, "description": "Items with status 422."},
            "failed": {**count, "description": "Items with status 502 to 504."},
            "results": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH_RECORDS,
                "description": "One result per item, in request order.",
                "items": {"oneOf": [accepted, invalid, failed]},
            },
        },
    }


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
        },
    }


def build_spec(max_body_bytes: int) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of the router."""
    accepted = {
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "COVID-19 case router",
            "version": API_VERSION,
            "description": (
                "Accepts case records, validates them and forwards each to the "
                "gRPC or the Redis path."
            ),
        },
        "paths": {
            names.CASES_ROUTE: {
                "post": {
                    "operationId": "postCase",
                    "summary": "Submit one case record.",
                    "requestBody": {
                        "required": True,
                        "description": f"At most {max_body_bytes} bytes.",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/CaseInput"}
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "Stored (gRPC path) or published.",
                            **accepted,
                        },
                        "200": {
                            "description": (
                                "The record_id was already stored (gRPC path)."
                            ),
                            **accepted,
                        },
                        "400": _error(
                            "Body not valid JSON, not an object, nested too "
                            "deeply or with a repeated key."
                        ),
                        "413": _error(f"Body larger than {max_body_bytes} bytes."),
                        "415": _error("Content-Type is not application/json."),
                        "422": _error("Invalid fields; each is named in fields."),
                        "502": _error("The path service could not be reached."),
                        "503": _error("The path service could not deliver."),
                        "504": _error("The path service did not answer in time."),
                    },
                }
            },
            names.CASES_BATCH_ROUTE: {"post": _batch_operation()},
            names.HEALTH_ROUTE: _probe("Liveness."),
            names.READY_ROUTE: _probe("Readiness: both path services answer."),
        },
        "components": {
            "schemas": {
                "CaseInput": case_input_schema(),
                "BatchInput": batch_input_schema(),
                "Accepted": _accepted_schema(),
                "BatchReply": _batch_reply_schema(),
                "Error": _error_schema(),
            }
        },
    }


def _batch_operation() -> dict[str, Any]:
    return {
        "operationId": "postCaseBatch",
        "summary": "Submit many case records; get one result per record.",
        "requestBody": {
            "required": True,
            "description": f"At most {MAX_BATCH_BODY_BYTES} bytes.",
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/BatchInput"}
                }
            },
        },
        "responses": {
            "200": {
                "description": (
                    "Every item has a result, whatever its status. The request "
                    "as a whole succeeded even when items were rejected or failed."
                ),
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/BatchReply"}
                    }
                },
            },
            "400": _error(
                "Body not valid JSON, nested too deeply, with a repeated key, "
                'neither an array nor an object with "records", or with fields '
                'other than "records".'
            ),
            "413": _error(
                f"Body larger than {MAX_BATCH_BODY_BYTES} bytes or more than "
                f"{MAX_BATCH_RECORDS} items."
            ),
            "415": _error("Content-Type is not application/json."),
            "422": _error("The batch contains no items."),
        },
    }


def _probe(summary: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "responses": {
                "200": {"description": "OK."},
                "503": {"description": "Not ready; failures names each problem."},
            },
        }
    }
