"""Trace reports of a unit: JSON, printable HTML and PDF (read back with pypdf).

First from a ``UnitTrace`` built by hand (every field filled, three levels, hostile text), then
end to end over a real database (SQLite and PostgreSQL): machines and their series come from
births through the real ``IngestWriter``, work orders run through the production service, and
the report is fetched through the API and written by the CLI.
"""

from __future__ import annotations

import io
import json
import re
import warnings

import pytest
from click.testing import CliRunner
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.orm import Session

with warnings.catch_warnings():
    # starlette 1.x asks for httpx2 and warns once, at import, when it finds only httpx
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.assets.models import Machine
from cloud.errors import InvalidRequest
from cloud.ingest.writer import IngestWriter
from cloud.production import records, service, trace
from cloud.production.trace import (
    AlarmInWindow,
    ConsumedLot,
    InspectionTrace,
    OperationTrace,
    OperatorEntry,
    ParameterSummary,
    UnitTrace,
)
from cloud.production.trace_report import (
    SCHEMA,
    pdf_text,
    render_report,
    report_filename,
    trace_html,
    trace_json,
    trace_pdf,
)
from forgeline.cli_trace import trace as trace_command
from protocols.wire import MetricDefinition

T = 1_800_000_000_000  # 2027-01-15T08:00:00Z, 09:00:00 in Berlin: every time is T + offset
HOSTILE = "<script>alert('lot')</script>"


def _parameter(metric, unit, limits, figures, out=0, out_ms=0) -> ParameterSummary:
    count, low, high, mean = figures
    url = f"/api/machines/1/series/{metric}?start={T}&end={T + 10_000}"
    return ParameterSummary(1, metric, "process_param", unit, *limits, count, low, high, mean,
                            out, out_ms, url)  # fmt: skip


def _operation(sequence, name, machine, parameters=(), alarms=(), events=()) -> OperationTrace:
    start = T + sequence * 1_000
    return OperationTrace(
        sequence, name, 1, machine, "finished", start, start + 10_000, ["anna", "ben"], 5, 1, 0,
        "unit_cycle", start + 2_000, start + 4_500, list(parameters), list(alarms), list(events),
    )  # fmt: skip


def _valve() -> UnitTrace:
    """V-1 (press1, bench1) ← component B-1 (lathe2) ← component S-7 (coiler3)."""
    spring = UnitTrace("S-7", "SPRING", 3, "WO-SPRING", 10, T - 50_000,
                       [_operation(10, "Coil", "coiler3")],
                       [ConsumedLot("L-WIRE", "WIRE", "Acme", "HEAT-9", 0.2, T - 60_000, 10,
                                    "backflush")])  # fmt: skip
    body = UnitTrace("B-1", "BODY", 2, "WO-BODY", 10, T - 20_000,
                     [_operation(10, "Turn", "lathe2")],
                     [ConsumedLot("L-STEEL", "STEEL", "Stahl Süd", "HEAT-42", 2.5, T - 30_000,
                                  None, "scan")],
                     [spring])  # fmt: skip
    press = _operation(
        10, "Press", "press1",
        [
            _parameter("temperature", "°C", (20.0, 80.0), (4, 10.0, 85.25, 43.75), 2, 4_500),
            _parameter("pressure", "bar", (100.0, None), (2, 150.0, 250.0, 200.0)),
        ],
        [AlarmInWindow(7, "temperature-high", "temperature", "temperature above 80 °C",
                       T + 12_000, T + 12_500)],
        [OperatorEntry("report", "anna", T + 15_000, 5, 1, 0, "burr on the edge")],
    )  # fmt: skip
    bench = _operation(20, "Leak test", "bench1",
                       [_parameter("flow", "mm³/s", (None, 0.5), (3, 0.125, 0.375, 0.25))])  # fmt: skip
    tests = [
        trace.TestTrace("leak", "bench1", T + 21_000, T + 23_000, True, "plc", [
            trace.TestValueTrace("leak rate", 0.42, "mm³/s", None, 0.5, True),
            trace.TestValueTrace("test pressure", 151.5, "bar", 150.0, 160.0, True),
        ]),
        trace.TestTrace("trip", None, T + 24_000, T + 25_000, False, "api", [
            trace.TestValueTrace("trip time", 31.0, "ms", 10.0, 30.0, False),
        ]),
    ]  # fmt: skip
    inspections = [
        InspectionTrace("bore Ø", 12.01, None, True, "Łukasz Nowak", T + 26_000, None, None),
        InspectionTrace("surface", None, "scratched", False, "张伟", T + 27_000, "rework", HOSTILE),
    ]
    return UnitTrace("V-1", "VALVE", 1, "WO-VALVE", 10, T + 12_000, [press, bench],
                     [ConsumedLot(HOSTILE, "GREASE", None, None, 12.0, T + 11_000, 10, "scan")],
                     [body], tests, inspections)  # fmt: skip


def _pdf_pages(data: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


# --------------------------------------------------------------------------- JSON


def test_json_round_trips_with_schema_and_iso_times():
    body = trace_json(_valve(), generated_ms=T)
    again = json.loads(json.dumps(body, allow_nan=False))
    assert again == body
    assert (body["schema"], body["generated_at"]) == (SCHEMA, "2027-01-15T08:00:00.000Z")
    assert (body["serial"], body["work_order"], body["created_at"]) == (
        "V-1", "WO-VALVE", "2027-01-15T08:00:12.000Z",
    )  # fmt: skip
    press = body["operations"][0]
    assert (press["started_at"], press["window_end_at"]) == (
        "2027-01-15T08:00:10.000Z", "2027-01-15T08:00:14.500Z",
    )  # fmt: skip
    temperature = press["parameters"][0]
    assert (temperature["min"], temperature["max"], temperature["mean"]) == (10.0, 85.25, 43.75)
    assert (temperature["time_out_of_limits_ms"], temperature["out_of_limits"]) == (4_500, 2)
    assert "time_out_of_limits_at" not in temperature  # a duration, not a time
    assert press["alarms"][0]["cleared_at"] == "2027-01-15T08:00:12.500Z"
    assert [lot["lot"] for lot in body["lots"]] == [HOSTILE]
    [body_unit] = body["components"]
    assert body_unit["lots"][0] | {"at": None} == {
        "lot": "L-STEEL", "product": "STEEL", "supplier": "Stahl Süd", "supplier_lot": "HEAT-42",
        "quantity": 2.5, "ms": T - 30_000, "at": None, "via_operation": None, "source": "scan",
    }  # fmt: skip
    assert body_unit["components"][0]["serial"] == "S-7"
    assert body["tests"][1]["values"][0]["passed"] is False


def test_json_has_no_nan():
    valve = _valve()
    valve.operations[0].parameters[0] = _parameter("temperature", "°C", (20.0, 80.0),
                                                   (1, float("nan"), float("inf"), None))  # fmt: skip
    body = json.loads(render_report(valve, "json", T))
    assert body["operations"][0]["parameters"][0]["min"] is None


# --------------------------------------------------------------------------- HTML


def test_html_holds_the_trace_in_the_zone_and_escapes_hostile_text():
    page = trace_html(_valve(), T, "Europe/Berlin")
    for text in ("V-1", "WO-VALVE", "press1", "bench1", "lathe2", "coiler3", "L-STEEL",
                 "HEAT-42", "Stahl Süd", "temperature", "85.25", "43.75", "mm³/s", "4.5 s",
                 "20 – 80", "≥ 100", "≤ 0.5", "unit cycle", "anna, ben", "burr on the edge",
                 "temperature above 80 °C", "Łukasz Nowak", "张伟", "scratched", "31 ms",
                 "B-1", "S-7", "V-1 › B-1"):  # fmt: skip
        assert text in page, text
    assert "2027-01-15 09:00:12" in page  # made at, in Berlin (CET)
    assert "&lt;script&gt;alert(&#x27;lot&#x27;)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    for external in ("src=", "<link", "@import", "url("):
        assert external not in page
    assert "@media print" in page
    assert "break-before: page" in page
    flagged = re.findall(r'<tr class="flag"><td>([^<]*)</td>', page)
    assert flagged == ["temperature", "trip", "surface"]
    assert page.count('<section class="unit') == 3
    assert '<section class="unit depth-2" style="margin-left: 4em">' in page


# --------------------------------------------------------------------------- PDF


def test_pdf_is_read_back_with_figures_footer_and_substitutes():
    pages = _pdf_pages(trace_pdf(_valve(), T, "Europe/Berlin"))
    text = "\n".join(pages)
    for word in ("V-1", "WO-VALVE", "press1", "bench1", "L-STEEL", "HEAT-42", "Stahl Süd",
                 "temperature", "10", "85.25", "43.75", "°C", "mm³/s", "20 – 80", ">= 100",
                 "<= 0.5", "B-1", "S-7", "Component S-7", "Component of V-1 › B-1", "Lukasz Nowak",
                 "??", HOSTILE, "2027-01-15 09:00:12"):  # fmt: skip
        assert word in text, word
    assert [page.splitlines()[0] for page in pages] == [
        "Unit V-1", "Inspections", "Component B-1", "Component S-7",
    ]  # fmt: skip
    for number, page in enumerate(pages, start=1):
        assert f"Unit V-1 · generated 2027-01-15 09:00:00 (Europe/Berlin) · page {number}/4" in page


def test_pdf_tables_repeat_their_header_across_pages():
    valve = _valve()
    many = [
        _parameter(f"zone{i:02d}", "°C", (20.0, 80.0), (9, 21.0, 79.0, 50.0)) for i in range(90)
    ]
    valve.operations[0].parameters[:] = many
    pages = _pdf_pages(trace_pdf(valve, T))
    spanning = [page for page in pages if "zone89" in page or "zone45" in page]
    assert len(pages) > 3
    assert spanning
    for page in pages[1:]:
        if "zone" in page:
            assert "Parameter Unit Limits Samples Min Max Mean Samples out Time out" in page


def test_pdf_text_keeps_windows_1252_and_replaces_the_rest():
    assert pdf_text("20 – 80 °C, µm, mm³/s, “ok” …") == "20 – 80 °C, µm, mm³/s, “ok” …"
    assert pdf_text("≤ 5 Ω → ő 张") == "<= 5 Ohm -> o ?"


def test_unknown_zone_and_format_name_the_field():
    with pytest.raises(InvalidRequest, match=r"^tz: 'Mars/Olympus' is not a known time zone"):
        trace_html(_valve(), T, "Mars/Olympus")
    for zone in ("../etc", "Europe", "Europe/" + "x" * 300, ""):
        with pytest.raises(InvalidRequest, match=r"^tz: '.*' is not a known time zone"):
            trace_pdf(_valve(), T, zone)
    with pytest.raises(InvalidRequest, match=r"^format: 'docx' is not one of json, html, pdf"):
        render_report(_valve(), "docx", T)
    assert report_filename('V 1/"x"', "pdf") == "trace-V_1__x_.pdf"


# --------------------------------------------------------------------------- end to end

METRICS = (
    MetricDefinition("state", "uint16", "state"),
    MetricDefinition("temperature", "float32", "temperature", "°C", 20.0, 80.0),
    MetricDefinition("pressure", "float32", "process_param", "bar", 100.0, 200.0),
)
# valve press operation: [T+30_000, T+40_000); body press operation: [T+10_000, T+20_000)
SAMPLES = [
    ("temperature", T + 10_000, 50.0),
    ("temperature", T + 15_000, 30.0),
    ("temperature", T + 30_000, 42.5),  # at the start of the valve's press operation
    ("temperature", T + 33_000, 91.25),  # above 80
    ("temperature", T + 36_000, 61.75),
    ("pressure", T + 32_000, 150.5),
    ("pressure", T + 41_000, 250.0),  # after the operation
]
BENCH_METRICS = (MetricDefinition("flow", "float32", "process_param", "mm3/s", None, 0.5),)


@pytest.fixture
def plant(db_engine, wire):
    """press1 and bench1 with their series; answers {device: machine id}."""
    writer = IngestWriter(db_engine)
    writer.write(
        [wire.birth("press1", metrics=METRICS), wire.birth("bench1", metrics=BENCH_METRICS)]
    )
    writer.write([wire.data("press1", SAMPLES), wire.data("bench1", [("flow", T + 45_000, 0.25)])])
    with Session(db_engine) as session:
        machines = session.execute(select(Machine.device, Machine.id)).all()
    return dict(machines)


def _order(session, product, steps, machines):
    """A routing of (sequence, name, device) steps (the first serialises) and its work order."""
    service.upsert_product(session, product, service.ProductSpec(product, serialised=True), T)
    operations = tuple(
        service.OperationSpec(seq, name, machine_id=machines[device], serialises=seq == steps[0][0])
        for seq, name, device in steps
    )
    service.upsert_routing(
        session, f"R-{product}", service.RoutingSpec(product, "r", operations), T
    )
    order = service.upsert_work_order(
        session, f"WO-{product}", service.WorkOrderSpec(product, 5), T
    )
    service.work_order_action(session, order.id, "release", T)
    return order.id


def _run(session, order_id, sequence, start, end, serial=None):
    """Run the operation from T + start to T + end, making unit ``serial`` as it starts."""
    service.operation_action(session, order_id, sequence, "start", T + start)
    unit = None
    if serial is not None:
        unit, _created = trace.register_unit(session, order_id, sequence, serial, T + start + 500)
    service.operation_action(session, order_id, sequence, "finish", T + end)
    return unit


@pytest.fixture
def valve(db_engine, plant):
    """V-1 (press, then leak test) made of component B-1 (press) made from lot L-STEEL."""
    with Session(db_engine) as session:
        for product in ("STEEL", "GREASE"):
            service.upsert_product(session, product, service.ProductSpec(product, "kg"), T)
        trace.upsert_lot(session, "L-STEEL", trace.LotSpec("STEEL", 500, "Acme", "HEAT-42"), T)
        trace.upsert_lot(session, HOSTILE, trace.LotSpec("GREASE", 40), T)
        body = _order(session, "BODY", [(10, "Press", "press1")], plant)
        _run(session, body, 10, 10_000, 20_000, "B-1")
        trace.record_consumption(session, quantity=2.5, now=T + 12_000, unit="B-1", lot="L-STEEL")
        steps = [(10, "Press", "press1"), (20, "Leak test", "bench1")]
        valve = _order(session, "VALVE", steps, plant)
        unit = _run(session, valve, 10, 30_000, 40_000, "V-1")
        trace.record_consumption(session, quantity=1, now=T + 32_000, unit="V-1", component="B-1")
        trace.record_consumption(session, quantity=12, now=T + 33_000, operation=(valve, 10),
                                 lot=HOSTILE)  # fmt: skip
        _run(session, valve, 20, 42_000, 48_000)
        leak = records.TestValueSpec("leak rate", 0.62, "mm3/s", None, 0.5)
        records.record_test(session, unit, "leak", T + 43_000, T + 46_000, [leak],
                            machine_id=plant["bench1"])  # fmt: skip
        surface = records.InspectionSpec("surface", False, "Zhang Wei", attribute="scratched")
        records.record_inspection(session, surface, T + 50_000, unit=unit)
        session.commit()
    return "V-1"


def _check_pdf(data: bytes) -> None:
    text = "\n".join(_pdf_pages(data))
    for word in ("V-1", "WO-VALVE", "press1", "bench1", "L-STEEL", "HEAT-42", HOSTILE,
                 "temperature", "42.5", "91.25", "°C", "B-1", "WO-BODY", "leak rate", "0.62 mm3/s",
                 "<= 0.5", "FAIL", "scratched", "Zhang Wei"):  # fmt: skip
        assert word in text, word


def _report_app(engine):
    return create_app(engine)


def test_a_real_trace_in_every_format(db_engine, valve):
    with Session(db_engine) as session:
        unit = trace.backward_trace(session, valve, T + 60_000)
    body = json.loads(json.dumps(trace_json(unit, T + 60_000)))
    assert (body["serial"], body["work_order"]) == ("V-1", "WO-VALVE")
    assert [lot["lot"] for lot in body["lots"]] == [HOSTILE]
    assert body["components"][0]["lots"][0]["supplier_lot"] == "HEAT-42"
    press = body["operations"][0]
    assert (press["machine"], body["operations"][1]["machine"]) == ("press1", "bench1")
    temperature = {p["metric"]: p for p in press["parameters"]}["temperature"]
    assert (temperature["min"], temperature["max"], temperature["out_of_limits"]) == (
        42.5, 91.25, 1,
    )  # fmt: skip
    page = trace_html(unit, T + 60_000, "Europe/Berlin")
    assert "91.25" in page
    assert "&lt;script&gt;" in page
    assert "<script" not in page
    _check_pdf(trace_pdf(unit, T + 60_000, "Europe/Berlin"))


def test_the_api_answers_each_format(db_engine, valve):
    url = f"/api/trace/units/{valve}/report"
    with TestClient(_report_app(db_engine)) as client:
        response = client.get(url)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        assert (response.json()["schema"], response.json()["serial"]) == (SCHEMA, "V-1")
        response = client.get(url, params={"format": "html", "tz": "Europe/Berlin"})
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert "times in Europe/Berlin" in response.text
        assert "press1" in response.text
        response = client.get(url, params={"format": "pdf", "tz": "Asia/Shanghai"})
        assert response.headers["content-type"] == "application/pdf"
        disposition = response.headers["content-disposition"]
        assert disposition == 'attachment; filename="trace-V-1.pdf"'
        _check_pdf(response.content)
        for params, field in (({"format": "docx"}, "format"), ({"tz": "Nowhere/City"}, "tz")):
            response = client.get(url, params=params)
            assert response.status_code == 400
            assert response.json()["detail"].startswith(f"{field}: ")
        response = client.get("/api/trace/units/NOPE/report", params={"format": "pdf"})
        assert response.status_code == 404
        assert response.json()["detail"] == "no unit with serial 'NOPE'"


def test_the_cli_writes_a_pdf(db_url, db_engine, valve, tmp_path):
    output = tmp_path / "report.pdf"
    args = [valve, "--output", str(output), "--tz", "Europe/Berlin", "--database-url", db_url]
    result = CliRunner().invoke(trace_command, args)
    assert result.exit_code == 0, result.output
    _check_pdf(output.read_bytes())
    result = CliRunner().invoke(trace_command, [valve, "--format", "json", "--db-url", db_url])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["serial"] == "V-1"


def test_the_cli_says_what_is_wrong(db_url, tmp_path):
    runner = CliRunner()
    result = runner.invoke(trace_command, ["NOPE", "--database-url", db_url])
    assert (result.exit_code, result.output.strip()) == (1, "Error: no unit with serial 'NOPE'")
    result = runner.invoke(trace_command, ["V-1", "--tz", "Mars/Olympus", "--db-url", db_url])
    assert result.exit_code == 2
    assert "Invalid value for --tz: 'Mars/Olympus' is not a known time zone" in result.output
    missing = tmp_path / "none.db"
    result = runner.invoke(trace_command, ["V-1", "--database-url", f"sqlite:///{missing}"])
    assert result.exit_code == 1
    assert f"no database file {missing}" in result.output
    assert not missing.exists()
