"""Small read helpers over the series tables: find a series, count stored samples."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from cloud.timeseries.models import TsSeries, ts_sample


def find_series(engine: Engine, edge: str, device: str, metric: str) -> int | None:
    """The id of the series ``(edge, device, metric)``, or None if nothing was stored for it."""
    with engine.connect() as conn:
        found = conn.execute(
            select(TsSeries.id).where(
                TsSeries.edge == edge, TsSeries.device == device, TsSeries.metric == metric
            )
        ).scalar()
    return None if found is None else int(found)


def count_samples(
    engine: Engine,
    *,
    site: str | None = None,
    edge: str | None = None,
    device: str | None = None,
    metric: str | None = None,
) -> int:
    """How many samples are stored, optionally for one site / edge / device / metric."""
    query = select(func.count()).select_from(ts_sample)
    filters = [
        column == wanted
        for column, wanted in (
            (TsSeries.site, site), (TsSeries.edge, edge),
            (TsSeries.device, device), (TsSeries.metric, metric),
        )
        if wanted is not None
    ]  # fmt: skip
    if filters:
        query = query.join(TsSeries, TsSeries.id == ts_sample.c.series_id).where(*filters)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def count_samples_by_device(engine: Engine) -> dict[tuple[str, str], int]:
    """Stored samples per ``(edge, device)``."""
    query = (
        select(TsSeries.edge, TsSeries.device, func.count())
        .select_from(ts_sample)
        .join(TsSeries, TsSeries.id == ts_sample.c.series_id)
        .group_by(TsSeries.edge, TsSeries.device)
    )
    with engine.connect() as conn:
        return {(r[0], r[1]): int(r[2]) for r in conn.execute(query)}
