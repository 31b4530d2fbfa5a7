"""The demo's production run: a work order on the breaker cell, and how its units were made.

When the demo's cloud has seen ``breaker-01``, ``start_order`` loads a small master data set
through the ERP API (a breaker, its housing, a BOM, a routing on that machine), stages a lot
of housings, releases the order and starts its operation. From then on the cell's serial tag
creates the units (the cloud's unit binder), its counters count into the operation and the
housings are backflushed. ``summary`` reads the order's progress and the trace of its latest
finished unit for the report, and writes that unit's trace as a PDF next to the logs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MACHINE = "breaker-01"
ORDER = "WO-DEMO-1"
LOT = "L-HOUSING-DEMO"


def call_api(api: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - our own local API
        f"{api}/api{path}", data=data, method=method,
        headers={"content-type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - our own local API
        raw = response.read()
    return json.loads(raw) if raw and raw[:1] in (b"{", b"[") else raw


def wait_for_machine(
    api: str, device: str, timeout_s: float, stop: threading.Event | None = None
) -> int | None:
    """The id of the machine of ``device`` once the cloud has seen it (None after ``timeout_s``
    or when ``stop`` is set)."""
    waiting = stop or threading.Event()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not waiting.is_set():
        for machine in call_api(api, "GET", "/machines"):
            if machine["device"] == device:
                return int(machine["id"])
        waiting.wait(0.5)
    return None


def start_order(api: str, timeout_s: float = 30.0) -> int | None:
    """Master data, a released order with a staged lot, its operation started; the order id
    (None when the demo plant has no breaker cell)."""
    machine_id = wait_for_machine(api, MACHINE, timeout_s)
    if machine_id is None:
        log.warning("demo production: no machine %s seen; no work order started", MACHINE)
        return None
    call_api(api, "PUT", "/erp/products/MCB-C16",
          {"name": "Miniature circuit breaker C16", "serialised": True})  # fmt: skip
    call_api(api, "PUT", "/erp/products/HOUSING", {"name": "Housing, PA66"})
    call_api(api, "PUT", "/erp/products/MCB-C16/bom",
          {"items": [{"component": "HOUSING", "quantity_per_unit": 1, "scrap_allowance_pct": 2}]})  # fmt: skip
    call_api(api, "PUT", "/erp/routings/R-MCB", {
        "product": "MCB-C16", "name": "MCB assembly",
        "operations": [{"sequence": 10, "name": "Assemble and trip test",
                        "machine_id": machine_id, "ideal_cycle_time_s": 12, "serialises": True}],
    })  # fmt: skip
    call_api(api, "PUT", f"/erp/lots/{LOT}",
          {"product": "HOUSING", "quantity": 5000, "supplier": "Acme Plastics",
           "supplier_lot": "PA66-2611-07"})  # fmt: skip
    order = call_api(api, "PUT", f"/erp/work-orders/{ORDER}",
                  {"product": "MCB-C16", "quantity_ordered": 500, "priority": 10})  # fmt: skip
    order_id = int(order["id"])
    if order["state"] == "planned":
        call_api(api, "POST", f"/work-orders/{order_id}/release")
        call_api(api, "POST", f"/work-orders/{order_id}/staged-lots", {"lot": LOT})
        call_api(api, "POST", f"/work-orders/{order_id}/operations/10/start", {"operator": "demo"})
    log.info("demo production: work order %s running on %s (id %d)", ORDER, MACHINE, order_id)
    return order_id


class OrderStarter(threading.Thread):
    """``start_order`` in a thread; ``order_id`` is its answer (None until then, or on error)."""

    def __init__(self, api: str) -> None:
        super().__init__(name="demo-production", daemon=True)
        self.api = api
        self.order_id: int | None = None

    def run(self) -> None:
        try:
            self.order_id = start_order(self.api)
        except (OSError, ValueError) as error:
            log.error("demo production: could not start the work order: %s", error)


def summary(api: str, order_id: int, out_dir: Path) -> dict[str, Any]:
    """Progress of the order, its units, and the trace of its latest finished unit (one whose
    cycle has ended: a later unit has started)."""
    progress = call_api(api, "GET", f"/work-orders/{order_id}/progress")
    units = call_api(api, "GET", f"/work-orders/{order_id}/units")
    report: dict[str, Any] = {
        "work_order": ORDER, "state": progress["state"], "machine": MACHINE,
        "quantity_ordered": progress["quantity_ordered"], "good": progress["current_good"],
        "scrap": progress["quantity_scrap"], "units": len(units),
        "estimated_completion_ms": progress["estimated_completion_ms"], "traced_unit": None,
    }  # fmt: skip
    # the machine works on one unit at a time: every unit but the latest has finished its cycle
    for unit in reversed(units[:-1]):
        trace = call_api(api, "GET", f"/trace/units/{unit['serial']}")
        [operation] = trace["operations"]
        if operation["window"] != "unit_cycle":
            continue
        pdf = out_dir / f"trace-{unit['serial']}.pdf"
        pdf.write_bytes(call_api(api, "GET", f"/trace/units/{unit['serial']}/report?format=pdf"))
        report["traced_unit"] = {
            "serial": unit["serial"], "window_start_ms": operation["window_start_ms"],
            "window_end_ms": operation["window_end_ms"],
            "parameters": {p["metric"]: {k: p[k] for k in ("min", "max", "mean")}
                           for p in operation["parameters"]},
            "lots": sorted({lot["lot"] for lot in trace["lots"]}), "pdf": str(pdf),
        }  # fmt: skip
        break
    return report
