"""Storage of case records: MongoDB keeps each record once, Redis keeps the views.

Both paths store through `Storage`. A store writes MongoDB first; a duplicate
key there means an earlier attempt already inserted the document, which is
fine. Then one Lua script adds the record_id to COUNTED_IDS and, only when the
id is new to that set, updates every view. So a retry after a failure at any
step stores the document once and counts it once.

A record counts as created when this call is the one that counted it in Redis:
if an earlier attempt inserted the document but failed before Redis, the retry
reports created=True, because the caller never saw the first attempt succeed.

A caller may also never retry: the gRPC client gives up at its deadline, and
a client without its own record_id cannot resend the same record. A failed
store may still have written the document (a Redis failure after the insert,
or an insert that MongoDB applied after pymongo gave up on it). So each
Storage remembers the records of failed stores for RECOUNT_WINDOW_S, and
`recount_uncounted` counts the views of those whose document exists. Store
calls run it every RECOUNT_INTERVAL_S while records wait. A process that
exits with records waiting leaves their views short until the same record_id
is stored again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import pymongo
import redis
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from pymongo.write_concern import WriteConcern
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from covid_common import metrics, names
from covid_common.record import CaseRecord, format_timestamp

logger = logging.getLogger(__name__)

LATEST_MAX = 100
# Seconds a failed store's record waits for its document to appear, so its
# views can be counted; MongoDB may apply an insert long after the client gave
# up on it, e.g. after the server was paused.
RECOUNT_WINDOW_S = 120.0
RECOUNT_INTERVAL_S = 1.0
# Records kept for recounting at most; beyond this the oldest are dropped.
UNCOUNTED_MAX = 10_000
# MongoDB's error code for a unique index violation.
DUPLICATE_KEY_CODE = 11000

# KEYS: COUNTED_IDS, TOTAL, BY_PATH, BY_LOCATION, BY_STATE, BY_INFECTED_TYPE,
#       BY_AGE_RANGE, LATEST.
# ARGV: the LATEST cap, then 7 values per record: record_id, path, location,
#       state, infected_type, age range label, record JSON.
# Returns one 1 (newly counted) or 0 (already counted) per record.
COUNT_SCRIPT = """
local cap = tonumber(ARGV[1])
local results = {}
local pushed = 0
for i = 2, #ARGV, 7 do
  if redis.call('SADD', KEYS[1], ARGV[i]) == 1 then
    redis.call('INCR', KEYS[2])
    redis.call('HINCRBY', KEYS[3], ARGV[i + 1], 1)
    redis.call('HINCRBY', KEYS[4], ARGV[i + 2], 1)
    redis.call('HINCRBY', KEYS[5], ARGV[i + 3], 1)
    redis.call('HINCRBY', KEYS[6], ARGV[i + 4], 1)
    redis.call('HINCRBY', KEYS[7], ARGV[i + 5], 1)
    redis.call('LPUSH', KEYS[8], ARGV[i + 6])
    pushed = pushed + 1
    results[#results + 1] = 1
  else
    results[#results + 1] = 0
  end
end
if pushed > 0 then
  redis.call('LTRIM', KEYS[8], 0, cap - 1)
end
return results
"""

COUNT_KEYS = (
    names.RedisKeys.COUNTED_IDS,
    names.RedisKeys.TOTAL,
    names.RedisKeys.BY_PATH,
    names.RedisKeys.BY_LOCATION,
    names.RedisKeys.BY_STATE,
    names.RedisKeys.BY_INFECTED_TYPE,
    names.RedisKeys.BY_AGE_RANGE,
    names.RedisKeys.LATEST,
)


class StorageError(Exception):
    """A store failed in MongoDB or Redis; retrying the same call is safe."""

    def __init__(self, store: str, record_ids: Sequence[str], cause: Exception):
        self.store = store
        self.record_ids = list(record_ids)
        self.cause = cause
        shown = ", ".join(self.record_ids[:5])
        more = (
            f" and {len(self.record_ids) - 5} more" if len(self.record_ids) > 5 else ""
        )
        super().__init__(f"{store} write failed for record_id {shown}{more}: {cause!r}")


@dataclass(frozen=True)
class _Uncounted:
    record: CaseRecord
    path: str
    stored_at: datetime
    expires: float  # time.monotonic()


def durable_write_concern(configured: WriteConcern) -> WriteConcern:
    """Return the write concern for stores: the URL's, else majority and journaled.

    The router returns 201 once a record is stored, so an acknowledged insert
    must survive a crash of the database server. Without `j`, a server may
    acknowledge an insert before its journal reaches the disk: SecantusDB
    0.7.0b3 lost the last few acknowledged inserts when it was killed with
    SIGKILL under load. A standalone server treats "majority" as one node.
    """
    if not configured.is_server_default:
        return configured
    return WriteConcern(w="majority", j=True)


@dataclass(frozen=True)
class StoreResult:
    record_id: str
    created: bool


class Storage:
    """Writes records to MongoDB and the Redis views; shared by both paths."""

    def __init__(
        self,
        mongo_client: pymongo.MongoClient,
        mongo_db: str,
        redis_client: redis.Redis,
        latest_max: int = LATEST_MAX,
    ):
        self._mongo = mongo_client
        self._cases = mongo_client[mongo_db].get_collection(
            names.MONGO_CASES_COLLECTION,
            write_concern=durable_write_concern(mongo_client.write_concern),
        )
        self._redis = redis_client
        self._count_script = redis_client.register_script(COUNT_SCRIPT)
        self._latest_max = latest_max
        # record_id -> record of a failed store, oldest first.
        self._uncounted: dict[str, _Uncounted] = {}
        self._uncounted_lock = threading.Lock()
        # One recount at a time, so no record is counted by two threads.
        self._recount_lock = threading.Lock()
        self._last_recount = 0.0

    @classmethod
    def from_urls(cls, mongo_url: str, mongo_db: str, redis_url: str) -> Storage:
        """Build clients with short timeouts, so a dead store fails a call quickly."""
        mongo_client = pymongo.MongoClient(
            mongo_url,
            serverSelectionTimeoutMS=3000,
            connectTimeoutMS=2000,
            socketTimeoutMS=10000,
            tz_aware=True,
        )
        redis_client = redis.Redis.from_url(
            redis_url,
            socket_timeout=5,
            socket_connect_timeout=2,
            # redis-py 8 retries 10 times by default, which would hold a call
            # for seconds while Redis is down; callers retry the whole store.
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
        )
        return cls(mongo_client, mongo_db, redis_client)

    def ensure_indexes(self) -> None:
        """Create the unique index on record_id; a no-op when it exists."""
        self._cases.create_index("record_id", unique=True, name="record_id_unique")

    def check(self) -> None:
        """Ping MongoDB and Redis; raise StorageError naming the one that fails."""
        try:
            self._mongo.admin.command("ping")
        except PyMongoError as error:
            raise StorageError("mongo", [], error) from error
        try:
            self._redis.ping()
        except RedisError as error:
            raise StorageError("redis", [], error) from error

    def close(self) -> None:
        self._mongo.close()
        self._redis.close()

    def store(self, record: CaseRecord, path: str) -> bool:
        """Store one record delivered by `path`; return True when it is new.

        Raises StorageError; the caller may retry the same record.
        """
        self._recount_due(exclude=[record.record_id])
        stored_at = datetime.now(UTC)
        try:
            self._cases.insert_one(_document(record, path, stored_at))
        except DuplicateKeyError:
            pass
        except PyMongoError as error:
            metrics.STORAGE_ERRORS.labels(path, "mongo").inc()
            self._remember([record], path, stored_at)
            raise StorageError("mongo", [record.record_id], error) from error

        try:
            (created,) = self._count([record], path, stored_at)
        except StorageError:
            self._remember([record], path, stored_at)
            raise
        self._record_metrics([record], [created], path)
        return created

    def store_many(self, records: Sequence[CaseRecord], path: str) -> list[StoreResult]:
        """Store a batch with one insert_many and one script call.

        Returns one result per record, in order. Raises StorageError for any
        failure other than duplicate keys; retrying the whole batch is safe.
        """
        if not records:
            return []
        self._recount_due(exclude=[record.record_id for record in records])
        stored_at = datetime.now(UTC)
        documents = [_document(record, path, stored_at) for record in records]
        try:
            self._cases.insert_many(documents, ordered=False)
        except BulkWriteError as error:
            others = [
                failure
                for failure in error.details.get("writeErrors", [])
                if failure.get("code") != DUPLICATE_KEY_CODE
            ]
            if others or error.details.get("writeConcernErrors"):
                metrics.STORAGE_ERRORS.labels(path, "mongo").inc()
                self._remember(records, path, stored_at)
                ids = [record.record_id for record in records]
                raise StorageError("mongo", ids, error) from error
        except PyMongoError as error:
            metrics.STORAGE_ERRORS.labels(path, "mongo").inc()
            self._remember(records, path, stored_at)
            raise StorageError(
                "mongo", [r.record_id for r in records], error
            ) from error

        try:
            created = self._count(records, path, stored_at)
        except StorageError:
            self._remember(records, path, stored_at)
            raise
        self._record_metrics(records, created, path)
        return [
            StoreResult(record.record_id, flag)
            for record, flag in zip(records, created, strict=True)
        ]

    @property
    def uncounted(self) -> int:
        """Records of failed stores that still wait for recounting."""
        return len(self._uncounted)

    def recount_uncounted(self) -> int:
        """Count the views of failed stores' records whose document exists.

        Returns how many records this call counted. Records whose document is
        still missing wait until RECOUNT_WINDOW_S after their store, then are
        dropped: their store failed for good. Store failures leave the records
        waiting for the next call.
        """
        if not self._recount_lock.acquire(blocking=False):
            return 0
        try:
            return self._recount()
        finally:
            self._recount_lock.release()

    def _recount(self) -> int:
        with self._uncounted_lock:
            waiting = list(self._uncounted.values())
        if not waiting:
            return 0
        self._last_recount = time.monotonic()
        ids = [item.record.record_id for item in waiting]
        try:
            found = {
                document["record_id"]
                for document in self._cases.find(
                    {"record_id": {"$in": ids}}, {"record_id": 1, "_id": 0}
                )
            }
        except PyMongoError as error:
            logger.warning("recount of %d records postponed: %r", len(ids), error)
            return 0

        counted = 0
        for path in {item.path for item in waiting}:
            batch = [
                i for i in waiting if i.path == path and i.record.record_id in found
            ]
            if not batch:
                continue
            try:
                created = self._count(
                    [i.record for i in batch], path, batch[0].stored_at
                )
            except StorageError as error:
                logger.warning("recount of %d records postponed: %s", len(batch), error)
                return counted
            self._record_metrics([i.record for i in batch], created, path)
            counted += sum(created)
            self._forget(i.record.record_id for i in batch)
            logger.info(
                "counted %d of %d records whose store had failed, e.g. record_id=%s",
                sum(created),
                len(batch),
                batch[0].record.record_id,
            )

        now = time.monotonic()
        expired = [i.record.record_id for i in waiting if i.expires <= now]
        expired = [record_id for record_id in expired if record_id not in found]
        if expired:
            logger.info(
                "%d failed records never reached MongoDB, e.g. record_id=%s",
                len(expired),
                expired[0],
            )
            self._forget(expired)
        return counted

    def _recount_due(self, exclude: Sequence[str]) -> None:
        if not self._uncounted:
            return
        # The records of this call count as created when this call counts
        # them, so the recount leaves them to it.
        self._forget(exclude)
        if time.monotonic() - self._last_recount >= RECOUNT_INTERVAL_S:
            self.recount_uncounted()

    def _remember(
        self, records: Sequence[CaseRecord], path: str, stored_at: datetime
    ) -> None:
        expires = time.monotonic() + RECOUNT_WINDOW_S
        with self._uncounted_lock:
            for record in records:
                self._uncounted.pop(record.record_id, None)
                self._uncounted[record.record_id] = _Uncounted(
                    record, path, stored_at, expires
                )
            while len(self._uncounted) > UNCOUNTED_MAX:
                dropped = next(iter(self._uncounted))
                del self._uncounted[dropped]
                logger.warning("dropped record_id=%s from the recount list", dropped)

    def _forget(self, record_ids) -> None:
        with self._uncounted_lock:
            for record_id in record_ids:
                self._uncounted.pop(record_id, None)

    def _count(
        self, records: Sequence[CaseRecord], path: str, stored_at: datetime
    ) -> list[bool]:
        arguments: list[str | int] = [self._latest_max]
        for record in records:
            arguments += [
                record.record_id,
                path,
                record.location,
                record.state,
                record.infected_type,
                record.age_range,
                _latest_entry(record, path, stored_at),
            ]
        try:
            results = self._count_script(keys=COUNT_KEYS, args=arguments)
        except RedisError as error:
            metrics.STORAGE_ERRORS.labels(path, "redis").inc()
            ids = [record.record_id for record in records]
            raise StorageError("redis", ids, error) from error
        return [bool(flag) for flag in results]

    def _record_metrics(
        self, records: Sequence[CaseRecord], created: Sequence[bool], path: str
    ) -> None:
        now = time.time()
        new = sum(created)
        if new:
            metrics.RECORDS_STORED.labels(path).inc(new)
        if len(records) - new:
            metrics.RECORDS_DUPLICATE.labels(path).inc(len(records) - new)
        lag = metrics.RECORD_LAG.labels(path)
        for record, flag in zip(records, created, strict=True):
            if flag:
                lag.observe(max(0.0, now - record.received_ts))


def _document(record: CaseRecord, path: str, stored_at: datetime) -> dict:
    return {
        "record_id": record.record_id,
        "name": record.name,
        "location": record.location,
        "age": record.age,
        "infected_type": record.infected_type,
        "state": record.state,
        "path": path,
        "received_at": record.received_datetime,
        "stored_at": stored_at,
    }


def _latest_entry(record: CaseRecord, path: str, stored_at: datetime) -> bytes:
    entry = record.to_dict()
    entry["path"] = path
    entry["stored_at"] = format_timestamp(stored_at)
    return orjson.dumps(entry)
