"""One production run end to end, through real processes, Mosquitto and the database.

A BOM, a routing and a work order come from an Excel workbook; the order runs on a simulated
breaker assembly station (Modbus) whose serial tag the cloud binds to units; machine counts
flow from the edge into the operation's progress; components are backflushed from staged
lots; the estimated completion time is checked against the actual one; one unit's trace is
checked against the raw series the simulator produced during its own cycle, and exported as
a PDF whose text is read back.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import Workbook
from plant_harness import PlantRun
from pypdf import PdfReader

from device_profiles import profile_path
from forgeline.processes import wait_for

pytestmark = [pytest.mark.integration]

ORDERED = 12
CYCLE_S = 1.5  # the station's cycle in this run (the built-in profile's is 12 s)
SCENARIO = """
site: test-plant
step_s: 0.1
lines:
  - name: Line A
    area: Assembly
    machines:
      - device_id: breaker-01
        profile: {profile}
        seed: 2
        behaviour: {{initial_state: running, p_down: 0, p_setup: 0, p_planned_stop: 0,
                    mean_running_s: 100000, scrap_rate: 0.1, excursions_per_hour: 0}}
"""


def _workbook(path: Path) -> None:
    book = Workbook()
    sheets: dict[str, list[list[Any]]] = {
        "products": [
            ["external_id", "name", "unit_of_measure", "serialised"],
            ["MCB-C16", "Miniature circuit breaker C16", "pcs", "yes"],
            ["HOUSING", "Housing, PA66", "pcs", "no"],
            ["CONTACT", "Silver contact", "pcs", "no"],
        ],
        "routings": [
            [
                "routing",
                "product",
                "sequence",
                "name",
                "machine",
                "ideal_cycle_time_s",
                "setup_time_s",
                "serialises",
            ],
            ["R-MCB", "MCB-C16", 10, "Assemble and trip test", "breaker-01", CYCLE_S, 0, "yes"],
        ],
        "bom": [
            ["parent", "component", "quantity_per_unit", "scrap_allowance_pct"],
            ["MCB-C16", "HOUSING", 1, 2],
            ["MCB-C16", "CONTACT", 2, 0],
        ],
        "work_orders": [
            ["external_id", "product", "quantity", "routing", "priority"],
            ["WO-E2E-1", "MCB-C16", ORDERED, "R-MCB", 10],
        ],
    }
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)


def _time_weighted(samples: list[tuple[int, float]], start: int, end: int) -> dict[str, float]:
    """Min, max and time-weighted mean of a sample-and-hold series over ``[start, end)``."""
    held = [(max(ts, start), value) for ts, value in samples if ts < end]
    held = [h for i, h in enumerate(held) if i + 1 == len(held) or held[i + 1][0] > start]
    total = weighted = 0.0
    values = []
    for (ts, value), (following, _) in zip(held, [*held[1:], (end, 0.0)], strict=True):
        if following > ts:
            total += following - ts
            weighted += value * (following - ts)
            values.append(value)
    return {"min": min(values), "max": max(values), "mean": weighted / total}


@pytest.fixture
def api(plant: PlantRun) -> Iterator[httpx.Client]:
    """The cloud API of the run (closed after the test: no socket left open)."""
    with httpx.Client(base_url=plant.api + "/api", timeout=10) as client:
        yield client


def test_an_imported_order_runs_on_the_simulated_line_and_traces(
    plant: PlantRun, api: httpx.Client, tmp_path: Path
) -> None:
    fast = tmp_path / "breaker_fast.yaml"
    text = profile_path("breaker_assembly_station").read_text()
    fast.write_text(text.replace("ideal_cycle_time_s: 12.0", f"ideal_cycle_time_s: {CYCLE_S}"))
    plant.start_sim(scenario_text=SCENARIO.format(profile=fast))
    plant.start_cloud()
    plant.start_edge()
    wait_for(lambda: len(plant.get("/api/machines")) == 1, 60, "the station's birth stored")
    [machine] = plant.get("/api/machines")

    workbook = tmp_path / "orders.xlsx"
    _workbook(workbook)
    with workbook.open("rb") as handle:
        imported = api.post("/production/import", files={"file": ("orders.xlsx", handle)})
    assert imported.status_code == 200, imported.text
    order = api.get("/work-orders").json()[0]
    assert (order["external_id"], order["quantity_ordered"]) == ("WO-E2E-1", ORDERED)
    for lot, product in (("L-HOUSING-7", "HOUSING"), ("L-CONTACT-3", "CONTACT")):
        body = {"product": product, "quantity": 1000, "supplier": "Acme", "supplier_lot": "H-9"}
        assert api.put(f"/erp/lots/{lot}", json=body).status_code == 200
    orders = f"/work-orders/{order['id']}"
    assert api.post(f"{orders}/release").status_code == 200
    for lot in ("L-HOUSING-7", "L-CONTACT-3"):
        assert api.post(f"{orders}/staged-lots", json={"lot": lot}).status_code == 201
    started = api.post(f"{orders}/operations/10/start", json={"operator": "A. Ortiz"})
    assert (started.status_code, started.json()["machine_id"]) == (200, machine["id"])

    # counts flow from the edge into the operation; estimate once a few units are made
    def progress() -> dict[str, Any]:
        return dict(api.get(f"{orders}/progress").json())

    wait_for(lambda: progress()["current_good"] >= 3, 60, "three good units counted")
    estimate = progress()
    asked_ms = time.time_ns() // 1_000_000
    assert estimate["rate_source"] == "observed", estimate
    wait_for(lambda: progress()["current_good"] >= ORDERED, 120, "the order's quantity made")
    actual_ms = time.time_ns() // 1_000_000
    predicted = estimate["estimated_completion_ms"] - asked_ms
    taken = actual_ms - asked_ms
    # the estimate extrapolates the observed rate; the simulator's cycles and scrap vary
    assert abs(taken - predicted) <= 0.35 * predicted + 3_000, (estimate, taken, predicted)

    finished = api.post(f"{orders}/operations/10/finish", json={"operator": "A. Ortiz"}).json()
    assert finished["machine_good"] >= ORDERED
    assert api.post(f"{orders}/complete").status_code == 200

    # every cycle bound a unit from the PLC's serial tag; backflush booked the BOM
    units = plant.sql(
        "SELECT u.serial, c.start_ms, c.end_ms FROM unit u JOIN unit_cycle c ON c.unit_id = u.id "
        "WHERE c.source = 'plc' AND c.end_ms IS NOT NULL ORDER BY c.start_ms"
    )
    assert len(units) >= finished["machine_cycles"] - 1, (units, finished)
    made = finished["good"] + finished["scrap"]
    booked = dict(plant.sql(
        "SELECT p.external_id, SUM(c.quantity) FROM consumption c "
        "JOIN material_lot l ON l.id = c.consumed_lot_id JOIN product p ON p.id = l.product_id "
        "WHERE c.source = 'backflush' GROUP BY p.external_id"
    ))  # fmt: skip
    assert booked == {"HOUSING": pytest.approx(made), "CONTACT": pytest.approx(2 * made)}

    # a unit in the middle of the run: its trace summarises its own cycle, like the raw series
    serial, start, end = units[len(units) // 2]
    unit = api.get(f"/trace/units/{serial}").json()
    [operation] = unit["operations"]
    assert (operation["window"], operation["window_start_ms"], operation["window_end_ms"]) == (
        "unit_cycle", start, end,
    )  # fmt: skip
    assert operation["machine"] == machine["name"]
    assert operation["operators"] == ["A. Ortiz"]
    assert {lot["lot"] for lot in unit["lots"]} == {"L-HOUSING-7", "L-CONTACT-3"}
    summaries = {p["metric"]: p for p in operation["parameters"]}
    assert {"screw_torque", "press_force", "trip_current", "trip_time"} <= set(summaries)
    checked = 0
    for metric, summary in summaries.items():
        raw = api.get("/series", params={"machine": machine["id"], "metric": metric,
                                          "start": start - 600_000, "end": end}).json()  # fmt: skip
        samples = [(s["ts_ms"], s["value"]) for s in raw["samples"] if s["value"] is not None]
        if not any(ts < end for ts, _ in samples):
            continue
        expected = _time_weighted(samples, start, end)
        assert summary["min"] == pytest.approx(expected["min"]), metric
        assert summary["max"] == pytest.approx(expected["max"]), metric
        assert summary["mean"] == pytest.approx(expected["mean"]), metric
        checked += 1
    assert checked >= 4

    report = api.get(f"/trace/units/{serial}/report", params={"format": "pdf"})
    assert report.headers["content-type"] == "application/pdf"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = "\n".join(
            page.extract_text() for page in PdfReader(io.BytesIO(report.content)).pages
        )
    for word in (serial, "WO-E2E-1", "MCB-C16", machine["name"], "L-HOUSING-7", "screw_torque",
                 "A. Ortiz"):  # fmt: skip
        assert word in text, (word, text[:2000])
