"""End-of-run accounting: what each machine's edge read and published, what the cloud stored.

``lost = published - stored - pending`` per machine, where *stored* is counted in the cloud's
database and *pending* is what the edge's log still holds that the cloud has not stored (a
message stored but whose acknowledgement had not reached the edge yet counts as stored, once).
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text


@dataclass(slots=True)
class MachineAccount:
    machine: str
    protocol: str
    read: int = 0
    published: int = 0
    stored: int = 0
    duplicates: int = 0
    pending: int = 0
    lost: int = 0


def edge_log(
    outbox_file: Path,
) -> tuple[list[tuple[str, int, str | None, int]], dict[str, dict[str, int]]]:
    """Rows (session, seq, device, samples) still in an edge's log, and its counters."""
    db = sqlite3.connect(f"file:{outbox_file}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT session, seq, device, samples FROM outbox").fetchall()
        counters: dict[str, dict[str, int]] = {}
        for device, name, value in db.execute("SELECT device, name, value FROM counters"):
            counters.setdefault(device, {})[name] = int(value)
        return [(r[0], int(r[1]), r[2], int(r[3])) for r in rows], counters
    finally:
        db.close()


def account(
    db_url: str,
    edge_id: str,
    outbox_file: Path,
    protocols: dict[str, str],
    duplicates: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The report: ``{"machines": [...], "totals": {...}}`` for one edge."""
    log_rows, counters = edge_log(outbox_file)
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            stored: dict[str, int] = dict(
                conn.execute(
                    text(
                        "SELECT s.device, COUNT(*) FROM ts_sample x JOIN ts_series s"
                        " ON s.id = x.series_id WHERE s.edge = :edge GROUP BY s.device"
                    ),
                    {"edge": edge_id},
                ).all()
            )
            stored_keys = {
                (session, int(seq))
                for session, seq in conn.execute(
                    text("SELECT session, seq FROM ingest_message WHERE edge = :edge"),
                    {"edge": edge_id},
                )
            }
    finally:
        engine.dispose()
    pending: dict[str, int] = {}
    for session, seq, device, samples in log_rows:
        if device and (session, seq) not in stored_keys:
            pending[device] = pending.get(device, 0) + samples
    machines = []
    for device in sorted(set(protocols) | set(counters) - {"*"}):
        c = counters.get(device, {})
        m = MachineAccount(
            machine=device,
            protocol=protocols.get(device, "?"),
            read=c.get("read", 0),
            published=c.get("published", 0),
            stored=int(stored.get(device, 0)),
            duplicates=(duplicates or {}).get(device, 0),
            pending=pending.get(device, 0),
        )
        m.lost = m.published - m.stored - m.pending
        machines.append(asdict(m))
    totals = {
        key: sum(m[key] for m in machines)
        for key in ("read", "published", "stored", "duplicates", "pending", "lost")
    }
    return {"machines": machines, "totals": totals}
