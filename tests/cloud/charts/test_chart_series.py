"""``GET /api/charts/series`` over a real database (SQLite and PostgreSQL).

The machine and its samples come through the real ``IngestWriter``: 2 hours of 1 s temperature
with one single-sample spike and one uncertain outlier (which must not be charted); a work
order runs on the machine inside the window and alarms sit in, around and outside it.
"""

from __future__ import annotations

import warnings

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

with warnings.catch_warnings():
    # starlette 1.x asks for httpx2 and warns once, at import, when it finds only httpx
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

from cloud.alarms.models import Alarm
from cloud.api.app import create_app
from cloud.api.charts import router
from cloud.assets.models import Machine
from cloud.ingest.writer import IngestWriter
from cloud.production import service
from cloud.spc import service as spc
from cloud.spc.config import ChartSpec
from protocols.quality import Quality
from protocols.wire import MetricDefinition

T = 1_800_000_000_000  # a fixed epoch: every time below is T + offset
SECONDS = 2 * 3600
SPIKE_AT, SPIKE = T + 4_321_000, 250.0
OUTLIER_AT = T + 5_000_000  # uncertain quality: not charted
METRICS = (
    MetricDefinition("state", "uint16", "state"),
    MetricDefinition("temperature", "float32", "temperature", "degC", 20.0, 80.0),
    MetricDefinition("pressure", "float32", "process_param", "bar", 100.0, 200.0),
)


def _temperature(second: int) -> float:
    return 40.0 + (second % 600) / 60.0  # a saw tooth between 40 and 50


@pytest.fixture
def press(db_engine, wire):
    writer = IngestWriter(db_engine)
    writer.write([wire.birth("press1", metrics=METRICS)])
    for first in range(0, SECONDS, 1_800):
        samples: list[tuple[str, int, float] | tuple[str, int, float, Quality]] = []
        for second in range(first, first + 1_800):
            at = T + second * 1_000
            if at == SPIKE_AT:
                samples.append(("temperature", at, SPIKE))
            elif at == OUTLIER_AT:
                samples.append(("temperature", at, 900.0, Quality.UNCERTAIN))
            else:
                samples.append(("temperature", at, _temperature(second)))
        writer.write([wire.data("press1", samples)])
    with Session(db_engine) as session:
        machine = session.scalars(select(Machine).where(Machine.device == "press1")).one()
        for offset, rule, metric in (
            (1_000_000, "temperature-high", "temperature"),  # in the window: shown
            (2_000_000, "door-open", None),  # machine-wide: shown
            (3_000_000, "pressure-high", "pressure"),  # another metric: not shown
            (-7_200_000, "temperature-early", "temperature"),  # cleared before the window
        ):
            session.add(
                Alarm(
                    point_key=f"{rule}:press1", rule=rule, kind="limit", priority="high",
                    machine_id=machine.id, machine_name="press1", site="plant1",
                    metric=metric, state="cleared", message=f"{rule} on press1",
                    raised_ms=T + offset, active_ms=T + offset, cleared_ms=T + offset + 500,
                    updated_ms=T + offset + 500,
                )
            )  # fmt: skip
        service.upsert_product(session, "BODY", service.ProductSpec("BODY", serialised=True), T)
        step = service.OperationSpec(10, "Press", machine_id=machine.id)
        service.upsert_routing(session, "R-BODY", service.RoutingSpec("BODY", "r", (step,)), T)
        order_id = service.upsert_work_order(
            session, "WO-BODY", service.WorkOrderSpec("BODY", 10), T
        ).id
        service.work_order_action(session, order_id, "release", T)
        service.operation_action(session, order_id, 10, "start", T + 600_000)
        service.operation_action(session, order_id, 10, "finish", T + 1_800_000)
        session.commit()
        return machine.id


@pytest.fixture
def client(db_engine):
    app = create_app(db_engine)
    if not any(getattr(route, "path", "") == "/api/charts/series" for route in app.routes):
        app.include_router(router)
    with TestClient(app) as test_client:
        yield test_client


def _chart(client, machine_id, **params):
    query = {"machine": machine_id, "metric": "temperature", "start": T,
             "end": T + SECONDS * 1_000} | params  # fmt: skip
    return client.get("/api/charts/series", params=query)


@pytest.mark.parametrize("method", ["minmax", "lttb"])
def test_spike_survives_in_at_most_n_points(client, press, method):
    response = _chart(client, press, points=200, method=method)
    assert response.status_code == 200, response.text
    body = response.json()
    points = body["points"]
    assert 100 <= len(points) <= 200
    assert body["raw_count"] == SECONDS - 1  # the uncertain outlier is not counted
    assert {"ts_ms": SPIKE_AT, "value": SPIKE} in points
    assert max(p["value"] for p in points) == SPIKE  # the outlier is not charted
    times = [p["ts_ms"] for p in points]
    assert times == sorted(times)
    assert len(set(times)) == len(times)
    assert times[0] >= T
    assert times[-1] < T + SECONDS * 1_000
    assert body["method"] == method


def test_limits_and_annotations(client, press):
    body = _chart(client, press, start="2027-01-15T08:00:00Z", end=str(T + 3_600_000)).json()
    assert body["start_ms"] == T
    assert body["unit"] == "degC"
    limits = body["limits"]
    assert (limits["engineering_low"], limits["engineering_high"]) == (20.0, 80.0)
    assert (limits["spec_low"], limits["control_center"]) == (None, None)
    assert "no SPC chart watches this metric" in limits["spec_and_control_source"]
    [operation] = body["annotations"]["operations"]
    assert operation == {"work_order": "WO-BODY", "sequence": 10, "start_ms": T + 600_000,
                         "end_ms": T + 1_800_000}  # fmt: skip
    alarms = body["annotations"]["alarms"]
    assert [(a["rule"], a["metric"]) for a in alarms] == [
        ("temperature-high", "temperature"),
        ("door-open", None),
    ]
    assert alarms[0]["raised_ms"] == T + 1_000_000


def test_a_window_after_everything_is_empty(client, press):
    later = T + SECONDS * 1_000
    body = _chart(client, press, start=later, end=later + 60_000).json()
    assert (body["points"], body["raw_count"]) == ([], 0)
    assert body["annotations"] == {"operations": [], "alarms": []}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"points": 1}, "points"),
        ({"points": "many"}, "points"),
        ({"method": "average"}, "method"),
        ({"start": "yesterday"}, "start"),
        ({"end": T}, "end"),
        ({"start": -(2**62)}, "start"),  # a span that would overflow the bucket arithmetic
        ({"machine": "press1"}, "machine"),
    ],
)
def test_bad_input_answers_400_naming_the_field(client, press, params, field):
    response = _chart(client, press, **params)
    assert response.status_code == 400, response.text
    assert field in response.json()["detail"]


def test_missing_metric_parameter_answers_400(client, press):
    response = client.get("/api/charts/series", params={"machine": press, "start": T, "end": T + 1})
    assert response.status_code == 400
    assert "metric" in response.json()["detail"]


def test_unknown_machine_or_metric_answers_404(client, press):
    unknown_machine = _chart(client, press + 99)
    assert unknown_machine.status_code == 404
    assert f"machine {press + 99}" in unknown_machine.json()["detail"]
    unknown_metric = _chart(client, press, metric="humidity")
    assert unknown_metric.status_code == 404
    assert "humidity" in unknown_metric.json()["detail"]


def test_spec_and_control_limits_come_from_the_spc_chart(client, press, db_engine):
    """An I-MR chart on the temperature: its spec limits, then phase I limits from the first
    hour (the saw tooth: centre about 45), appear beside the engineering limits."""
    with Session(db_engine) as session:
        chart = spc.create_chart(
            session, ChartSpec(name="press1 temperature", machine="press1", metric="temperature",
                               chart_type="i_mr", lsl=38.0, usl=52.0), "qe", T)  # fmt: skip
        session.commit()
        chart_id = chart.id
    limits = _chart(client, press).json()["limits"]
    assert (limits["spec_low"], limits["spec_high"]) == (38.0, 52.0)
    assert limits["control_center"] is None
    assert "no control limits set yet" in limits["spec_and_control_source"]
    with Session(db_engine) as session:
        stored = spc.set_limits(session, chart_id, T, T + 3_600_000, set_by="qe", now=T + 7_300_000)
        session.commit()
        centre, ucl, lcl = stored.centre, stored.ucl, stored.lcl
    limits = _chart(client, press).json()["limits"]
    assert (limits["control_low"], limits["control_center"], limits["control_high"]) == (
        lcl,
        centre,
        ucl,
    )
    assert 44.0 < centre < 46.0
    assert lcl < centre < ucl
    assert "press1 temperature" in limits["spec_and_control_source"]
    assert "qe" in limits["spec_and_control_source"]
