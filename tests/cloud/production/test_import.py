"""The spreadsheet import over a real database (SQLite and PostgreSQL): workbooks built with
openpyxl, CSV files, the ``forgeline import`` command as a subprocess, and the upload route."""

from __future__ import annotations

import io
import subprocess
import sys
import warnings
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

with warnings.catch_warnings():
    # starlette 1.x asks for httpx2 and warns once, at import, when it finds only httpx
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

from cloud.api import imports
from cloud.api.app import create_app
from cloud.assets.models import Area, Line, Machine, Site
from cloud.db import create_engine_for, migrate
from cloud.errors import InvalidRequest
from cloud.production import importer, service
from cloud.production.importer import ImportFile, ImportRejected, run_import
from cloud.production.models import BomItem, Product, Routing, RoutingOperation, WorkOrder
from forgeline import cli_import

NOW = 1_900_000_000_000
FORGELINE = Path(sys.executable).parent / "forgeline"
EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples" / "import"
LINES = {  # the demo plant's lines and machines (names as their births give them)
    "Valve line": ["cnc-01", "cnc-02", "valve-test-01", "pump-test-01"],
    "Breaker line": ["breaker-01", "twin"],
    "Sole line": ["press-01", "twin"],  # two machines named "twin": ambiguous
}


def seed_plant(engine) -> dict[str, int]:
    """The lines and machines of ``LINES``; answers their ids by name (the first twin)."""
    ids: dict[str, int] = {}
    with Session(engine) as session:
        session.add(Site(id="demo-plant", name="Demo plant"))
        session.flush()
        area = Area(site_id="demo-plant", name="Plant")
        session.add(area)
        session.flush()
        for line_name, machines in LINES.items():
            line = Line(area_id=area.id, name=line_name)
            session.add(line)
            session.flush()
            ids[line_name] = line.id
            for name in machines:
                machine = Machine(
                    name=name, site_id="demo-plant", area_id=area.id, line_id=line.id,
                    edge="edge1", device=f"{name}-{line.id}", created_ms=0, updated_ms=0,
                )  # fmt: skip
                session.add(machine)
                session.flush()
                ids.setdefault(name, machine.id)
        session.commit()
    return ids


@pytest.fixture
def plant(db_engine):
    return {"engine": db_engine, **seed_plant(db_engine)}


def xlsx(sheets: dict[str, list[list]]) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_text(rows: list[list], delimiter: str = ",") -> bytes:
    return "\n".join(delimiter.join(str(c) for c in row) for row in rows).encode() + b"\n"


PRODUCTS = [
    ["external_id", "name", "unit_of_measure", "serialised"],
    ["PUMP-50", "Centrifugal pump 50 m3/h", "pcs", "yes"],
    ["HOUSING", "Pump housing", None, "no"],
    ["CASTING", "Housing casting", "pcs", None],
    ["IMPELLER", "Impeller", "pcs", False],
    ["SEAL-KIT", "Seal kit", "set", 0],
    ["BOLT", "Bolt M12", "pcs", "NO"],
]
ROUTINGS = [
    ["routing", "product", "sequence", "name", "machine", "line", "ideal_cycle_time_s",
     "setup_time_s", "serialises"],
    ["R-PUMP", "PUMP-50", 10, "Machine housing seat", "CNC-01", None, 42.5, 900, "no"],
    ["R-PUMP", None, 20, "Assemble", None, "Valve line", 300, None, "yes"],
    ["R-PUMP", "PUMP-50", 30, "Performance test", "pump-test-01", None, 240, 60, None],
    ["R-HOUSING", "HOUSING", 10, "Rough machining", "cnc-02", None, 600, 1800, None],
]  # fmt: skip
BOM = [
    ["Parent", " Component ", "Quantity Per Unit", "scrap_allowance_pct"],
    ["PUMP-50", "HOUSING", 1, 2],
    ["PUMP-50", "IMPELLER", 1, None],
    ["PUMP-50", "SEAL-KIT", 2, 0.5],
    ["HOUSING", "CASTING", 1, 3],
    ["HOUSING", "BOLT", 6, None],
]
WORK_ORDERS = [
    ["external_id", "product", "quantity", "routing", "due", "priority"],
    # an Excel date-time cell: local time, no zone
    ["WO-1001", "PUMP-50", 50, "R-PUMP", datetime.fromisoformat("2030-06-30T14:00"), 10],
    ["WO-1002", "HOUSING", 120.0, None, date(2030, 7, 1), None],  # its only routing
    ["WO-1003", "CASTING", "300", None, "2030-07-02T08:00:00+00:00", "-5"],  # no routing
]
PLAN = {"products": PRODUCTS, "routings": ROUTINGS, "bom": BOM, "work_orders": WORK_ORDERS}


def run(engine, *files: ImportFile, **options):
    with Session(engine) as session:
        return run_import(session, files, now=options.pop("now", NOW), **options)


def rejected(engine, *files: ImportFile, **options) -> list[str]:
    with pytest.raises(ImportRejected) as caught:
        run(engine, *files, **options)
    return list(caught.value.problems)


def counts(result) -> dict[str, tuple[int, int, int]]:
    return {k: (c.created, c.updated, c.unchanged) for k, c in result.counts.items()}


def rows_in(engine) -> tuple[int, ...]:
    with Session(engine) as session:
        return tuple(
            session.scalar(select(func.count()).select_from(model))
            for model in (Product, BomItem, Routing, RoutingOperation, WorkOrder)
        )


def test_a_workbook_imports_a_three_level_bom_routings_and_work_orders(plant):
    engine = plant["engine"]
    result = run(engine, ImportFile("plan.xlsx", xlsx(PLAN)), tz="Europe/Berlin")
    assert counts(result) == {
        "products": (6, 0, 0), "routings": (2, 0, 0), "bom": (2, 0, 0), "work_orders": (3, 0, 0),
    }  # fmt: skip
    assert result.dry_run is False
    with Session(engine) as session:
        product = {p.external_id: p for p in session.scalars(select(Product))}
        assert (product["PUMP-50"].serialised, product["HOUSING"].unit_of_measure) == (True, "pcs")
        assert (product["SEAL-KIT"].unit_of_measure, product["SEAL-KIT"].serialised) == (
            "set",
            False,
        )
        by_id = {p.id: k for k, p in product.items()}
        bom = sorted(
            (by_id[i.parent_product_id], by_id[i.component_product_id], i.quantity_per_unit,
             i.scrap_allowance_pct)
            for i in session.scalars(select(BomItem))
        )  # fmt: skip
        assert bom == [
            ("HOUSING", "BOLT", 6, 0), ("HOUSING", "CASTING", 1, 3),
            ("PUMP-50", "HOUSING", 1, 2), ("PUMP-50", "IMPELLER", 1, 0),
            ("PUMP-50", "SEAL-KIT", 2, 0.5),
        ]  # fmt: skip
        routing = session.scalar(select(Routing).where(Routing.external_id == "R-PUMP"))
        assert (routing.name, routing.product_id) == ("R-PUMP", product["PUMP-50"].id)
        steps = [
            (op.sequence, op.name, op.machine_id, op.line_id, op.ideal_cycle_time_s,
             op.setup_time_s, op.serialises)
            for op in service.routing_operations(session, routing.id)
        ]  # fmt: skip
        assert steps == [
            (10, "Machine housing seat", plant["cnc-01"], None, 42.5, 900, False),
            (20, "Assemble", None, plant["Valve line"], 300, 0, True),
            (30, "Performance test", plant["pump-test-01"], None, 240, 60, False),
        ]
        order = {o.external_id: o for o in session.scalars(select(WorkOrder))}
        berlin_summer = 2 * 3_600_000  # CEST is UTC+2
        assert order["WO-1001"].due_ms == utc_ms(2030, 6, 30, 14) - berlin_summer
        assert (order["WO-1001"].priority, order["WO-1001"].quantity_ordered) == (10, 50)
        assert order["WO-1002"].due_ms == utc_ms(2030, 7, 1) - berlin_summer
        assert order["WO-1002"].routing_id is not None  # the housing's only routing
        assert (order["WO-1002"].priority, order["WO-1002"].state) == (500, "planned")
        assert order["WO-1003"].due_ms == utc_ms(2030, 7, 2, 8)  # its own offset wins
        assert (order["WO-1003"].routing_id, order["WO-1003"].priority) == (None, -5)
        released = service.work_order_action(session, order["WO-1001"].id, "release", NOW)
        machines = [op.machine_id for op in service.operations_of(session, released.id)]
        assert machines == [plant["cnc-01"], None, plant["pump-test-01"]]


def utc_ms(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp() * 1000)


def test_a_repeat_changes_nothing_and_a_change_is_counted_as_an_update(plant):
    engine = plant["engine"]
    plan = ImportFile("plan.xlsx", xlsx(PLAN))
    run(engine, plan)
    before = rows_in(engine)
    with Session(engine) as session:
        stamps = sorted(session.scalars(select(Product.updated_ms)))
    again = run(engine, plan, now=NOW + 60_000)
    assert counts(again) == {
        "products": (0, 0, 6), "routings": (0, 0, 2), "bom": (0, 0, 2), "work_orders": (0, 0, 3),
    }  # fmt: skip
    assert rows_in(engine) == before == (6, 5, 2, 4, 3)
    with Session(engine) as session:
        assert sorted(session.scalars(select(Product.updated_ms))) == stamps == [NOW] * 6

    changed = {
        "products": [PRODUCTS[0], ["BOLT", "Bolt M12x40", "pcs", "no"]],
        "bom": [BOM[0], ["HOUSING", "CASTING", 1, 3], ["HOUSING", "BOLT", 8, None]],
        "work_orders": [WORK_ORDERS[0], ["WO-1003", "CASTING", 250, None, None, None]],
    }
    result = run(engine, ImportFile("changes.xlsx", xlsx(changed)), now=NOW + 120_000)
    assert counts(result) == {"products": (0, 1, 0), "bom": (0, 1, 0), "work_orders": (0, 1, 0)}
    assert rows_in(engine) == before
    with Session(engine) as session:
        order = session.scalar(select(WorkOrder).where(WorkOrder.external_id == "WO-1003"))
        assert (order.quantity_ordered, order.due_ms, order.priority) == (250, None, 500)
        bolt = session.scalar(select(Product).where(Product.external_id == "BOLT"))
        assert (bolt.name, bolt.updated_ms) == ("Bolt M12x40", NOW + 120_000)


def test_csv_files_take_their_kind_from_their_name_or_from_the_caller(plant):
    engine = plant["engine"]
    files = [
        ImportFile("exports/Products.csv", csv_text(PRODUCTS).replace(b"None", b"")),
        # Excel in a German locale: ';' between fields, a byte-order mark, "Work Orders"
        ImportFile("bom.csv", b"\xef\xbb\xbf" + csv_text(BOM, ";").replace(b"None", b"")),
        ImportFile("routings.csv", csv_text(ROUTINGS, "\t").replace(b"None", b"")),
        ImportFile("auftraege.csv", csv_text([
            [" External_ID ", "PRODUCT", "quantity", "due"],
            ["WO-7", "PUMP-50", 5, "2030-06-30 14:00"],
            [],
            ["WO-8", "HOUSING", 10, ""],
        ]), kind="work_orders"),
    ]  # fmt: skip
    result = run(engine, *files, tz="Europe/Berlin")
    assert counts(result) == {
        "products": (6, 0, 0), "routings": (2, 0, 0), "bom": (2, 0, 0), "work_orders": (2, 0, 0),
    }  # fmt: skip
    with Session(engine) as session:
        order = session.scalar(select(WorkOrder).where(WorkOrder.external_id == "WO-7"))
        assert order.due_ms == utc_ms(2030, 6, 30, 12)
        assert session.scalar(select(func.sum(BomItem.quantity_per_unit))) == 11


def test_every_problem_in_the_files_is_listed_with_its_place_and_nothing_is_written(plant):
    engine = plant["engine"]
    workbook = xlsx({
        "products": [
            ["external_id", "name", "serialised", "colour"],
        ],
        "Sheet1": [["notes"]],
        "bom": [
            ["parent", "component", "quantity_per_unit", "scrap_allowance_pct"],
            ["PUMP-50", "HOUSING", "abc", None],
            ["PUMP-50", "SEAL-KIT", 2, 100],
            ["PUMP-50", "SEAL-KIT", 1, None],
            ["PUMP-50", None, 1, -1],
        ],
        "routings": [
            ["routing", "product", "sequence", "name", "machine", "line", "setup_time_s"],
            ["R-1", "PUMP-50", 10, "Turn", "cnc-99", None, None],
            ["R-1", "HOUSING", 20, "Mill", "twin", None, None],
            ["R-1", None, 10, "Test", "cnc-01", "Valve line", "-5"],
            ["R-1", None, 30, "Pack", None, None, None],
            ["R-2", None, 10, "Drill", None, "Paint line", None],
            ["R-3", "PUMP-50", "ten", "Drill", "cnc-01", None, None],
        ],
        "work_orders": [
            ["external_id", "product", "quantity", "due", "priority", None],
            ["WO-1", "PUMP-50", 2.5, "next week", "high", None],
            ["WO-2", date(2030, 1, 1), 0, 45000, None, "stray"],
            ["WO-1", "PUMP-50", 1, "1969-12-31", None, None],
        ],
    })  # fmt: skip
    products = csv_text([
        ["external_id", "name", "serialised"],
        ["PUMP-50", "Pump", "maybe"],
        ["PUMP-50", "", "yes"],
        ["X" * 65, "Too long", "no"],
        ["P-2", "Pump 2", "1"],
        ["P-2", "Pump 2", "0"],
    ])  # fmt: skip
    files = [
        ImportFile("plan.xlsx", workbook),
        ImportFile("products.csv", products),
        ImportFile("orders.csv", products),
        ImportFile("bom.csv", b"parent;component;quantity_per_unit\nP;C;1,5\n"),
        ImportFile("work_orders.csv", "external_id,product\n\xe4".encode("latin-1")),
        ImportFile("plan.ods", b"PK"),
        ImportFile("broken.xlsx", b"this is not a zip file"),
    ]
    problems = rejected(engine, *files)
    known = "external_id, name, unit_of_measure, serialised"
    machines = "breaker-01, cnc-01, cnc-02, press-01, pump-test-01, twin, valve-test-01"
    assert problems == [
        f"plan.xlsx, sheet products, row 1, column colour: unknown column; a products sheet takes {known}",
        "plan.xlsx, sheet Sheet1: unknown sheet; name it one of products, routings, bom, work_orders",
        "plan.xlsx, sheet bom, row 2, column quantity_per_unit: 'abc' is not a number",
        "plan.xlsx, sheet bom, row 3, column scrap_allowance_pct: 100 must be less than 100",
        "plan.xlsx, sheet bom, row 5, column component: empty; give a value",
        "plan.xlsx, sheet bom, row 5, column scrap_allowance_pct: -1 must be 0 or more",
        f"plan.xlsx, sheet routings, row 2, column machine: no machine named 'cnc-99' (known: {machines})",
        "plan.xlsx, sheet routings, row 3, column machine: 2 machines are named 'twin' "
        f"(ids {plant['twin']}, {plant['twin'] + 2}); rename one",
        "plan.xlsx, sheet routings, row 4, column line: give a machine or a line, not both",
        "plan.xlsx, sheet routings, row 4, column setup_time_s: -5 must be 0 or more",
        "plan.xlsx, sheet routings, row 5, column machine: empty; give the machine or the line the operation runs on",
        "plan.xlsx, sheet routings, row 6, column line: no line named 'Paint line' "
        "(known: Breaker line, Sole line, Valve line)",
        "plan.xlsx, sheet routings, row 7, column sequence: 'ten' is not a number",
        "plan.xlsx, sheet work_orders, row 2, column quantity: 2.5 is not a whole number",
        "plan.xlsx, sheet work_orders, row 2, column due: 'next week' is not a date or date-time "
        "(give e.g. 2024-06-30 or 2024-06-30 14:00)",
        "plan.xlsx, sheet work_orders, row 2, column priority: 'high' is not a number",
        "plan.xlsx, sheet work_orders, row 3: 'stray' is in a column without a name",
        "plan.xlsx, sheet work_orders, row 3, column product: 2030-01-01 00:00:00 is a date or "
        "time, not text (format the column as text)",
        "plan.xlsx, sheet work_orders, row 3, column quantity: 0 must be 1 or more",
        "plan.xlsx, sheet work_orders, row 3, column due: 45000 is not a date or date-time "
        "(format the cell as a date)",
        "plan.xlsx, sheet work_orders, row 4, column due: '1969-12-31' is before 1970",
        "products.csv, row 2, column serialised: 'maybe' is not yes or no (give yes, no, true, false, 1 or 0)",
        "products.csv, row 3, column name: empty; give a value",
        "products.csv, row 4, column external_id: 'XXXXXXXXXXXXXXXXXXXX'... is longer than 64 characters",
        "products.csv, row 6, column external_id: 'P-2' is also on products.csv, row 5",
        "orders.csv: cannot tell what the file holds: name it products.csv, routings.csv, bom.csv, "
        "work_orders.csv, or give its kind",
        "bom.csv, row 2, column quantity_per_unit: '1,5' is not a number (use a decimal point)",
        "work_orders.csv: not UTF-8 text (byte 20); save it as 'CSV UTF-8'",
        "plan.ods: not an Excel workbook (.xlsx) or a CSV file (.csv); save it as one of those",
        "broken.xlsx: not a readable Excel workbook (File is not a zip file)",
    ]  # fmt: skip
    assert rows_in(engine) == (0, 0, 0, 0, 0)


def test_a_header_row_must_name_the_required_columns_once(plant):
    header_only = {
        "bom": [["parent", "Parent", "quantity"]],
        "routings": [["routing", "product", "sequence", "name"], ["R", "P", 10, "x"]],
    }
    assert rejected(plant["engine"], ImportFile("plan.xlsx", xlsx(header_only))) == [
        "plan.xlsx, sheet bom, row 1, column quantity: unknown column; a bom sheet takes "
        "parent, component, quantity_per_unit, scrap_allowance_pct",
        "plan.xlsx, sheet bom, row 1, column parent: the column is there twice",
        "plan.xlsx, sheet bom, row 1, column component: the column is missing",
        "plan.xlsx, sheet bom, row 1, column quantity_per_unit: the column is missing",
        "plan.xlsx, sheet routings, row 1, column machine: the column is missing (give machine or line)",
    ]  # fmt: skip


def test_what_the_service_refuses_is_told_at_the_row_it_came_from(plant):
    engine = plant["engine"]
    plan = {
        "products": PRODUCTS,
        "routings": ROUTINGS,
        "bom": [
            BOM[0],
            ["PUMP-50", "HOUSING", 1, None],
            ["HOUSING", "CASTING", 1, None],
            ["HOUSING", "BOLT", 4, None],
            ["CASTING", "PUMP-50", 1, None],  # PUMP-50 is made of HOUSING, of CASTING: a cycle
            ["IMPELLER", "NOPE", 1, None],
            ["GHOST", "BOLT", 1, None],
        ],
        "work_orders": [
            WORK_ORDERS[0],
            ["WO-1", "PUMP-50", 1, "R-HOUSING", None, None],
            ["WO-2", "PUMP-9", 1, None, None, None],
            ["WO-3", "HOUSING", 1, "R-NONE", None, None],
        ],
    }
    assert rejected(engine, ImportFile("plan.xlsx", xlsx(plan))) == [
        "plan.xlsx, sheet bom, row 5, column component: 'PUMP-50' would make the BOM of "
        "'CASTING' a cycle",
        "plan.xlsx, sheet bom, row 6, column component: no product with external id 'NOPE'",
        "plan.xlsx, sheet bom, row 7, column parent: no product with external id 'GHOST'",
        "plan.xlsx, sheet work_orders, row 2, column routing: 'R-HOUSING' makes another product",
        "plan.xlsx, sheet work_orders, row 3, column product: no product with external id 'PUMP-9'",
        "plan.xlsx, sheet work_orders, row 4, column routing: no routing with external id 'R-NONE'",
    ]
    assert rows_in(engine) == (0, 0, 0, 0, 0)


def test_an_order_that_has_run_cannot_be_changed_by_a_re_import(plant):
    engine = plant["engine"]
    run(engine, ImportFile("plan.xlsx", xlsx(PLAN)))
    with Session(engine) as session:
        order = session.scalar(select(WorkOrder).where(WorkOrder.external_id == "WO-1001"))
        for action in ("release", "start", "complete"):
            service.work_order_action(session, order.id, action, NOW)
        session.commit()
    orders = [WORK_ORDERS[0], ["WO-1001", "PUMP-50", 999, None, None, None]]
    assert rejected(engine, ImportFile("again.csv", csv_text(orders).replace(b"None", b""),
                                       "work_orders")) == [
        "again.csv, row 2: work order WO-1001 is completed: cannot update; allowed actions: none (final state)",
    ]  # fmt: skip


def test_the_problem_list_is_capped(plant):
    rows = [["external_id", "name"]] + [[f"P-{n}", None] for n in range(60)]
    with pytest.raises(ImportRejected) as caught:
        run(plant["engine"], ImportFile("products.csv", csv_text(rows).replace(b"None", b"")))
    error = caught.value
    assert (len(error.problems), error.omitted) == (importer.MAX_PROBLEMS, 10)
    assert str(error).startswith("nothing was imported: 60 problems\nproducts.csv, row 2, column")
    assert str(error).endswith("\n... and 10 more")


def test_a_dry_run_counts_what_would_change_and_writes_nothing(plant):
    engine = plant["engine"]
    result = run(engine, ImportFile("plan.xlsx", xlsx(PLAN)), dry_run=True)
    assert result.dry_run is True
    assert counts(result) == {
        "products": (6, 0, 0), "routings": (2, 0, 0), "bom": (2, 0, 0), "work_orders": (3, 0, 0),
    }  # fmt: skip
    assert rows_in(engine) == (0, 0, 0, 0, 0)


def test_bad_arguments_are_refused_before_any_reading(plant):
    assert rejected(plant["engine"], ImportFile("plan.xlsx", xlsx(PLAN)), tz="Mars/Olympus") == [
        "tz: unknown time zone 'Mars/Olympus'; give an IANA name such as UTC or Europe/Berlin"
    ]
    assert rejected(plant["engine"]) == [
        "nothing to import: the files hold no rows under their header rows"
    ]
    with pytest.raises(InvalidRequest, match=r"^kind: 'orders' is not one of"):
        ImportFile("x.csv", b"", kind="orders")
    single = xlsx({"Tabelle1": PRODUCTS})
    assert counts(run(plant["engine"], ImportFile("p.xlsx", single, "products"))) == {
        "products": (6, 0, 0)
    }
    two = ImportFile("two.xlsx", xlsx({"a": PRODUCTS, "b": PRODUCTS}), "products")
    assert rejected(plant["engine"], two) == [
        "two.xlsx: a kind is given, so the workbook must have one sheet; it has 2"
    ]


def test_the_documented_examples_import(plant):
    files = [ImportFile(path.name, path.read_bytes()) for path in sorted(EXAMPLES.glob("*.csv"))]
    result = run(plant["engine"], *files, tz="Europe/Berlin")
    assert counts(result) == {
        "products": (5, 0, 0), "routings": (2, 0, 0), "bom": (2, 0, 0), "work_orders": (2, 0, 0),
    }  # fmt: skip


# --------------------------------------------------------------------------- API


@pytest.fixture
def client(plant):
    app = create_app(plant["engine"])
    if not any(getattr(route, "path", "") == "/api/production/import" for route in app.routes):
        app.include_router(imports.router)  # until cloud/api/app.py includes the router
    with TestClient(app) as test_client:
        yield test_client


def test_the_upload_route_imports_a_workbook(client, plant):
    files = {"file": ("plan.xlsx", xlsx(PLAN), "application/octet-stream")}
    dry = client.post("/api/production/import?dry_run=true&tz=Europe/Berlin", files=files)
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True
    assert rows_in(plant["engine"]) == (0, 0, 0, 0, 0)
    response = client.post("/api/production/import", params={"tz": "Europe/Berlin"}, files=files)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "dry_run": False,
        "counts": {
            "products": {"created": 6, "updated": 0, "unchanged": 0},
            "routings": {"created": 2, "updated": 0, "unchanged": 0},
            "bom": {"created": 2, "updated": 0, "unchanged": 0},
            "work_orders": {"created": 3, "updated": 0, "unchanged": 0},
        },
    }
    assert dry.json()["counts"] == response.json()["counts"]
    orders = client.get("/api/work-orders").json()
    assert [o["external_id"] for o in orders] == ["WO-1003", "WO-1001", "WO-1002"]


def test_the_upload_route_answers_400_with_every_problem(client, plant):
    bad = csv_text([["external_id", "product", "quantity"], ["WO-1", "PUMP-50", "lots"],
                    ["WO-2", None, 1]]).replace(b"None", b"")  # fmt: skip
    response = client.post("/api/production/import", params={"kind": "work_orders"},
                           files={"file": ("orders.csv", bad, "text/csv")})  # fmt: skip
    assert response.status_code == 400
    assert response.json()["problems"] == [
        "orders.csv, row 2, column quantity: 'lots' is not a number",
        "orders.csv, row 3, column product: empty; give a value",
    ]
    assert response.json()["omitted"] == 0
    assert response.json()["detail"].startswith("nothing was imported: 2 problems\n")
    missing = client.post("/api/production/import")
    assert (missing.status_code, missing.json()["detail"][:5]) == (400, "file:")
    bad_kind = client.post("/api/production/import?kind=orders",
                           files={"file": ("orders.csv", bad, "text/csv")})  # fmt: skip
    assert bad_kind.status_code == 400
    assert bad_kind.json()["detail"].startswith("kind: 'orders' is not one of")
    assert rows_in(plant["engine"]) == (0, 0, 0, 0, 0)


# --------------------------------------------------------------------------- CLI


def test_the_cli_lists_the_importer_s_kinds():
    assert cli_import.KINDS == importer.KINDS


def forgeline(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FORGELINE), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def test_forgeline_import_runs_against_a_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'plant.db'}"
    migrate(url)
    engine = create_engine_for(url)
    try:
        seed_plant(engine)
    finally:
        engine.dispose()
    (tmp_path / "plan.xlsx").write_bytes(xlsx(PLAN))
    args = ("import", "plan.xlsx", "--tz", "Europe/Berlin", "--database-url", url)

    dry = forgeline(*args, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        "products: 6 created, 0 updated, 0 unchanged",
        "routings: 2 created, 0 updated, 0 unchanged",
        "bom: 2 created, 0 updated, 0 unchanged",
        "work_orders: 3 created, 0 updated, 0 unchanged",
        "dry run: nothing was written",
    ]
    first = forgeline(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == "products: 6 created, 0 updated, 0 unchanged"
    again = forgeline(*args, cwd=tmp_path)
    assert again.stdout.splitlines()[-1] == "work_orders: 0 created, 0 updated, 3 unchanged"

    (tmp_path / "bom.csv").write_text("parent,component,quantity_per_unit\nPUMP-50,BOLT,x\n")
    bad = forgeline("import", "bom.csv", "--database-url", url, cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        "nothing was imported: 1 problem",
        "bom.csv, row 2, column quantity_per_unit: 'x' is not a number",
    ]
    as_kind = forgeline("import", "bom.csv", "--kind", "products", "--database-url", url,
                        cwd=tmp_path)  # fmt: skip
    assert as_kind.returncode == 2
    assert "bom.csv, row 1, column parent: unknown column" in as_kind.stderr
    bad_tz = forgeline(*args, "--tz", "Mars/Olympus", cwd=tmp_path)
    assert bad_tz.returncode == 2
    assert "Invalid value for '--tz': unknown time zone 'Mars/Olympus'" in bad_tz.stderr
    missing = forgeline("import", "nope.xlsx", "--database-url", url, cwd=tmp_path)
    assert (missing.returncode, "'nope.xlsx' does not exist" in missing.stderr) == (2, True)


def test_forgeline_import_help_explains_every_option(tmp_path):
    result = forgeline("import", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for option in ("--kind", "--dry-run", "--tz", "--database-url", "--config", "work_orders",
                   "quantity_per_unit", "Europe/Berlin"):  # fmt: skip
        assert option in result.stdout
