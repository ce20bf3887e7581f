"""Reads of the stored cases: MongoDB for totals, pies and the table, Redis views
for the latest cases and the age ranges.

MongoDB is the record of what was stored, so the totals, the top locations and
the pies come from an aggregation over the `cases` collection. A `$group` over
the whole collection reads every document whatever the indexes, so callers cache
the `Summary` (see `live.cache`).

The table pages by keyset on (stored_at, record_id), newest first. Each page
queries only a time window behind its cursor, so it reads a bounded slice of the
stored_at index instead of sorting the whole collection.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pymongo
import redis
from covid_common import names
from covid_common.record import AGE_RANGE_LABELS, RECORD_ID_PATTERN, format_timestamp

logger = logging.getLogger(__name__)

TOP_LOCATIONS = 3
# Label of a group whose documents lack the grouped field.
MISSING_LABEL = "(missing)"

# Indexes the live queries use, by name: the table's keyset order. The unique
# index on record_id belongs to the storage module. No index is made for the
# location, state, infected_type and path groups: a whole-collection $group
# reads every document on MongoDB (improvement request SERVER-29444) and on
# SecantusDB 0.7 (measured), and every extra index slows the storage path's inserts.
INDEXES: Mapping[str, list[tuple[str, int]]] = {
    "stored_at_-1_record_id_-1": [
        ("stored_at", pymongo.DESCENDING),
        ("record_id", pymongo.DESCENDING),
    ],
}

# Time windows behind the cursor that a table page queries, narrowest first. The
# first window that contains a full page ends the search; None means no lower
# bound. SecantusDB reads every document in the window, so the first one is
# short: at 1,000 stored cases a second it contains about 1,000.
PAGE_WINDOWS = (
    timedelta(seconds=1),
    timedelta(minutes=1),
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=30),
    None,
)

CASE_FIELDS = (
    "record_id",
    "name",
    "location",
    "age",
    "infected_type",
    "state",
    "path",
    "received_at",
    "stored_at",
)
_PROJECTION = {"_id": 0, **dict.fromkeys(CASE_FIELDS, 1)}
_PAGE_SORT = [("stored_at", pymongo.DESCENDING), ("record_id", pymongo.DESCENDING)]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR_PATTERN = re.compile(r"(\d{1,15})~(.+)")


@dataclass(frozen=True)
class Summary:
    """Counts of the stored cases from one MongoDB aggregation."""

    total: int
    by_path: dict[str, int]
    # (location, count), most cases first; ties in name order.
    top_locations: list[tuple[str, int]]
    by_state: dict[str, int]
    by_infected_type: dict[str, int]
    # Latest stored_at in the collection, None when it is empty.
    newest_stored_at: datetime | None
    # When the aggregation started, and how long it took in seconds.
    as_of: datetime
    duration_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_path": self.by_path,
            "top_locations": [
                {"location": location, "count": count}
                for location, count in self.top_locations
            ],
            "by_state": self.by_state,
            "by_infected_type": self.by_infected_type,
            "newest_stored_at": (
                format_timestamp(self.newest_stored_at)
                if self.newest_stored_at
                else None
            ),
            "as_of": format_timestamp(self.as_of),
            "duration_s": round(self.duration_s, 4),
        }


@dataclass(frozen=True)
class PageCursor:
    """Position in the newest-first table: the last case shown on a page."""

    stored_at: datetime
    record_id: str

    def encode(self) -> str:
        milliseconds = (self.stored_at - _EPOCH) // timedelta(milliseconds=1)
        return f"{milliseconds}~{self.record_id}"

    @classmethod
    def decode(cls, text: str) -> PageCursor:
        """Parse "<unix milliseconds>~<record_id>"; raise ValueError if malformed."""
        match = _CURSOR_PATTERN.fullmatch(text)
        if not match or not RECORD_ID_PATTERN.fullmatch(match.group(2)):
            raise ValueError("must be <unix milliseconds>~<record_id> from next_before")
        try:
            moment = _EPOCH + timedelta(milliseconds=int(match.group(1)))
        except OverflowError:
            raise ValueError("has a time out of range") from None
        return cls(moment, match.group(2))


@dataclass(frozen=True)
class CasePage:
    cases: list[dict[str, Any]]
    # Cursor of the next (older) page, or None on the last page.
    next_before: str | None = None
    # Number of MongoDB queries the page took; each widened the time window.
    queries: int = field(default=1, compare=False)


class CaseReader:
    """Queries of the `cases` collection."""

    def __init__(self, client: pymongo.MongoClient, db_name: str):
        self._client = client
        self._cases = client[db_name][names.MONGO_CASES_COLLECTION]

    def ping(self) -> None:
        self._client.admin.command("ping")

    def ensure_indexes(self) -> None:
        """Create the indexes the live queries use; existing ones are left alone."""
        existing = self._cases.index_information()
        for name, keys in INDEXES.items():
            if name not in existing:
                started = time.monotonic()
                self._cases.create_index(keys, name=name)
                logger.info(
                    "created index %s in %.1f s", name, time.monotonic() - started
                )

    def summary(self) -> Summary:
        """Count the stored cases per path, location, state and infected type.

        One `$facet` pipeline reads the collection once for all four groups.
        """
        as_of = datetime.now(UTC)
        started = time.perf_counter()
        facets = {
            "by_path": _group("$path"),
            "by_state": _group("$state"),
            "by_infected_type": _group("$infected_type"),
            "top_locations": _group("$location")
            + [{"$sort": {"count": -1, "_id": 1}}, {"$limit": TOP_LOCATIONS}],
            "newest": [{"$group": {"_id": None, "at": {"$max": "$stored_at"}}}],
        }
        (result,) = list(self._cases.aggregate([{"$facet": facets}]))
        by_path = _counts(result["by_path"])
        newest = result["newest"][0]["at"] if result["newest"] else None
        return Summary(
            # Every document falls in exactly one path group, MISSING_LABEL included.
            total=sum(by_path.values()),
            by_path=by_path,
            top_locations=list(_counts(result["top_locations"]).items()),
            by_state=_counts(result["by_state"]),
            by_infected_type=_counts(result["by_infected_type"]),
            newest_stored_at=newest if isinstance(newest, datetime) else None,
            as_of=as_of,
            duration_s=time.perf_counter() - started,
        )

    def page(
        self,
        limit: int,
        before: PageCursor | None = None,
        newest: datetime | None = None,
    ) -> CasePage:
        """Return up to `limit` cases older than `before` (or the newest), newest first.

        For the first page, `newest` is the latest stored_at known, from the
        cached summary. The windows start there rather than at the current time,
        so an idle collection still finds a page in its first window.

        The keyset condition "older than (stored_at, record_id)" is asked as two
        queries, the cursor's own millisecond and then the time before it, because
        an $or or $nor of the two keeps SecantusDB 0.7 from using the index.
        """
        # Fetching one more than a page shows whether an older page exists.
        page_plus_one = limit + 1
        found: list[dict[str, Any]] = []
        queries = 0
        bounds: dict[str, Any] = {}
        reference = newest or datetime.now(UTC)
        if before is not None:
            queries += 1
            same_time = {"stored_at": before.stored_at}
            same_time["record_id"] = {"$lt": before.record_id}
            found = self._find(same_time, page_plus_one)
            bounds["$lt"] = before.stored_at
            reference = before.stored_at

        if len(found) < page_plus_one:
            older: list[dict[str, Any]] = []
            for window in PAGE_WINDOWS:
                queries += 1
                if window is not None:
                    bounds["$gte"] = reference - window
                else:
                    bounds.pop("$gte", None)
                older = self._find(
                    {"stored_at": dict(bounds)} if bounds else {},
                    page_plus_one - len(found),
                )
                if len(older) == page_plus_one - len(found):
                    break
            found += older

        cases = [case_json(document) for document in found[:limit]]
        next_before = None
        if len(found) > limit:
            last = found[limit - 1]
            if isinstance(last.get("stored_at"), datetime):
                stored_at = last["stored_at"]
                if stored_at.tzinfo is None:
                    stored_at = stored_at.replace(tzinfo=UTC)
                next_before = PageCursor(stored_at, last["record_id"]).encode()
        return CasePage(cases, next_before, queries)

    def _find(self, query: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        cursor = self._cases.find(query, _PROJECTION).sort(_PAGE_SORT).limit(limit)
        return list(cursor)


class RedisViews:
    """Reads of the real-time views that the storage module keeps in Redis."""

    def __init__(self, client: redis.Redis):
        self._redis = client

    def ping(self) -> None:
        self._redis.ping()

    def latest(self, count: int) -> list[dict[str, Any]]:
        """Return the newest `count` cases of the LATEST list, newest first."""
        entries = self._redis.lrange(names.RedisKeys.LATEST, 0, count - 1)
        cases = []
        for entry in entries:
            try:
                case = orjson.loads(entry)
            except orjson.JSONDecodeError as error:
                logger.warning("skipped a LATEST entry that is not JSON: %s", error)
                continue
            if isinstance(case, dict):
                cases.append({key: case.get(key) for key in CASE_FIELDS})
        return cases

    def age_ranges(self) -> dict[str, int]:
        """Return the count of every age range label, in age order, 0 when absent."""
        stored = self._redis.hgetall(names.RedisKeys.BY_AGE_RANGE)
        counts = {_text(key): _integer(value) for key, value in stored.items()}
        return {label: counts.get(label, 0) for label in AGE_RANGE_LABELS}


def case_json(document: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a `cases` document to JSON types: datetimes become ISO-8601 UTC."""
    case = {}
    for key in CASE_FIELDS:
        value = document.get(key)
        if isinstance(value, datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            value = format_timestamp(value)
        case[key] = value
    return case


def _group(field_path: str) -> list[dict[str, Any]]:
    return [{"$group": {"_id": field_path, "count": {"$sum": 1}}}]


def _counts(groups: list[Mapping[str, Any]]) -> dict[str, int]:
    """Turn $group output into {value: count}, most cases first, ties by value."""
    counts: dict[str, int] = {}
    for group in groups:
        key = MISSING_LABEL if group["_id"] is None else str(group["_id"])
        counts[key] = counts.get(key, 0) + int(group["count"])
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _integer(value: bytes | str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0
