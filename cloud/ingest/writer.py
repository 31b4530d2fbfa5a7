"""The ingest writer: a batch of received MQTT messages → one database transaction.

For each batch, in one transaction:

1. births upsert the machine (assets) and the definitions of its series; statuses upsert the
   edge (online, session, health, clock skew = received - created);
2. every sequenced message (data, event, and a dead letter whose envelope is valid) claims its
   ``(edge, session, seq)`` in ``ingest_message`` with ``INSERT ... ON CONFLICT DO NOTHING
   RETURNING`` (on PostgreSQL one statement over ``unnest`` arrays); what is not returned was
   stored before (by us or by another worker) and is a duplicate: counted, acknowledged again,
   not stored again;
3. samples of claimed data messages go to the time-series store (COPY on PostgreSQL; the SQL
   store also keeps the per-minute roll-up ``ts_minute``, ``cloud.timeseries.rollup``: duplicates
   never reach it, late data lands in its own minute), latest values advance, events go to
   ``device_event``, dead letters to ``dead_letter``;
4. machine-state intervals are recomputed from the earliest new state sample of each machine.

The hot path is data messages: they are decoded into plain sample tuples
(``JsonCodec.decode_data_rows``), their topics parsed once and remembered, their series ids
cached per device, and the ``ts_sample`` rows built straight from the tuples for
``SqlTimeSeriesStore.write_rows``. A store that overrides ``write_batch`` gets ``Point`` objects
as before.

A message that breaks the wire contract never raises: it is dead-lettered with the reason. A
message that the database refuses (a value it cannot hold) is found by retrying the batch one
message at a time, and dead-lettered. Database outages raise ``DatabaseUnavailable``: the caller
keeps the batch and tries again later; nothing is acknowledged until it is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, exc, select, tuple_

from cloud.assets.models import Machine
from cloud.assets.service import upsert_machine_from_birth
from cloud.db import dialect_insert, table_of, writer_engine
from cloud.errors import CloudError
from cloud.ingest.models import DeadLetter, DeviceEvent, EdgeNode, IngestMessage
from cloud.machine_state.rules import compile_rules
from cloud.machine_state.service import recompute_states, recompute_states_from_rules
from cloud.timeseries.models import TsSeries
from cloud.timeseries.rollup import SampleRow
from cloud.timeseries.sql import SqlTimeSeriesStore
from cloud.timeseries.store import QUALITY_CODE, Point, TimeSeriesStore
from protocols import clock
from protocols.clock import now_ms
from protocols.errors import WireError
from protocols.wire import (
    AckMessage,
    BirthMessage,
    DataMessage,
    EventMessage,
    JsonCodec,
    Message,
    StatusMessage,
    Topic,
    TopicKind,
    Value,
    WireCodec,
    parse_topic,
)
from protocols.wire.codec import DataRows
from protocols.wire.topics import PREFIX, check_id

log = logging.getLogger(__name__)

_claims = table_of(IngestMessage)
_dead = table_of(DeadLetter)
_events = table_of(DeviceEvent)
_edges = table_of(EdgeNode)
_series = table_of(TsSeries)
_machines = table_of(Machine)

_MAX_ID = 64
_MAX_INT = 2**62
_INGESTED_KINDS = (TopicKind.DATA, TopicKind.EVENT, TopicKind.BIRTH, TopicKind.STATUS)
_TOPIC_CACHE_MAX = 10_000
_STATE_ROLES = ("state", "fault_code")
# On PostgreSQL the claim is one statement whatever the batch size, so psycopg prepares it once.
_CLAIM_PG = """
INSERT INTO ingest_message (edge, session, seq, site, device, kind, received_ms)
SELECT * FROM unnest(
    %b::text[], %b::text[], %b::int8[], %b::text[], %b::text[], %b::text[], %b::int8[]
)
ON CONFLICT (edge, session, seq) DO NOTHING
RETURNING edge, session, seq
"""

SeriesCache = dict[tuple[str, str], dict[str, int]]
"""Series ids by ``(edge, device)``, then by metric."""


class DatabaseUnavailable(CloudError):
    """The database could not be reached or refused service; the batch was not stored."""


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One MQTT message as the worker received it."""

    topic: str
    payload: bytes
    received_ms: int


def compact_ranges(seqs: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """Sequence numbers → inclusive ``(first, last)`` runs: {1,2,3,7} → ((1, 3), (7, 7))."""
    out: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return tuple(out)


@dataclass
class BatchResult:
    """What one batch did, and which sequence numbers to acknowledge to which edge."""

    received: int = 0
    stored_messages: int = 0
    stored_samples: int = 0
    stored_events: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    births: int = 0
    statuses: int = 0
    duplicate_samples_by_device: dict[str, int] = field(default_factory=dict)
    acks: dict[tuple[str, str], dict[str, set[int]]] = field(default_factory=dict)
    stored_data: list[tuple[Topic, DataRows]] = field(default_factory=list)
    """The data messages this batch stored (duplicates left out), for stream consumers."""

    def ack(self, site: str, edge: str, session: str, seq: int) -> None:
        self.acks.setdefault((site, edge), {}).setdefault(session, set()).add(seq)

    def merge(self, other: BatchResult) -> None:
        for name in (
            "received", "stored_messages", "stored_samples", "stored_events", "duplicates",
            "dead_letters", "births", "statuses",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for device, count in other.duplicate_samples_by_device.items():
            held = self.duplicate_samples_by_device.get(device, 0)
            self.duplicate_samples_by_device[device] = held + count
        self.stored_data.extend(other.stored_data)
        for (site, edge), sessions in other.acks.items():
            for session, seqs in sessions.items():
                for seq in seqs:
                    self.ack(site, edge, session, seq)

    def ack_ranges(self) -> dict[tuple[str, str], dict[str, tuple[tuple[int, int], ...]]]:
        """Per ``(site, edge)``: session → compacted inclusive ranges."""
        return {
            key: {session: compact_ranges(seqs) for session, seqs in sessions.items()}
            for key, sessions in self.acks.items()
        }

    def ack_messages(self, now_ms: int | None = None) -> list[tuple[Topic, AckMessage]]:
        """The acknowledgements to publish: one per edge, on its ack topic."""
        created = clock.now_ms() if now_ms is None else now_ms
        return [
            (Topic.edge_topic(TopicKind.ACK, site, edge), AckMessage(created, ranges))
            for (site, edge), ranges in sorted(self.ack_ranges().items())
        ]


@dataclass(frozen=True, slots=True)
class _Decoded:
    received: ReceivedMessage
    topic: Topic
    message: Message | DataRows  # data messages come as DataRows, never as DataMessage


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """A batch decoded by ``IngestWriter.decode``, ready for ``IngestWriter.write_decoded``."""

    items: tuple[_Decoded | _Dead, ...]

    def __len__(self) -> int:
        return len(self.items)

    @property
    def oldest_received_ms(self) -> int:
        return min(item.received.received_ms for item in self.items)


@dataclass(frozen=True, slots=True)
class _Dead:
    received: ReceivedMessage
    error: str
    site: str | None
    edge: str | None
    device: str | None
    envelope: tuple[str, int] | None

    @property
    def claim_key(self) -> tuple[str, str, int] | None:
        if self.envelope is None or self.edge is None or self.site is None:
            return None
        return self.edge, self.envelope[0], self.envelope[1]


def _topic_levels(topic: str) -> tuple[str | None, str | None, str | None]:
    """Site, edge and device of a topic that may not parse as a whole (for dead letters)."""
    levels = topic.split("/")
    if "/".join(levels[:2]) != PREFIX or len(levels) < 5:
        return None, None, None
    try:
        site, edge = check_id("site", levels[2]), check_id("edge", levels[3])
    except WireError:
        return None, None, None
    device = levels[4] if len(levels) == 6 else None
    if device is not None:
        try:
            check_id("device", device)
        except WireError:
            device = None
    return site, edge, device


def _check_limits(message: Message) -> None:
    """Refuse what the schema cannot hold, with a WireError naming the field."""

    def short(name: str, value: str | None, limit: int = _MAX_ID) -> None:
        if value is not None and len(value) > limit:
            raise WireError(f"{name}: {len(value)} characters, at most {limit} are kept")

    def bounded(name: str, value: int) -> None:
        if not -_MAX_INT <= value <= _MAX_INT:
            raise WireError(f"{name}: {value} is out of range")

    match message:
        case DataMessage():
            _check_data_limits(DataRows.of(message))
        case EventMessage():
            short("session", message.session)
            bounded("seq", message.seq)
            for i, event in enumerate(message.events):
                short(f"events[{i}].kind", event.kind)
                short(f"events[{i}].metric", event.metric)
                bounded(f"events[{i}].t", event.ts_ms)
        case BirthMessage():
            short("session", message.session)
            short("profile", message.profile)
            short("protocol", message.protocol, 32)
            short("area", message.area, 128)
            short("line", message.line, 128)
            for i, metric in enumerate(message.metrics):
                short(f"metrics[{i}].name", metric.name)
                short(f"metrics[{i}].unit", metric.unit, 32)
                short(f"metrics[{i}].type", metric.data_type, 16)
                short(f"metrics[{i}].role", metric.role, 32)
            for code in message.state_map:
                short(f"states.{code}", code)
        case StatusMessage():
            short("session", message.session)
        case _:
            pass


def _check_data_limits(rows: DataRows) -> None:
    """``_check_limits`` of a data message: one quick pass, the exact error only on a failure."""
    if len(rows.session) > _MAX_ID or not -_MAX_INT <= rows.seq <= _MAX_INT:
        _check_envelope_limits(rows.session, rows.seq)
    low, high = -_MAX_INT, _MAX_INT
    for i, (metric, ts_ms, value, _quality, _reason) in enumerate(rows.samples):
        if (
            len(metric) > _MAX_ID
            or not low <= ts_ms <= high
            or (type(value) is int and not low <= value <= high)
        ):
            if len(metric) > _MAX_ID:
                raise WireError(
                    f"samples[{i}].m: {len(metric)} characters, at most {_MAX_ID} are kept"
                )
            if not low <= ts_ms <= high:
                raise WireError(f"samples[{i}].t: {ts_ms} is out of range")
            raise WireError(f"samples[{i}].v: {value} is out of range")


def _check_envelope_limits(session: str, seq: int) -> None:
    if len(session) > _MAX_ID:
        raise WireError(f"session: {len(session)} characters, at most {_MAX_ID} are kept")
    if not -_MAX_INT <= seq <= _MAX_INT:
        raise WireError(f"seq: {seq} is out of range")


def _data_type_of(value: Value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, str):
        return "string"
    return "float64"


def is_transient(error: BaseException) -> bool:
    """True for errors that mean "the database is not available now", not "this data is bad"."""
    if isinstance(
        error,
        exc.OperationalError | exc.InterfaceError | exc.DisconnectionError | exc.TimeoutError,
    ):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg ships with the cloud extra
        return isinstance(error, OSError)
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError | OSError)


class IngestWriter:
    """Stores batches of received messages idempotently; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        store: TimeSeriesStore | None = None,
        codec: WireCodec | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.engine = engine
        self._write_engine = writer_engine(engine)
        self.store: TimeSeriesStore = store or SqlTimeSeriesStore(engine)
        self.codec: WireCodec = codec or JsonCodec()
        self.clock = clock
        self._series: SeriesCache = {}  # replaced, never changed in place: see _write_items
        # (edge, device) -> (machine id, state rules) of machines whose state comes from rules;
        # None for machines that have none. Dropped for a device when its birth arrives.
        self._rule_machines: dict[tuple[str, str], _RuleMachine | None] = {}
        self._topics: dict[str, Topic] = {}

    # ------------------------------------------------------------------ decoding

    def _topic(self, name: str) -> Topic:
        topic = self._topics.get(name)
        if topic is None:
            topic = parse_topic(name)
            if len(self._topics) >= _TOPIC_CACHE_MAX:
                self._topics.clear()
            self._topics[name] = topic
        return topic

    def _decode_data(self, payload: bytes) -> DataRows:
        if isinstance(self.codec, JsonCodec):
            rows = self.codec.decode_data_rows(payload)
        else:
            message = self.codec.decode(TopicKind.DATA, payload)
            assert isinstance(message, DataMessage)
            rows = DataRows.of(message)
        _check_data_limits(rows)
        return rows

    def _decode(self, received: ReceivedMessage) -> _Decoded | _Dead:
        try:
            topic = self._topic(received.topic)
            if topic.kind not in _INGESTED_KINDS:
                raise WireError(f"topic {received.topic!r}: {topic.kind} messages are not ingested")
            if b"\\u0000" in received.payload:
                raise WireError("payload contains a NUL character (\\u0000)")
            message: Message | DataRows
            if topic.kind is TopicKind.DATA:
                message = self._decode_data(received.payload)
            else:
                message = self.codec.decode(topic.kind, received.payload)
                _check_limits(message)
        except WireError as error:
            site, edge, device = _topic_levels(received.topic)
            envelope = self.codec.envelope(received.payload)
            if envelope is not None and (len(envelope[0]) > _MAX_ID or abs(envelope[1]) > _MAX_INT):
                envelope = None
            return _Dead(received, str(error), site, edge, device, envelope)
        return _Decoded(received, topic, message)

    # ------------------------------------------------------------------ writing

    def write(self, batch: Sequence[ReceivedMessage]) -> BatchResult:
        """Store a batch; raise ``DatabaseUnavailable`` (nothing stored) if the DB is down."""
        return self.write_decoded(self.decode(batch))

    def decode(self, batch: Sequence[ReceivedMessage]) -> DecodedBatch:
        """The first half of ``write``: decode and validate, no database."""
        return DecodedBatch(tuple(self._decode(m) for m in batch))

    def write_decoded(self, decoded: DecodedBatch) -> BatchResult:
        """The second half of ``write``: one transaction; ``DatabaseUnavailable`` if the DB is down.

        A batch that raised ``DatabaseUnavailable`` can be stored again as it is.
        """
        items = decoded.items
        if not items:
            return BatchResult()
        try:
            return self._write_items(items)
        except Exception as error:
            if is_transient(error):
                raise DatabaseUnavailable(f"database unavailable: {error}") from error
            if len(items) > 1:
                log.warning(
                    "ingest: a batch of %d messages was refused by the database (%s); "
                    "storing them one by one to find the culprit",
                    len(items), error,
                )  # fmt: skip
                result = BatchResult()
                for item in items:
                    result.merge(self._write_alone(item))
                return result
            return self._write_alone(items[0], first_error=error)

    def _write_alone(
        self, item: _Decoded | _Dead, first_error: BaseException | None = None
    ) -> BatchResult:
        if first_error is None:
            try:
                return self._write_items([item])
            except Exception as error:
                if is_transient(error):
                    raise DatabaseUnavailable(f"database unavailable: {error}") from error
                first_error = error
        received = item.received
        log.error(
            "ingest: the database refused the message on %s (%s); it goes to the dead-letter "
            "table, see GET /api/dead-letters",
            received.topic, first_error,
        )  # fmt: skip
        envelope = self.codec.envelope(received.payload)
        site, edge, device = _topic_levels(received.topic)
        refused = _Dead(
            received, f"the database refused it: {first_error}", site, edge, device, envelope
        )
        try:
            return self._write_items([refused])
        except Exception as error:
            raise DatabaseUnavailable(f"cannot even store a dead letter: {error}") from error

    def _write_items(self, items: Sequence[_Decoded | _Dead]) -> BatchResult:
        # Series made in this transaction go into a copy of the cache, which replaces the
        # cache only once the transaction has committed.
        with self._write_engine.begin() as conn:
            result, series = self._store(conn, items)
        self._series = series
        return result

    def _store(
        self, conn: Connection, items: Sequence[_Decoded | _Dead]
    ) -> tuple[BatchResult, SeriesCache]:
        now = self.clock()
        series = self._series
        result = BatchResult(received=len(items))
        full_recompute: set[tuple[str, str]] = set()

        # 1. births and statuses (idempotent upserts, no sequence numbers)
        for item in items:
            if not isinstance(item, _Decoded):
                continue
            topic, message = item.topic, item.message
            if isinstance(message, BirthMessage) and topic.device is not None:
                outcome = upsert_machine_from_birth(
                    conn, topic.site, topic.edge, topic.device, message, now
                )
                self._define_series(conn, topic, message)
                if outcome.created or outcome.state_map_changed:
                    full_recompute.add((topic.edge, topic.device))
                self._rule_machines.pop((topic.edge, topic.device), None)
                result.births += 1
            elif isinstance(message, StatusMessage):
                self._upsert_status(conn, topic, message, item.received.received_ms)
                result.statuses += 1

        # 2. claim every sequenced message; the first claim in the batch wins
        claims: dict[tuple[str, str, int], _Decoded | _Dead] = {}
        for item in items:
            key = self._claim_key(item)
            if key is None:
                continue
            if key in claims:
                self._duplicate(result, item)
            else:
                claims[key] = item
        claimed = self._claim(conn, claims)
        for key, item in claims.items():
            if key not in claimed:
                self._duplicate(result, item)

        # 3. samples, events and dead letters of what was claimed (and unsequenced dead letters)
        sample_rows: list[tuple[Topic, DataRows]] = []
        event_rows: list[dict[str, object]] = []
        dead_rows: list[dict[str, object]] = []
        last_seen: dict[str, tuple[str, int]] = {}
        for item in items:
            key = self._claim_key(item)
            if isinstance(item, _Dead):
                if key is not None and key not in claimed:
                    continue  # a re-sent dead letter: already kept
                if key is not None and claims.get(key) is not item:
                    continue  # repeated within this batch
                dead_rows.append(self._dead_row(item))
                result.dead_letters += 1
                self._ack(result, item)
                continue
            if key is None or key not in claimed or claims.get(key) is not item:
                continue
            topic, message = item.topic, item.message
            seen = last_seen.get(topic.edge)
            if seen is None or seen[1] < item.received.received_ms:
                last_seen[topic.edge] = (topic.site, item.received.received_ms)
            if isinstance(message, DataRows):
                sample_rows.append((topic, message))
                result.stored_data.append((topic, message))
            elif isinstance(message, EventMessage):
                event_rows.extend(self._event_rows(item, message))
            result.stored_messages += 1
            self._ack(result, item)

        state_since: dict[tuple[str, str], int] = {}
        rule_since: dict[tuple[str, str], int] = {}
        roles: dict[tuple[str, str], dict[str, tuple[int, str]]] = {}
        if sample_rows:
            rows = _sample_rows(sample_rows, series)
            if rows is None:  # a series this worker has not seen yet
                series = self._add_series(conn, sample_rows, series)
                rows = _sample_rows(sample_rows, series)
                assert rows is not None
            write_rows = _row_writer(self.store)
            if write_rows is not None:
                result.stored_samples = write_rows(rows, conn)
            else:
                points = [Point(r[0], r[1], r[2], r[4], r[3], r[5]) for r in rows]
                result.stored_samples = self.store.write_batch(points, conn)
            devices = {(t.edge, t.device or "") for t, _ in sample_rows}
            roles = self._state_roles(conn, devices)
            state_since = _state_since(sample_rows, roles)
            rule_since = self._rule_since(conn, sample_rows, devices - _with_state_tag(roles))
        if event_rows:
            conn.execute(_events.insert(), event_rows)
            result.stored_events = len(event_rows)
        if dead_rows:
            conn.execute(_dead.insert(), dead_rows)
        self._touch_edges(conn, last_seen)

        # 4. machine state from the earliest new state sample (or from scratch after a birth)
        self._derive_states(conn, roles, state_since, full_recompute)
        self._derive_rule_states(conn, rule_since, full_recompute - _with_state_tag(roles))
        return result, series

    # ------------------------------------------------------------------ steps

    @staticmethod
    def _claim_key(item: _Decoded | _Dead) -> tuple[str, str, int] | None:
        if isinstance(item, _Dead):
            return item.claim_key
        message = item.message
        if isinstance(message, DataRows | EventMessage):
            return item.topic.edge, message.session, message.seq
        return None

    @classmethod
    def _duplicate(cls, result: BatchResult, item: _Decoded | _Dead) -> None:
        result.duplicates += 1
        if isinstance(item, _Decoded) and isinstance(item.message, DataRows):
            device = item.topic.device or ""
            held = result.duplicate_samples_by_device.get(device, 0)
            result.duplicate_samples_by_device[device] = held + len(item.message.samples)
        cls._ack(result, item)

    @staticmethod
    def _ack(result: BatchResult, item: _Decoded | _Dead) -> None:
        if isinstance(item, _Dead):
            if item.claim_key is not None and item.site is not None and item.envelope is not None:
                result.ack(item.site, item.claim_key[0], item.envelope[0], item.envelope[1])
            return
        message = item.message
        if isinstance(message, DataRows | EventMessage):
            result.ack(item.topic.site, item.topic.edge, message.session, message.seq)

    @staticmethod
    def _claim(
        conn: Connection, claims: dict[tuple[str, str, int], _Decoded | _Dead]
    ) -> set[tuple[str, str, int]]:
        rows = []
        for key in sorted(claims):  # one lock order for concurrent workers
            item = claims[key]
            if isinstance(item, _Decoded):
                site, device, kind = item.topic.site, item.topic.device or "", item.topic.kind.value
            else:
                site, device, kind = item.site or "", item.device or "", "dead_letter"
            rows.append({
                "edge": key[0], "session": key[1], "seq": key[2], "site": site,
                "device": device, "kind": kind, "received_ms": item.received.received_ms,
            })  # fmt: skip
        if not rows:
            return set()
        if conn.dialect.name == "postgresql":
            columns = ("edge", "session", "seq", "site", "device", "kind", "received_ms")
            arrays = [[row[c] for row in rows] for c in columns]
            dbapi: Any = conn.connection.dbapi_connection
            with dbapi.cursor() as cursor:
                cursor.execute(_CLAIM_PG, arrays)
                return {(r[0], r[1], int(r[2])) for r in cursor.fetchall()}
        # One statement with a cached compilation, executed over all rows: SQLAlchemy's
        # "insertmanyvalues" batches it and still returns the rows that were inserted.
        stmt = dialect_insert(conn, _claims).on_conflict_do_nothing(
            index_elements=["edge", "session", "seq"]
        )
        stmt = stmt.returning(_claims.c.edge, _claims.c.session, _claims.c.seq)
        return {(r[0], r[1], int(r[2])) for r in conn.execute(stmt, rows)}

    @staticmethod
    def _dead_row(item: _Dead) -> dict[str, object]:
        session, seq = item.envelope if item.envelope is not None else (None, None)
        return {
            "topic": item.received.topic, "payload": item.received.payload, "error": item.error,
            "received_ms": item.received.received_ms, "site": item.site, "edge": item.edge,
            "session": session, "seq": seq,
        }  # fmt: skip

    @staticmethod
    def _event_rows(item: _Decoded, message: EventMessage) -> list[dict[str, object]]:
        topic = item.topic
        return [
            {
                "site": topic.site, "edge": topic.edge, "device": topic.device or "",
                "session": message.session, "seq": message.seq, "kind": event.kind,
                "ts_ms": event.ts_ms, "metric": event.metric, "previous": event.previous,
                "current": event.current, "detail": event.detail,
                "historical": message.historical, "received_ms": item.received.received_ms,
            }
            for event in message.events
        ]  # fmt: skip

    def _add_series(
        self, conn: Connection, sample_rows: list[tuple[Topic, DataRows]], cache: SeriesCache
    ) -> SeriesCache:
        """A copy of ``cache`` with every series of ``sample_rows``, created where missing."""
        wanted: dict[tuple[str, str, str], tuple[str, str]] = {}
        for topic, data in sample_rows:
            known = cache.get((topic.edge, topic.device or ""), {})
            for metric, _ts, value, _quality, _reason in data.samples:
                key = (topic.edge, topic.device or "", metric)
                if metric not in known and key not in wanted:
                    wanted[key] = (topic.site, _data_type_of(value))
        missing = list(wanted)
        found = self._lookup_series(conn, missing)
        new = [k for k in missing if k not in found]
        if new:
            stmt = dialect_insert(conn, _series).values(
                [
                    {
                        "site": wanted[k][0], "edge": k[0], "device": k[1], "metric": k[2],
                        "data_type": wanted[k][1], "role": "info",
                    }
                    for k in sorted(new)
                ]
            )  # fmt: skip
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["edge", "device", "metric"]))
            found.update(self._lookup_series(conn, new))
        updated = {device: dict(metrics) for device, metrics in cache.items()}
        for (edge, device, metric), series_id in found.items():
            updated.setdefault((edge, device), {})[metric] = series_id
        return updated

    @staticmethod
    def _lookup_series(
        conn: Connection, keys: list[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], int]:
        out: dict[tuple[str, str, str], int] = {}
        for start in range(0, len(keys), 300):
            chunk = keys[start : start + 300]
            query = select(_series.c.edge, _series.c.device, _series.c.metric, _series.c.id).where(
                tuple_(_series.c.edge, _series.c.device, _series.c.metric).in_(chunk)
            )
            out.update({(r[0], r[1], r[2]): int(r[3]) for r in conn.execute(query)})
        return out

    @staticmethod
    def _define_series(conn: Connection, topic: Topic, birth: BirthMessage) -> None:
        if not birth.metrics:
            return
        stmt = dialect_insert(conn, _series).values(
            [
                {
                    "site": topic.site, "edge": topic.edge, "device": topic.device,
                    "metric": m.name, "unit": m.unit, "data_type": m.data_type, "role": m.role,
                    "low_limit": m.low_limit, "high_limit": m.high_limit,
                    "description": m.description,
                }
                for m in sorted(birth.metrics, key=lambda m: m.name)
            ]
        )  # fmt: skip
        excluded = stmt.excluded
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["edge", "device", "metric"],
                set_={
                    "site": excluded.site, "unit": excluded.unit,
                    "data_type": excluded.data_type, "role": excluded.role,
                    "low_limit": excluded.low_limit, "high_limit": excluded.high_limit,
                    "description": excluded.description,
                },
            )
        )  # fmt: skip

    @staticmethod
    def _upsert_status(
        conn: Connection, topic: Topic, status: StatusMessage, received_ms: int
    ) -> None:
        stmt = dialect_insert(conn, _edges).values(
            edge=topic.edge, site=topic.site, online=status.online, session=status.session,
            last_seen_ms=received_ms, status_created_ms=status.created_ms,
            health=dict(status.health), clock_skew_ms=received_ms - status.created_ms,
        )  # fmt: skip
        excluded = stmt.excluded
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["edge"],
                set_={
                    "site": excluded.site, "online": excluded.online,
                    "session": excluded.session, "status_created_ms": excluded.status_created_ms,
                    "health": excluded.health, "clock_skew_ms": excluded.clock_skew_ms,
                    "last_seen_ms": excluded.last_seen_ms,
                },
                where=(_edges.c.status_created_ms.is_(None))
                | (_edges.c.status_created_ms <= excluded.status_created_ms),
            )
        )  # fmt: skip

    @staticmethod
    def _touch_edges(conn: Connection, last_seen: dict[str, tuple[str, int]]) -> None:
        if not last_seen:
            return
        stmt = dialect_insert(conn, _edges)
        stmt = stmt.on_conflict_do_update(
            index_elements=["edge"],
            set_={"last_seen_ms": stmt.excluded.last_seen_ms},
            where=_edges.c.last_seen_ms < stmt.excluded.last_seen_ms,
        )
        rows = [
            {"edge": edge, "site": site, "online": True, "last_seen_ms": seen_ms, "health": {}}
            for edge, (site, seen_ms) in sorted(last_seen.items())
        ]
        conn.execute(stmt, rows)

    @staticmethod
    def _state_roles(
        conn: Connection, devices: set[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, tuple[int, str]]]:
        """Per device: role (state, fault_code) → (series id, metric), for devices that have one."""
        out: dict[tuple[str, str], dict[str, tuple[int, str]]] = {}
        if not devices:
            return out
        query = select(
            _series.c.id, _series.c.edge, _series.c.device, _series.c.metric, _series.c.role
        ).where(
            _series.c.role.in_(_STATE_ROLES),
            tuple_(_series.c.edge, _series.c.device).in_(sorted(devices)),
        )
        for series_id, edge, device, metric, role in conn.execute(query):
            out.setdefault((edge, device), {})[role] = (int(series_id), metric)
        return out

    def _derive_states(
        self,
        conn: Connection,
        roles: dict[tuple[str, str], dict[str, tuple[int, str]]],
        state_since: dict[tuple[str, str], int],
        full: set[tuple[str, str]],
    ) -> None:
        """Recompute states of devices with new state samples, and from scratch for ``full``."""
        if full - roles.keys():
            roles = {**roles, **self._state_roles(conn, full - roles.keys())}
        for device_key in sorted(state_since.keys() | full):
            device_roles = roles.get(device_key, {})
            state = device_roles.get("state")
            if state is None:
                continue
            edge, device = device_key
            machine = conn.execute(
                select(_machines.c.id, _machines.c.state_map).where(
                    _machines.c.edge == edge, _machines.c.device == device
                )
            ).first()
            if machine is None:
                continue  # no birth yet: the birth will derive states from scratch
            since = None if device_key in full else state_since[device_key]
            fault = device_roles.get("fault_code")
            recompute_states(
                conn, int(machine.id), state[0], dict(machine.state_map or {}), since,
                fault[0] if fault is not None else None,
            )  # fmt: skip

    def _rule_machine(self, conn: Connection, device_key: tuple[str, str]) -> _RuleMachine | None:
        if device_key not in self._rule_machines:
            row = conn.execute(
                select(_machines.c.id, _machines.c.state_rules).where(
                    _machines.c.edge == device_key[0], _machines.c.device == device_key[1]
                )
            ).first()
            if row is None:
                return None  # no birth yet: ask again next time
            self._rule_machines[device_key] = (
                _RuleMachine.of(int(row.id), row.state_rules) if row.state_rules else None
            )
        return self._rule_machines[device_key]

    def _rule_since(
        self,
        conn: Connection,
        sample_rows: list[tuple[Topic, DataRows]],
        devices: set[tuple[str, str]],
    ) -> dict[tuple[str, str], int]:
        """Per rule-state machine with new samples of a tag its rules read: the earliest."""
        since: dict[tuple[str, str], int] = {}
        watched: dict[tuple[str, str], frozenset[str]] = {}
        for device_key in devices:
            machine = self._rule_machine(conn, device_key)
            if machine is not None:
                watched[device_key] = machine.metrics
        if not watched:
            return since
        for topic, data in sample_rows:
            device_key = (topic.edge, topic.device or "")
            metrics = watched.get(device_key)
            if not metrics:
                continue
            for metric, ts_ms, _value, _quality, _reason in data.samples:
                if metric in metrics and (device_key not in since or ts_ms < since[device_key]):
                    since[device_key] = ts_ms
        return since

    def _derive_rule_states(
        self,
        conn: Connection,
        rule_since: dict[tuple[str, str], int],
        full: set[tuple[str, str]],
    ) -> None:
        """Recompute the states of machines whose state comes from rules over their tags."""
        for device_key in sorted(rule_since.keys() | full):
            machine = self._rule_machine(conn, device_key)
            if machine is None:
                continue
            series: dict[str, int] = {}
            fault: int | None = None
            for series_id, metric, role in conn.execute(
                select(_series.c.id, _series.c.metric, _series.c.role).where(
                    _series.c.edge == device_key[0], _series.c.device == device_key[1]
                )
            ):
                series[metric] = int(series_id)
                if role == "fault_code":
                    fault = int(series_id)
            since = None if device_key in full else rule_since[device_key]
            recompute_states_from_rules(
                conn, machine.machine_id, machine.rules, series, since, fault
            )


def _with_state_tag(
    roles: dict[tuple[str, str], dict[str, tuple[int, str]]],
) -> set[tuple[str, str]]:
    return {device_key for device_key, held in roles.items() if "state" in held}


@dataclass(frozen=True, slots=True)
class _RuleMachine:
    """A machine whose state comes from its state rules, and the tags those rules read."""

    machine_id: int
    rules: list[dict[str, str | None]]
    metrics: frozenset[str]

    @classmethod
    def of(cls, machine_id: int, rules: list[dict[str, str | None]]) -> _RuleMachine:
        names = frozenset().union(*(rule.names for rule in compile_rules(rules)))
        return cls(machine_id, list(rules), names)


def _row_writer(store: TimeSeriesStore) -> Callable[[list[SampleRow], Connection], int] | None:
    """The SQL store's row path, unless a subclass changed how batches are written."""
    if (
        isinstance(store, SqlTimeSeriesStore)
        and type(store).write_batch is SqlTimeSeriesStore.write_batch
    ):
        return store.write_rows
    return None


_QUALITY_CODES: dict[str, int] = {quality.value: code for quality, code in QUALITY_CODE.items()}


def _sample_rows(
    sample_rows: list[tuple[Topic, DataRows]], cache: SeriesCache
) -> list[SampleRow] | None:
    """The ``ts_sample`` rows of claimed data messages; None if a series is not in ``cache``."""
    rows: list[SampleRow] = []
    append = rows.append
    codes = _QUALITY_CODES
    for topic, data in sample_rows:
        ids = cache.get((topic.edge, topic.device or ""))
        if ids is None:
            return None
        for metric, ts_ms, value, quality, reason in data.samples:
            series_id = ids.get(metric)
            if series_id is None:
                return None
            if value is None or type(value) is float:
                append((series_id, ts_ms, value, None, codes[quality], reason))
            elif type(value) is str:
                append((series_id, ts_ms, None, value, codes[quality], reason))
            else:
                append((series_id, ts_ms, float(value), None, codes[quality], reason))
    return rows


def _state_since(
    sample_rows: list[tuple[Topic, DataRows]],
    roles: dict[tuple[str, str], dict[str, tuple[int, str]]],
) -> dict[tuple[str, str], int]:
    """Per device with a state series: the earliest timestamp of its new state samples."""
    since: dict[tuple[str, str], int] = {}
    if not roles:
        return since
    for topic, data in sample_rows:
        device_key = (topic.edge, topic.device or "")
        state = roles.get(device_key, {}).get("state")
        if state is None:
            continue
        state_metric = state[1]
        for metric, ts_ms, _value, _quality, _reason in data.samples:
            if metric == state_metric:
                held = since.get(device_key)
                if held is None or ts_ms < held:
                    since[device_key] = ts_ms
    return since
