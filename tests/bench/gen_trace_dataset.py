"""Builds the traceability data set of the backward-trace benchmark in a PostgreSQL database.

Run by hand from the repository root (``bench_trace.py`` imports it too)::

    .venv/bin/python tests/bench/gen_trace_dataset.py [--units 1000000] [--samples 50000000]
        [--order-size 1000] [--seed 7] [--database-url postgresql+psycopg://.../name] [--keep]

Without ``--database-url`` the set goes into a new scratch database ``forgeline_trace_<random>``
on the server of ``FORGELINE_TEST_PG_URL``, dropped at the end unless ``--keep``. With it, the
named database is created if missing and must not hold units yet. Either way the schema is
brought to Alembic head by ``cloud.db.migrate``, so the indexes are forgeline's own.

The plant: one site, one hall, 4 lines of 5 machines (laser marker, press, welder, assembly
station, test bench), each machine with 5-8 traced series (process_param, temperature,
vibration, with limits) polled every 1-2 s. Line 1 makes VALVE-A (which contains an ACTUATOR
made on line 4), line 2 VALVE-B, line 3 BREAKER-C; routings of 3-4 operations, one machine
each. Work orders of ``--order-size`` units run one after the other on their line; each unit
gets a cycle per operation, laid end to end on its machine, consumption of material lots (and
of an actuator's serial on VALVE-A), a test record on its test bench, and every 200th unit an
inspection. Parameters drift, and about once a day per series an excursion beyond a limit
raises an alarm on the machine. The three-level BOM: VALVE-A → ACTUATOR → SPRING-STEEL.

The sample period is whatever makes ``--samples`` at those poll rates (50 M: about 6 days),
and the cycle time whatever fits ``--units`` into it (1 M: about 2 s), so a small run has the
same shape. Loading: secondary indexes and foreign keys of the loaded tables are dropped, the
rows are written with COPY (samples as binary COPY built with numpy), the indexes and
constraints are put back exactly as the migration made them, then VACUUM ANALYZE. Every phase
is timed; progress goes to stderr, the summary to stdout.
"""

# ruff: noqa: S608 - SQL text here is built from constant table and column names only
from __future__ import annotations

import argparse
import math
import random
import secrets
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
from scratch_db import pg_admin_url
from sqlalchemy.engine import URL, make_url

from cloud.db import migrate

S = 1000
T0 = int(datetime(2026, 11, 2, 6, 0, tzinfo=UTC).timestamp() * S)  # a Monday, first shift
SITE, EDGE_OF_LINE = "plant1", "line{}-ipc"
LINES, MACHINES_PER_LINE = 4, 5
BAD_SAMPLE_SHARE = 0.002
INSPECT_EVERY = 200
OPERATORS = ("a.schmidt", "b.novak", "c.rossi", "d.kowalski", "e.jansen", "f.dubois")


@dataclass(frozen=True)
class SeriesSpec:
    metric: str
    role: str
    unit: str
    setpoint: float
    sigma: float
    low: float | None
    high: float | None


def _s(metric: str, role: str, unit: str, sp: float, sigma: float,
       low: float | None, high: float | None) -> SeriesSpec:  # fmt: skip
    return SeriesSpec(metric, role, unit, sp, sigma, low, high)


P, T, V = "process_param", "temperature", "vibration"
# machine kind -> (poll interval ms, traced series); position k in a line is KINDS[k - 1]
KINDS: dict[str, tuple[int, tuple[SeriesSpec, ...]]] = {
    "marker": (2000, (
        _s("laser_power", P, "W", 20.0, 0.2, 19.0, 21.0),
        _s("scan_speed", P, "mm/s", 1500.0, 10.0, 1450.0, 1550.0),
        _s("fume_extraction_flow", P, "m3/h", 120.0, 2.0, 105.0, None),
        _s("lens_temp", T, "°C", 32.0, 0.5, None, 40.0),
        _s("table_vibration", V, "mm/s", 0.6, 0.08, None, 1.5),
    )),
    "press": (1000, (
        _s("press_force", P, "kN", 120.0, 1.5, 110.0, 130.0),
        _s("ram_speed", P, "mm/s", 35.0, 0.5, 31.0, 39.0),
        _s("stroke_depth", P, "mm", 42.0, 0.05, 41.7, 42.3),
        _s("hydraulic_oil_temp", T, "°C", 48.0, 0.8, 35.0, 55.0),
        _s("die_temp", T, "°C", 65.0, 1.2, 55.0, 75.0),
        _s("frame_vibration", V, "mm/s", 2.2, 0.25, None, 4.5),
    )),
    "welder": (1000, (
        _s("weld_current", P, "kA", 8.5, 0.12, 8.0, 9.0),
        _s("weld_voltage", P, "V", 24.0, 0.3, 22.5, 25.5),
        _s("weld_time", P, "ms", 180.0, 3.0, 165.0, 195.0),
        _s("electrode_force", P, "kN", 3.2, 0.05, 2.9, 3.5),
        _s("cooling_water_temp", T, "°C", 22.0, 0.5, 15.0, 28.0),
        _s("transformer_temp", T, "°C", 55.0, 1.0, None, 75.0),
        _s("gun_vibration", V, "mm/s", 1.5, 0.2, None, 3.5),
    )),
    "assembly": (2000, (
        _s("screw_torque", P, "N·m", 12.0, 0.2, 11.0, 13.0),
        _s("press_fit_force", P, "kN", 4.5, 0.15, 3.8, 5.2),
        _s("spindle_temp", T, "°C", 38.0, 0.8, None, 50.0),
        _s("hall_temp", T, "°C", 23.0, 0.3, 15.0, 30.0),
        _s("spindle_vibration", V, "mm/s", 1.1, 0.15, None, 2.8),
    )),
    "tester": (1500, (
        _s("test_pressure", P, "bar", 16.0, 0.08, 15.5, 16.5),
        _s("leak_rate", P, "mbar·l/s", 0.0012, 0.0002, None, 0.003),
        _s("fill_time", P, "s", 2.1, 0.05, 1.8, 2.5),
        _s("supply_pressure", P, "bar", 6.2, 0.05, 5.8, 6.6),
        _s("flow", P, "l/min", 3.5, 0.08, 3.0, 4.0),
        _s("test_temp", T, "°C", 21.0, 0.3, 18.0, 25.0),
        _s("chamber_temp", T, "°C", 24.0, 0.4, 18.0, 30.0),
        _s("pump_vibration", V, "mm/s", 1.8, 0.2, None, 4.0),
    )),
}  # fmt: skip
KIND_AT = tuple(KINDS)  # position 1..5 in a line


@dataclass(frozen=True)
class Characteristic:
    name: str
    unit: str
    mean: float
    sigma: float
    low: float | None
    high: float | None


@dataclass(frozen=True)
class ProductSpec:
    code: str
    name: str
    serial_prefix: str
    line: int
    route: tuple[tuple[int, str], ...]  # (machine position in the line, operation name)
    materials: tuple[tuple[str, int, float], ...]  # (material code, route index, qty per unit)
    component_at: int | None = None  # route index where an ACTUATOR serial goes in
    test: tuple[str, tuple[Characteristic, ...]] | None = None  # on the route's last step


LEAK_TEST = ("leak_test", (
    Characteristic("leak_rate", "mbar·l/s", 0.0012, 0.0003, None, 0.003),
    Characteristic("test_pressure", "bar", 16.0, 0.05, 15.5, 16.5),
))  # fmt: skip
TRIP_TEST = ("trip_test", (
    Characteristic("trip_time", "ms", 12.0, 0.8, None, 16.0),
    Characteristic("contact_resistance", "mΩ", 0.35, 0.03, None, 0.5),
))  # fmt: skip
# Machine positions: 1 marker, 2 press, 3 welder, 4 assembly, 5 tester.
PRODUCTS = (
    ProductSpec("VALVE-A", "Ball valve DN25 with actuator", "VA", 1,
                ((1, "Laser marking"), (2, "Body pressing"), (4, "Actuator assembly"),
                 (5, "Leak test")),
                (("BODY-CASTING", 1, 1.0), ("SEAL-KIT", 2, 1.0)), component_at=2, test=LEAK_TEST),
    ProductSpec("VALVE-B", "Welded gate valve DN40", "VB", 2,
                ((1, "Laser marking"), (2, "Body pressing"), (3, "Flange welding"),
                 (5, "Leak test")),
                (("BODY-CASTING", 1, 1.0), ("SEAL-KIT", 3, 1.0)), test=LEAK_TEST),
    ProductSpec("BREAKER-C", "Miniature circuit breaker C16", "BC", 3,
                ((2, "Contact pressing"), (4, "Breaker assembly"), (5, "Trip test")),
                (("HOUSING-PA66", 1, 1.0), ("CONTACT-CU", 0, 0.012)), test=TRIP_TEST),
    ProductSpec("ACTUATOR", "Spring-return actuator", "AC", 4,
                ((2, "Spring pressing"), (3, "Housing welding"), (4, "Actuator assembly")),
                (("SPRING-STEEL", 0, 0.35), ("HOUSING-PA66", 2, 1.0))),
)  # fmt: skip
# Lot materials: code -> (name, unit of measure, units of product per lot, supplier)
MATERIALS = {
    "BODY-CASTING": ("Valve body casting GJS-400", "pcs", 2400, "Gießerei Nord"),
    "SEAL-KIT": ("PTFE seal kit", "pcs", 5000, "SealTec"),
    "HOUSING-PA66": ("PA66 GF30 housing", "pcs", 6000, "PolyForm"),
    "CONTACT-CU": ("Copper contact strip", "kg", 400, "CuPro"),
    "SPRING-STEEL": ("Spring steel wire 54SiCr6", "kg", 1600, "Drahtwerk Süd"),
    "GREASE": ("Valve grease NSF H1", "kg", 8000, "LubriChem"),
}
BACKFLUSH = ("GREASE", 0.002)  # booked per work order against its second operation


@dataclass
class Plan:
    """What to generate: sizes given on the command line and the times derived from them."""

    units: int
    samples: int
    order_size: int
    seed: int
    period_ms: int = 0
    budget_ms: int = 0  # per work order on its line

    def __post_init__(self) -> None:
        if self.units < LINES or self.samples < 1000 or self.order_size < 10:
            raise SystemExit("--units must be ≥ 4, --samples ≥ 1000 and --order-size ≥ 10")
        rate = sum(len(series) * S / poll for poll, series in KINDS.values()) * LINES
        self.period_ms = int(self.samples / rate * S)
        orders_per_line = math.ceil(math.ceil(self.units / self.order_size) / LINES)
        self.budget_ms = int(self.period_ms / (orders_per_line + 0.3))
        if self.budget_ms / self.order_size < 200:
            raise SystemExit("--samples too small for --units: cycles would be under 0.2 s")

    @property
    def now_ms(self) -> int:
        return T0 + self.period_ms


@dataclass
class Figures:
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)


def progress(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- database


def connect(url: str | URL) -> psycopg.Connection[Any]:
    parsed = make_url(url)
    args = parsed.translate_connect_args(username="user", database="dbname")
    args.update({k: v for k, v in parsed.query.items() if isinstance(v, str)})
    return psycopg.connect(**args)


def target_url(database: str) -> URL:
    """A full URL, or a bare database name on the server of ``FORGELINE_TEST_PG_URL``."""
    if "://" in database:
        return make_url(database)
    return make_url(pg_admin_url()).set(database=database)


def prepare_database(database_url: str | None) -> tuple[URL, bool]:
    """The target database, created (and migrated) if needed; answers (url, created)."""
    admin = make_url(pg_admin_url())
    url = target_url(database_url or f"forgeline_trace_{secrets.token_hex(4)}")
    if url.get_backend_name() != "postgresql":
        raise SystemExit(f"--database-url: PostgreSQL only, got {url.get_backend_name()!r}")
    with connect(url.set(database=admin.database or "postgres")) as conn:
        conn.autocommit = True
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,))
        created = exists.fetchone() is None
        if created:
            conn.execute(f'CREATE DATABASE "{url.database}"')
    migrate(url)
    with connect(url) as conn:
        held = conn.execute("SELECT count(*) FROM (SELECT 1 FROM unit LIMIT 1) u").fetchone()
        if held and held[0]:
            raise SystemExit(f"--database-url: {url.database} already holds units; use a new one")
    return url, created


def drop_database(url: URL) -> None:
    with connect(url.set(database=make_url(pg_admin_url()).database or "postgres")) as conn:
        conn.autocommit = True
        conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


LOADED = (
    "asset_site", "asset_area", "asset_line", "machine", "ts_series", "product", "bom_item",
    "routing", "routing_operation", "material_lot", "work_order", "work_order_operation",
    "operation_event", "unit", "unit_cycle", "consumption", "unit_test", "unit_test_value",
    "inspection", "alarm", "ts_sample",
)  # fmt: skip


def defer_indexes(conn: psycopg.Connection[Any]) -> list[str]:
    """Drop the loaded tables' foreign keys, unique constraints and secondary indexes.

    Answers the DDL that puts them back, in order: indexes, unique constraints, foreign keys.
    Primary keys stay (ids are written in ascending order, so their upkeep is cheap).
    """
    tables = list(LOADED)
    constraints = conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype "
        "FROM pg_constraint WHERE conrelid = ANY(%s::regclass[]) AND contype IN ('f', 'u') "
        "ORDER BY contype, conname",
        (tables,),
    ).fetchall()
    indexes = conn.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
        "WHERE indrelid = ANY(%s::regclass[]) AND NOT indisprimary AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = indexrelid) ORDER BY 1",
        (tables,),
    ).fetchall()
    for table, name, _, _ in constraints:  # 'f' sorts before 'u': foreign keys go first
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    conn.commit()
    restore = [definition for _, definition in indexes]
    restore += [
        f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}' for t, n, d, c in constraints if c == "u"
    ]
    restore += [
        f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}' for t, n, d, c in constraints if c == "f"
    ]
    return restore


def schema_fingerprint(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """Every index and constraint of the loaded tables, to check that the load restored them."""
    return conn.execute(
        "SELECT 'i', indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
        "WHERE indrelid = ANY(%s::regclass[]) UNION ALL "
        "SELECT 'c', conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = ANY(%s::regclass[]) ORDER BY 1, 2",
        (list(LOADED), list(LOADED)),
    ).fetchall()


TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "work_order": ("id", "external_id", "product_id", "routing_id", "quantity_ordered",
                   "quantity_good", "quantity_scrap", "quantity_rework", "due_ms",
                   "priority", "state", "created_ms", "updated_ms"),
    "work_order_operation": ("id", "work_order_id", "sequence", "routing_operation_id",
                             "machine_id", "state", "started_ms", "finished_ms",
                             "quantity_good", "quantity_scrap", "quantity_rework",
                             "operator", "paused_ms", "machine_cycles", "machine_good",
                             "machine_scrap", "counted_to_ms"),
    "operation_event": ("id", "operation_id", "action", "operator", "ms", "good", "scrap",
                        "rework", "reason"),
    "unit": ("id", "serial", "product_id", "work_order_id", "operation_id", "created_ms"),
    "unit_cycle": ("id", "unit_id", "operation_id", "machine_id", "start_ms", "end_ms",
                   "source"),
    "material_lot": ("id", "external_id", "product_id", "supplier", "supplier_lot",
                     "quantity", "created_ms", "updated_ms"),
    "consumption": ("id", "consumer_unit_id", "consumer_operation_id", "consumed_lot_id",
                    "consumed_unit_id", "quantity", "ms", "source"),
    "unit_test": ("id", "unit_id", "name", "machine_id", "started_ms", "finished_ms",
                  "passed", "source"),
    "unit_test_value": ("id", "test_id", "characteristic", "value", "unit", "low_limit",
                        "high_limit", "passed"),
    "inspection": ("id", "unit_id", "lot_id", "operation_id", "characteristic", "value",
                   "attribute", "passed", "inspector", "note", "ms"),
    "alarm": ("id", "point_key", "rule", "kind", "priority", "machine_id", "machine_name",
              "site", "area", "line", "metric", "unit", "state", "value", "limit_value",
              "message", "raised_ms", "active_ms", "returned_ms", "acked_ms", "acked_by",
              "cleared_ms", "activations", "escalation_level", "late", "roles", "version",
              "updated_ms"),
    "asset_site": ("id", "name"),
    "asset_area": ("id", "site_id", "name"),
    "asset_line": ("id", "area_id", "name"),
    "machine": ("id", "name", "site_id", "area_id", "line_id", "edge", "device", "profile",
                "protocol", "ideal_cycle_time_s", "units_per_cycle", "state_map",
                "placed_by", "created_ms", "updated_ms"),
    "ts_series": ("id", "site", "edge", "device", "metric", "unit", "data_type", "role",
                  "low_limit", "high_limit", "description"),
    "product": ("id", "external_id", "name", "unit_of_measure", "serialised", "created_ms",
                "updated_ms"),
    "bom_item": ("id", "parent_product_id", "component_product_id", "quantity_per_unit",
                 "scrap_allowance_pct"),
    "routing": ("id", "external_id", "product_id", "name", "created_ms", "updated_ms"),
    "routing_operation": ("id", "routing_id", "sequence", "name", "line_id", "machine_id",
                          "ideal_cycle_time_s", "setup_time_s", "serialises"),
}  # fmt: skip


class Loader:
    """Row buffers per table, flushed with COPY; ids handed out per table."""

    COLUMNS = TABLE_COLUMNS

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in self.COLUMNS}
        self.last_id: dict[str, int] = dict.fromkeys(self.COLUMNS, 0)
        self.written: dict[str, int] = dict.fromkeys(self.COLUMNS, 0)

    def add(self, table: str, *values: Any) -> int:
        """Buffer one row (without its id); answers the id it got."""
        self.last_id[table] += 1
        self.rows[table].append((self.last_id[table], *values))
        return self.last_id[table]

    def flush(self) -> None:
        with self.conn.cursor() as cur:
            for table, rows in self.rows.items():
                if not rows:
                    continue
                columns = ", ".join(self.COLUMNS[table])
                with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                self.written[table] += len(rows)
                rows.clear()
        self.conn.commit()


# --------------------------------------------------------------------------- plant


@dataclass(frozen=True)
class Series:
    id: int
    machine_id: int
    spec: SeriesSpec
    poll_ms: int


def machine_id(line: int, position: int) -> int:
    return (line - 1) * MACHINES_PER_LINE + position


def machine_name(line: int, position: int) -> str:
    return f"L{line}-{KIND_AT[position - 1]}"


def load_plant(load: Loader) -> list[Series]:
    """Site, hall, lines, machines and their traced series; answers the series."""
    load.rows["asset_site"].append((SITE, "Plant 1"))
    area = load.add("asset_area", SITE, "Assembly hall")
    series: list[Series] = []
    for line in range(1, LINES + 1):
        line_id = load.add("asset_line", area, f"Line {line}")
        for position, kind in enumerate(KIND_AT, start=1):
            poll, specs = KINDS[kind]
            device = f"line{line}-m{position:02d}"
            mid = load.add(
                "machine", machine_name(line, position), SITE, area, line_id,
                EDGE_OF_LINE.format(line), device, kind, "modbus", poll / S, 1, "{}", "birth",
                T0, T0,
            )  # fmt: skip
            for spec in specs:
                sid = load.add(
                    "ts_series", SITE, EDGE_OF_LINE.format(line), device, spec.metric,
                    spec.unit, "float64", spec.role, spec.low, spec.high, None,
                )  # fmt: skip
                series.append(Series(sid, mid, spec, poll))
    return series


@dataclass
class Catalogue:
    product_ids: dict[str, int]
    routing_ids: dict[str, int]
    step_ids: dict[str, list[int]]  # product code -> routing operation ids in sequence


def load_catalogue(load: Loader) -> Catalogue:
    """Products, the BOM, routings: the ERP's part of the set."""
    cat = Catalogue({}, {}, {})
    created = T0 - 90 * 86_400_000
    for code, (name, uom, _, _) in MATERIALS.items():
        cat.product_ids[code] = load.add("product", code, name, uom, False, created, created)
    for product in PRODUCTS:
        cat.product_ids[product.code] = load.add(
            "product", product.code, product.name, "pcs", True, created, created
        )
    for product in PRODUCTS:
        parent = cat.product_ids[product.code]
        for material, _, qty in product.materials:
            load.add("bom_item", parent, cat.product_ids[material], qty, 1.0)
        if product.component_at is not None:
            load.add("bom_item", parent, cat.product_ids["ACTUATOR"], 1.0, 0.0)
        if product.route[1:]:
            load.add("bom_item", parent, cat.product_ids[BACKFLUSH[0]], BACKFLUSH[1], 5.0)
        routing = load.add("routing", f"RT-{product.code}", parent, f"{product.name} routing",
                           created, created)  # fmt: skip
        cat.routing_ids[product.code] = routing
        cat.step_ids[product.code] = [
            load.add("routing_operation", routing, 10 * (i + 1), name, None,
                     machine_id(product.line, position), None, 600.0, i == 0)
            for i, (position, name) in enumerate(product.route)
        ]  # fmt: skip
    return cat


# --------------------------------------------------------------------------- production


@dataclass
class Lots:
    """The current lot of each material, a new one when it is used up."""

    load: Loader
    cat: Catalogue
    rng: random.Random
    used: dict[str, float] = field(default_factory=dict)
    current: dict[str, int] = field(default_factory=dict)

    def take(self, material: str, quantity: float, ms: int) -> int:
        name, _, per_lot, supplier = MATERIALS[material]
        used = self.used.get(material, math.inf)
        if used + quantity > per_lot:
            number = self.load.last_id["material_lot"] + 1
            lot = self.load.add(
                "material_lot", f"{material}-{number:06d}", self.cat.product_ids[material],
                supplier, f"H{self.rng.randrange(10**5, 10**6)}", float(per_lot),
                ms - 86_400_000, ms - 86_400_000,
            )  # fmt: skip
            self.load.add("inspection", None, lot, None, "incoming_certificate", None, "ok",
                          True, "qa.wareneingang", name, ms - 80_000_000)  # fmt: skip
            self.current[material], used = lot, 0.0
        self.used[material] = used + quantity
        return self.current[material]


@dataclass
class Floor:
    """The shop floor while orders run: machine clocks, lots, actuators waiting for a valve."""

    load: Loader
    cat: Catalogue
    rng: random.Random
    lots: Lots
    machine_free: dict[int, int] = field(default_factory=dict)
    actuators: deque[tuple[int, int]] = field(default_factory=deque)  # (unit id, done ms)
    orders: int = 0


def run_order(floor: Floor, plan: Plan, product: ProductSpec, start: int, units: int) -> None:
    """One work order of ``units`` units of ``product`` from ``start``: every row it leaves."""
    load, rng = floor.load, floor.rng
    floor.orders += 1
    pid = floor.cat.product_ids[product.code]
    order = load.add(
        "work_order", f"WO-{floor.orders:07d}", pid, floor.cat.routing_ids[product.code],
        units, units, 0, 0, start + 2 * 86_400_000, 500, "completed", start - 86_400_000,
        start,  # quantity_good, due, state and updated_ms are completed below
    )  # fmt: skip
    takt = (plan.budget_ms * 0.9) / plan.order_size
    machines = [machine_id(product.line, position) for position, _ in product.route]
    ops = [load.last_id["work_order_operation"] + 1 + i for i in range(len(machines))]
    load.last_id["work_order_operation"] += len(ops)
    windows = [[math.inf, 0] for _ in ops]
    for i in range(units):
        ready = start + int(i * takt)
        unit = load.last_id["unit"] + 1
        cycles: list[tuple[int, int]] = []
        for k, machine in enumerate(machines):
            begin = max(ready, floor.machine_free.get(machine, 0))
            end = begin + max(1, int(takt * rng.uniform(0.8, 0.98)))
            floor.machine_free[machine] = end
            source = "scan" if product.route[k][1].endswith("assembly") else "plc"
            load.add("unit_cycle", unit, ops[k], machine, begin, end, source)
            windows[k][0] = min(windows[k][0], begin)
            windows[k][1] = end
            cycles.append((begin, end))
            ready = end + rng.randrange(300, 900)
        load.add("unit", f"{product.serial_prefix}{unit:09d}", pid, order, ops[0], cycles[0][0])
        for material, k, qty in product.materials:
            lot = floor.lots.take(material, qty, cycles[k][0])
            load.add("consumption", unit, None, lot, None, qty, cycles[k][0], "scan")
        if product.component_at is not None:
            at = cycles[product.component_at][0]
            if floor.actuators and floor.actuators[0][1] < at:
                part = floor.actuators.popleft()[0]
                load.add("consumption", unit, None, None, part, 1.0, at, "scan")
        if product.code == "ACTUATOR":
            floor.actuators.append((unit, cycles[-1][1]))
        if product.test is not None:
            record_test(load, rng, unit, machines[-1], cycles[-1], product.test)
        if i % INSPECT_EVERY == 0:
            value = rng.gauss(25.0, 0.004)
            load.add("inspection", unit, None, ops[-1], "bore_diameter", value, None,
                     abs(value - 25.0) <= 0.015, rng.choice(OPERATORS[3:]),
                     "first article" if i == 0 else None, cycles[-1][1] + 60_000)  # fmt: skip
    steps = floor.cat.step_ids[product.code]
    record_operations(floor, order, list(zip(ops, steps, machines, strict=True)), windows, units)
    if len(ops) > 1:
        lot = floor.lots.take(BACKFLUSH[0], units * BACKFLUSH[1], int(windows[1][1]))
        load.add("consumption", None, ops[1], lot, None, units * BACKFLUSH[1],
                 int(windows[1][1]), "backflush")  # fmt: skip


def record_test(load: Loader, rng: random.Random, unit: int, machine: int,
                cycle: tuple[int, int], test: tuple[str, tuple[Characteristic, ...]]) -> None:  # fmt: skip
    name, characteristics = test
    values = []
    for c in characteristics:
        value = rng.gauss(c.mean, c.sigma)
        ok = (c.low is None or value >= c.low) and (c.high is None or value <= c.high)
        values.append((c, value, ok))
    test_id = load.add("unit_test", unit, name, machine, cycle[0], cycle[1],
                       all(ok for _, _, ok in values), "plc")  # fmt: skip
    for c, value, ok in values:
        load.add("unit_test_value", test_id, c.name, value, c.unit, c.low, c.high, ok)


def record_operations(floor: Floor, order: int, ops: list[tuple[int, int, int]],
                      windows: list[list[Any]], units: int) -> None:  # fmt: skip
    """The order's operations (finished) with their operator events; the order's totals."""
    load, rng = floor.load, floor.rng
    scrap_total = 0
    for k, (op, step, machine) in enumerate(ops):
        started, finished = int(windows[k][0]), int(windows[k][1])
        scrap = rng.choice((0, 0, 0, 1, 2))
        scrap_total += scrap
        operator = rng.choice(OPERATORS)
        load.rows["work_order_operation"].append((
            op, order, 10 * (k + 1), step, machine, "finished", started, finished, 0, scrap, 0,
            operator, 0, units + scrap, units, scrap, finished,
        ))  # fmt: skip
        load.add("operation_event", op, "start", operator, started, 0, 0, 0, None)
        if scrap:
            load.add("operation_event", op, "report", operator, finished - 1000, 0, scrap, 0,
                     "dimension out of tolerance")  # fmt: skip
        load.add("operation_event", op, "finish", operator, finished, 0, 0, 0, None)
    row = load.rows["work_order"][-1]
    finished = int(windows[-1][1])
    load.rows["work_order"][-1] = (*row[:6], scrap_total, *row[7:11], finished, finished)


def run_orders(floor: Floor, plan: Plan) -> None:
    """Every work order, in the order they start across the lines; flushed every ~20,000 units."""
    slots = []
    count = math.ceil(plan.units / plan.order_size)
    for i in range(count):
        product = PRODUCTS[i % LINES]
        offset = 0 if product.code == "ACTUATOR" else int(0.3 * plan.budget_ms)  # parts first
        start = T0 + offset + (i // LINES) * plan.budget_ms + int(0.06 * plan.budget_ms)
        size = min(plan.order_size, plan.units - i * plan.order_size)
        slots.append((start, i, product, size))
    started, done, pending = time.perf_counter(), 0, 0
    for start, _, product, size in sorted(slots, key=lambda slot: slot[:2]):
        run_order(floor, plan, product, start, size)
        done, pending = done + size, pending + size
        if pending >= 20_000 or done == plan.units:
            floor.load.flush()
            pending = 0
            rows = sum(floor.load.written.values())
            elapsed = time.perf_counter() - started
            progress(f"production: {done:,}/{plan.units:,} units, {rows:,} rows, "
                     f"{rows / elapsed:,.0f} rows/s")  # fmt: skip


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class Excursion:
    """A parameter beyond one of its limits for a while; the machine raises an alarm."""

    series: Series
    start: int
    end: int
    offset: float  # added to the set point while it lasts
    limit: float
    high: bool


def plan_excursions(series: Sequence[Series], plan: Plan, rng: random.Random) -> list[Excursion]:
    days = plan.period_ms / 86_400_000
    out = []
    for s in series:
        count = int(days) + (rng.random() < days % 1)
        for _ in range(count):
            start = rng.randrange(T0, plan.now_ms - 600_000)
            high = s.spec.high is not None
            limit = s.spec.high if s.spec.high is not None else s.spec.low
            assert limit is not None
            beyond = limit + (1.0 if high else -1.0) * 2 * s.spec.sigma
            out.append(Excursion(s, start, start + rng.randrange(30_000, 300_000),
                                 beyond - s.spec.setpoint, limit, high))  # fmt: skip
    return sorted(out, key=lambda e: e.start)


def record_alarms(load: Loader, excursions: Sequence[Excursion], rng: random.Random) -> None:
    for e in excursions:
        spec, line = e.series.spec, (e.series.machine_id - 1) // MACHINES_PER_LINE + 1
        position = (e.series.machine_id - 1) % MACHINES_PER_LINE + 1
        rule, kind = ("builtin_limit_high", "high") if e.high else ("builtin_limit_low", "low")
        raised = e.start + 2000  # the rule's on-delay
        acked = raised + rng.randrange(20_000, 600_000)
        cleared = max(acked, e.end)
        value = round(spec.setpoint + e.offset, 6)
        word = "above high" if e.high else "below low"
        load.add(
            "alarm", f"{rule}/{e.series.machine_id}/{spec.metric}", rule, kind, "medium",
            e.series.machine_id, machine_name(line, position), SITE, "Assembly hall",
            f"Line {line}", spec.metric, spec.unit, "cleared", value, e.limit,
            f"{spec.metric} {value:.4g} {spec.unit} {word} limit {e.limit:g} {spec.unit}",
            raised, raised, e.end, acked, rng.choice(OPERATORS), cleared, 1, 0, False,
            '["maintenance", "quality"]', 3, cleared,
        )  # fmt: skip


COPY_SAMPLES = (
    "COPY ts_sample (series_id, ts, value, text_value, quality, reason) FROM STDIN (FORMAT BINARY)"
)
SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
TRAILER = b"\xff\xff"
BAD_REASON = b"comm:timeout"
_HEAD = [("fields", ">i2"), ("l_sid", ">i4"), ("sid", ">i4"), ("l_ts", ">i4"), ("ts", ">i8")]
# A binary COPY row: field count, then (length, bytes) per field; -1 length is NULL.
GOOD_ROW = np.dtype([*_HEAD, ("l_value", ">i4"), ("value", ">f8"), ("l_text", ">i4"),
                     ("l_quality", ">i4"), ("quality", ">i2"), ("l_reason", ">i4")])  # fmt: skip
BAD_ROW = np.dtype([*_HEAD, ("l_value", ">i4"), ("l_text", ">i4"), ("l_quality", ">i4"),
                    ("quality", ">i2"), ("l_reason", ">i4"), ("reason", f"S{len(BAD_REASON)}")])  # fmt: skip
CHUNK_MS = 1_800_000


def encode_samples(sid: np.ndarray, ts: np.ndarray, value: np.ndarray, bad: np.ndarray) -> bytes:
    """Binary COPY rows of one chunk: good samples, then bad ones (value NULL, a reason)."""
    good = np.zeros(int((~bad).sum()), GOOD_ROW)
    bad_rows = np.zeros(int(bad.sum()), BAD_ROW)
    for rows, mask in ((good, ~bad), (bad_rows, bad)):
        rows["fields"], rows["l_sid"], rows["sid"] = 6, 4, sid[mask]
        rows["l_ts"], rows["ts"], rows["l_text"], rows["l_quality"] = 8, ts[mask], -1, 2
    good["l_value"], good["value"], good["quality"], good["l_reason"] = 8, value[~bad], 0, -1
    bad_rows["l_value"], bad_rows["quality"] = -1, 2
    bad_rows["l_reason"], bad_rows["reason"] = len(BAD_REASON), BAD_REASON
    return good.tobytes() + bad_rows.tobytes()


def sample_chunks(
    series: Sequence[Series], plan: Plan, excursions: Sequence[Excursion]
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Half an hour of every series at a time, in time order as the ingest would write it."""
    rng = np.random.default_rng(plan.seed)
    machines = sorted({s.machine_id for s in series})
    first = {m: T0 + int(rng.integers(0, 1000)) for m in machines}
    drift = {s.id: (0.8 * s.spec.sigma, rng.uniform(1.2e6, 5.4e6), rng.uniform(0, 2 * np.pi))
             for s in series}  # fmt: skip
    by_series: dict[int, list[Excursion]] = {}
    for e in excursions:
        by_series.setdefault(e.series.id, []).append(e)
    for a in range(T0, plan.now_ms, CHUNK_MS):
        b = min(a + CHUNK_MS, plan.now_ms - 40)  # jitter stays before "now"
        sids, stamps, values = [], [], []
        for s in series:
            start = first[s.machine_id]
            grid = start + np.arange(max(0, -(-(a - start) // s.poll_ms)),
                                     max(0, -(-(b - start) // s.poll_ms))) * s.poll_ms  # fmt: skip
            ts = grid + rng.integers(0, 40, grid.size)
            amplitude, period, phase = drift[s.id]
            value = s.spec.setpoint + s.spec.sigma * rng.standard_normal(grid.size)
            value += amplitude * np.sin((ts - T0) * (2 * np.pi / period) + phase)
            for e in by_series.get(s.id, ()):
                if e.start < b and e.end > a:
                    value[(ts >= e.start) & (ts < e.end)] += e.offset
            sids.append(np.full(grid.size, s.id, np.int32))
            stamps.append(ts)
            values.append(value)
        sid, ts, value = np.concatenate(sids), np.concatenate(stamps), np.concatenate(values)
        order = np.lexsort((sid, ts))
        yield sid[order], ts[order], value[order], rng.random(sid.size) < BAD_SAMPLE_SHARE


def load_samples(conn: psycopg.Connection[Any], plan: Plan, series: Sequence[Series],
                 excursions: Sequence[Excursion]) -> int:  # fmt: skip
    started, written, next_report = time.perf_counter(), 0, plan.samples / 20
    with conn.cursor() as cur:
        for sid, ts, value, bad in sample_chunks(series, plan, excursions):
            with cur.copy(COPY_SAMPLES) as copy:
                copy.write(SIGNATURE)
                copy.write(encode_samples(sid, ts, value, bad))
                copy.write(TRAILER)
            conn.commit()
            written += sid.size
            if written >= next_report:
                next_report += plan.samples / 20
                rate = written / (time.perf_counter() - started)
                progress(f"samples: {written:,}/~{plan.samples:,}, {rate:,.0f} rows/s")
    return written


# --------------------------------------------------------------------------- phases


CHECKS = (
    ("cycles that overlap the previous cycle on their machine",
     "SELECT count(*) FROM (SELECT start_ms, lag(end_ms) OVER (PARTITION BY machine_id "
     "ORDER BY start_ms) AS previous_end FROM unit_cycle) c WHERE start_ms < previous_end"),
    ("cycles outside their operation's run or machine",
     "SELECT count(*) FROM unit_cycle c JOIN work_order_operation o ON o.id = c.operation_id "
     "WHERE c.start_ms < o.started_ms OR c.end_ms > o.finished_ms OR c.machine_id <> o.machine_id"),
    ("units without a cycle on every operation of their order",
     "SELECT count(*) FROM (SELECT u.id FROM unit u JOIN work_order_operation o "
     "ON o.work_order_id = u.work_order_id LEFT JOIN unit_cycle c ON c.unit_id = u.id "
     "AND c.operation_id = o.id WHERE c.id IS NULL) missing"),
)  # fmt: skip


def check(conn: psycopg.Connection[Any], plan: Plan, samples: int, figures: Figures) -> None:
    """Counts as planned, and cycles laid end to end inside their operations; exit otherwise."""
    failures = []
    row = conn.execute("SELECT count(*), min(ts), max(ts) FROM ts_sample").fetchone()
    assert row is not None
    if row[0] != samples or row[1] < T0 or row[2] >= plan.now_ms:
        failures.append(f"ts_sample holds {row[0]:,} rows in [{row[1]}, {row[2]}]: expected "
                        f"{samples:,} in [{T0}, {plan.now_ms})")  # fmt: skip
    units = conn.execute("SELECT count(*) FROM unit").fetchone()
    if units is None or units[0] != plan.units:
        failures.append(f"unit holds {units and units[0]} rows: expected {plan.units:,}")
    for what, sql in CHECKS:
        found = conn.execute(sql).fetchone()
        if found is None or found[0]:
            failures.append(f"{found and found[0]} {what}")
        else:
            figures.checks.append(f"no {what}")
    if failures:
        raise SystemExit("the data set is wrong: " + "; ".join(failures))


@contextmanager
def timed_phase(figures: Figures, name: str) -> Iterator[None]:
    progress(f"{name} ...")
    start = time.perf_counter()
    yield
    figures.seconds[name] = time.perf_counter() - start
    progress(f"{name}: {figures.seconds[name]:.1f} s")


def generate(plan: Plan, url: URL) -> Figures:
    """Fill the migrated, empty database ``url`` with the data set of ``plan``."""
    figures = Figures()
    conn = connect(url)
    try:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '1GB'")
        schema = schema_fingerprint(conn)
        with timed_phase(figures, "drop secondary indexes and foreign keys"):
            restore = defer_indexes(conn)
        load = Loader(conn)
        rng = random.Random(plan.seed)
        with timed_phase(figures, "plant, catalogue, work orders, units, cycles, lots, tests"):
            series = load_plant(load)
            catalogue = load_catalogue(load)
            floor = Floor(load, catalogue, rng, Lots(load, catalogue, rng))
            run_orders(floor, plan)
            excursions = plan_excursions(series, plan, rng)
            record_alarms(load, excursions, rng)
            load.flush()
        with timed_phase(figures, "samples (binary COPY)"):
            samples = load_samples(conn, plan, series, excursions)
        with timed_phase(figures, "indexes and constraints back"):
            for ddl in restore:
                started = time.perf_counter()
                conn.execute(ddl)
                conn.commit()
                if time.perf_counter() - started > 1:
                    progress(f"  {time.perf_counter() - started:5.1f} s  {ddl[:110]}")
            for table in LOADED:
                if "id" in Loader.COLUMNS.get(table, ()) and table != "asset_site":
                    conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                 f"(SELECT max(id) FROM {table}))")  # fmt: skip
            conn.commit()
        if schema_fingerprint(conn) != schema:
            raise SystemExit("the indexes and constraints differ from the migration's after load")
        with timed_phase(figures, "VACUUM ANALYZE"):
            conn.commit()
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE")
        with timed_phase(figures, "checks"):
            check(conn, plan, samples, figures)
        figures.rows = {t: n for t, n in load.written.items() if n}
        figures.rows["ts_sample"] = samples
    finally:
        conn.close()
    return figures


def summary(plan: Plan, url: URL, figures: Figures) -> list[str]:
    days = plan.period_ms / 86_400_000
    total = sum(figures.seconds.values())
    lines = [
        f"Data set in {url.database}: {plan.units:,} units, {figures.rows['ts_sample']:,} samples "
        f"over {days:.2f} days from {datetime.fromtimestamp(T0 / S, UTC):%Y-%m-%d %H:%M} UTC "
        f"(now_ms = {plan.now_ms}), seed {plan.seed}, work orders of {plan.order_size} units",
        "",
        "| table | rows |",
        "|---|---:|",
        *(f"| {table} | {rows:,} |" for table, rows in figures.rows.items()),
        "",
        "| phase | s |",
        "|---|---:|",
        *(f"| {phase} | {seconds:.1f} |" for phase, seconds in figures.seconds.items()),
        f"| **total** | **{total:.1f}** |",
        "",
        "Checked: " + "; ".join(figures.checks) + ".",
    ]
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=50_000_000)
    parser.add_argument("--order-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", help="build into this database, a URL or a name (kept)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = Plan(args.units, args.samples, args.order_size, args.seed)
    url, created = prepare_database(args.database_url)
    keep = args.keep or args.database_url is not None
    try:
        figures = generate(plan, url)
    except BaseException:
        if created and not keep:
            drop_database(url)
        raise
    print("\n".join(summary(plan, url, figures)))
    if keep:
        print(f"\nBenchmark it: .venv/bin/python tests/bench/bench_trace.py "
              f"--database-url {url.database}")  # fmt: skip
    else:
        drop_database(url)
        progress(f"dropped {url.database}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
