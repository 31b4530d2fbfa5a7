"""Routes for ingest: counters of this process's worker and of the database, dead letters."""

from __future__ import annotations

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from cloud.api.deps import SessionDep, WorkerDep
from cloud.api.schemas import DeadLetterOut, IngestStatsOut
from cloud.ingest.models import DeadLetter, EdgeNode, IngestMessage
from cloud.timeseries.models import TsSeries, ts_sample

router = APIRouter(prefix="/api", tags=["ingest"])


@router.get("/ingest/stats", response_model=IngestStatsOut)
def stats(session: SessionDep, worker: WorkerDep) -> IngestStatsOut:
    """What this process's worker counted since it started, and what the database holds.

    ``stored_messages`` / ``stored_samples`` / ``dead_letters`` count the database (all
    workers, all time); ``received``, ``duplicates`` and the lag are this process's worker.
    """

    def count(query: object) -> int:
        return int(session.execute(query).scalar_one())  # type: ignore[call-overload]

    edges = [
        {
            "edge": e.edge, "site": e.site, "online": e.online, "session": e.session,
            "last_seen_ms": e.last_seen_ms, "clock_skew_ms": e.clock_skew_ms, "health": e.health,
        }
        for e in session.scalars(select(EdgeNode).order_by(EdgeNode.edge))
    ]  # fmt: skip
    counters = worker.counters.snapshot() if worker is not None else None
    return IngestStatsOut(
        received=counters["received"] if counters else 0,
        duplicates=counters["duplicates"] if counters else 0,
        duplicate_samples_by_device=counters["duplicate_samples_by_device"] if counters else {},
        last_batch_lag_ms=counters["last_batch_lag_ms"] if counters else None,
        db_errors=counters["db_errors"] if counters else 0,
        worker=counters,
        stored_messages=count(select(func.count()).select_from(IngestMessage)),
        stored_samples=count(select(func.count()).select_from(ts_sample)),
        dead_letters=count(select(func.count()).select_from(DeadLetter)),
        series=count(select(func.count()).select_from(TsSeries)),
        edges=edges,
    )


@router.get("/dead-letters", response_model=list[DeadLetterOut])
def dead_letters(
    session: SessionDep, limit: int = Query(100, ge=1, le=1000)
) -> list[DeadLetterOut]:
    """The newest dead letters first: what arrived, when, and why it was refused."""
    rows = session.scalars(select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit))
    return [
        DeadLetterOut(
            id=r.id, topic=r.topic, payload=bytes(r.payload).decode("utf-8", errors="replace"),
            error=r.error, received_ms=r.received_ms, edge=r.edge, session=r.session, seq=r.seq,
        )
        for r in rows
    ]  # fmt: skip
