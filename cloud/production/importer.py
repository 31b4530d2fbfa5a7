"""Import products, routings, BOMs and work orders from an Excel workbook or CSV files.

For plants whose ERP is a spreadsheet. A workbook (.xlsx) holds sheets named ``products``,
``routings``, ``bom`` and ``work_orders`` (any subset); a CSV file holds one kind, named by the
caller or by the file's name (``bom.csv``). The first non-empty row of a sheet names its
columns (case and surrounding spaces ignored). Machines and lines are given by name.

Every file is read and every row checked before anything is written. The rows are then
applied through ``cloud.production.service`` (products, then routings, BOMs, work orders), each
under a savepoint of ONE transaction, so that the service's own refusals are collected too. Any
problem anywhere rolls everything back, and ``ImportRejected`` lists every problem found (the
first ``MAX_PROBLEMS``), each saying where::

    plan.xlsx, sheet bom, row 7, column quantity_per_unit: 'abc' is not a number

A dry run does all of that, reports what would change, and rolls back.

CloudError
└── InvalidRequest
    └── ImportRejected     the files cannot be imported; ``problems`` says where and why
"""

from __future__ import annotations

import csv
import io
import math
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import partial
from pathlib import PurePath
from typing import Any, TypeAlias, TypeVar
from xml.etree.ElementTree import ParseError
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.assets.models import Line, Machine
from cloud.errors import CloudError, InvalidRequest
from cloud.production import service
from cloud.production.models import (
    DEFAULT_PRIORITY,
    BomItem,
    Product,
    Routing,
    RoutingOperation,
    WorkOrder,
)

KINDS = ("products", "routings", "bom", "work_orders")  # also the order they are applied in
MAX_PROBLEMS = 50

# kind: (required columns, optional columns)
COLUMNS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "products": (("external_id", "name"), ("unit_of_measure", "serialised")),
    "routings": (
        ("routing", "product", "sequence", "name"),
        ("routing_name", "machine", "line", "ideal_cycle_time_s", "setup_time_s", "serialises"),
    ),
    "bom": (("parent", "component", "quantity_per_unit"), ("scrap_allowance_pct",)),
    "work_orders": (("external_id", "product", "quantity"), ("routing", "due", "priority")),
}

Cell: TypeAlias = str | int | float | bool | datetime | date | time | None
T = TypeVar("T")

_INT_MAX = 2**31 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TRUE, _FALSE = ("yes", "true", "1"), ("no", "false", "0")


class ImportRejected(InvalidRequest):
    """The files cannot be imported (nothing was written); ``problems`` says where and why."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems[:MAX_PROBLEMS])
        self.omitted = max(0, len(problems) - MAX_PROBLEMS)
        lines = list(self.problems)
        if self.omitted:
            lines.append(f"... and {self.omitted} more")
        plural = "" if len(problems) == 1 else "s"
        super().__init__(
            f"nothing was imported: {len(problems)} problem{plural}\n" + "\n".join(lines)
        )


@dataclass(frozen=True, slots=True)
class ImportFile:
    """One file to import: its name (shown in messages), its bytes, and optionally its kind."""

    name: str
    content: bytes
    kind: str | None = None  # CSV: what it holds (default: from the name); workbook: one sheet's

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            raise InvalidRequest(f"kind: {self.kind!r} is not one of {', '.join(KINDS)}")


@dataclass(slots=True)
class KindCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What the import did (or, dry run, would do), per kind in the order applied."""

    counts: dict[str, KindCounts]
    dry_run: bool


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ``InvalidRequest`` naming ``tz`` when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(
            f"tz: unknown time zone {name!r}; give an IANA name such as UTC or Europe/Berlin"
        ) from None


# --------------------------------------------------------------------------- where and cells


@dataclass(frozen=True, slots=True)
class Where:
    """A place in the input as a user finds it: file, sheet (workbooks) and row."""

    file: str
    sheet: str | None = None
    row: int | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.sheet is not None:
            parts.append(f"sheet {self.sheet}")
        if self.row is not None:
            parts.append(f"row {self.row}")
        return ", ".join(parts)

    def at(self, column: str | None, message: str) -> str:
        return f"{self}, column {column}: {message}" if column else f"{self}: {message}"


class _BadCell(ValueError):
    """A cell that does not hold what its column needs (the message says why)."""


def _show(value: Cell) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _text(value: Cell, max_length: int = 64) -> str:
    if isinstance(value, date | time):  # datetime is a date
        raise _BadCell(f"{value} is a date or time, not text (format the column as text)")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Excel keeps codes like 1001 as numbers
    text = str(value).strip()
    if len(text) > max_length:
        raise _BadCell(f"{text[:20]!r}... is longer than {max_length} characters")
    return text


def _number(value: Cell) -> float:
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            hint = " (use a decimal point)" if re.fullmatch(r"-?\d+,\d+", value) else ""
            raise _BadCell(f"{value!r} is not a number{hint}") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        raise _BadCell(f"{_show(value)} is not a number")
    if not math.isfinite(number):
        raise _BadCell(f"{_show(value)} is not a number")
    return number


def _bounded(
    number: float, *, minimum: float | None = None, above: float | None = None,
    below: float | None = None,
) -> float:  # fmt: skip
    shown = _show(int(number) if number.is_integer() else number)
    if minimum is not None and number < minimum:
        raise _BadCell(f"{shown} must be {_show(minimum)} or more")
    if above is not None and number <= above:
        raise _BadCell(f"{shown} must be more than {_show(above)}")
    if below is not None and number >= below:
        raise _BadCell(f"{shown} must be less than {_show(below)}")
    return number


def _whole(value: Cell, minimum: int) -> int:
    number = _number(value)
    if not number.is_integer():
        raise _BadCell(f"{_show(value)} is not a whole number")
    return int(_bounded(number, minimum=minimum, below=_INT_MAX + 1))


def _flag(value: Cell) -> bool:
    if isinstance(value, bool):
        return value
    word = _text(value).lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise _BadCell(f"{_show(value)} is not yes or no (give yes, no, true, false, 1 or 0)")


def _moment_ms(value: Cell, zone: tzinfo) -> int:
    """Epoch ms of a date or date-time cell; one without an offset is local time in ``zone``."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time(), tzinfo=zone)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise _BadCell(
                f"{value!r} is not a date or date-time (give e.g. 2024-06-30 or 2024-06-30 14:00)"
            ) from None
    else:
        raise _BadCell(f"{_show(value)} is not a date or date-time (format the cell as a date)")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    ms = (moment - _EPOCH) // timedelta(milliseconds=1)
    if ms < 0:
        raise _BadCell(f"{_show(value)} is before 1970")
    return ms


class _Cells:
    """Typed access to one row's cells; a bad cell adds a problem and marks the row failed."""

    def __init__(self, where: Where, cells: Mapping[str, Cell], problems: list[str]) -> None:
        self.where, self.cells, self.problems = where, cells, problems
        self.bad: set[str] = set()

    @property
    def failed(self) -> bool:
        return bool(self.bad)

    def fail(self, column: str | None, message: str) -> None:
        self.bad.add(column or "")
        self.problems.append(self.where.at(column, message))

    def get(self, column: str, convert: Callable[[Cell], T], required: bool = False) -> T | None:
        value = self.cells.get(column)
        if value is None:
            if required:
                self.fail(column, "empty; give a value")
            return None
        try:
            return convert(value)
        except _BadCell as error:
            self.fail(column, str(error))
            return None

    def text(self, column: str, required: bool = False, max_length: int = 64) -> str | None:
        return self.get(column, lambda v: _text(v, max_length), required)

    def number(self, column: str, required: bool = False, **bounds: float) -> float | None:
        return self.get(column, lambda v: _bounded(_number(v), **bounds), required)

    def whole(self, column: str, required: bool = False, minimum: int = 0) -> int | None:
        return self.get(column, lambda v: _whole(v, minimum), required)

    def flag(self, column: str) -> bool:
        return bool(self.get(column, _flag))


# --------------------------------------------------------------------------- reading files


@dataclass(slots=True)
class _Table:
    kind: str
    rows: list[tuple[Where, dict[str, Cell]]]


def _kind_of(name: str) -> str | None:
    key = re.sub(r"[\s-]+", "_", name.strip().lower())
    return key if key in KINDS else None


def _header(kind: str, where: Where, cells: Sequence[Cell], problems: list[str]) -> list[str]:
    """The column names of a header row ("" for a blank cell); problems for bad ones."""
    required, optional = COLUMNS[kind]
    names = [re.sub(r"\s+", "_", str(c).strip().lower()) if c is not None else "" for c in cells]
    known = ", ".join(required + optional)
    for name in names:
        if name and name not in required + optional:
            problems.append(where.at(name, f"unknown column; a {kind} sheet takes {known}"))
    for name in sorted({n for n in names if n and names.count(n) > 1}):
        problems.append(where.at(name, "the column is there twice"))
    for name in required:
        if name not in names:
            problems.append(where.at(name, "the column is missing"))
    if kind == "routings" and "machine" not in names and "line" not in names:
        problems.append(where.at("machine", "the column is missing (give machine or line)"))
    return names


def _table(
    kind: str, where: Where, grid: Iterable[tuple[int, Sequence[Cell]]], problems: list[str]
) -> _Table | None:
    """The rows of one sheet under its header row; empty rows are skipped."""
    names: list[str] | None = None
    rows: list[tuple[Where, dict[str, Cell]]] = []
    before = len(problems)
    for number, raw in grid:
        cells = [c.strip() or None if isinstance(c, str) else c for c in raw]
        if all(cell is None for cell in cells):
            continue
        row_where = Where(where.file, where.sheet, number)
        if names is None:
            names = _header(kind, row_where, cells, problems)
            if len(problems) > before:
                return None
            continue
        named = {n: cells[i] if i < len(cells) else None for i, n in enumerate(names) if n}
        # a value under a blank header cell: kept under "" for the row check to report
        named[""] = next((c for i, c in enumerate(cells) if c is not None and
                          (i >= len(names) or not names[i])), None)  # fmt: skip
        rows.append((row_where, named))
    return _Table(kind, rows)


def _read_csv(source: ImportFile, problems: list[str]) -> Iterator[_Table]:
    where = Where(source.name)
    kind = source.kind or _kind_of(PurePath(source.name).stem)
    if kind is None:
        names = ", ".join(f"{k}.csv" for k in KINDS)
        problems.append(where.at(None, f"cannot tell what the file holds: name it {names}, "
                                       "or give its kind"))  # fmt: skip
        return
    try:
        text = source.content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        problems.append(where.at(None, f"not UTF-8 text (byte {error.start}); "
                                       "save it as 'CSV UTF-8'"))  # fmt: skip
        return
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = max(",;\t", key=first.count)  # Excel writes ';' where ',' is the decimal mark
    try:
        grid = list(enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), 1))
    except csv.Error as error:
        problems.append(where.at(None, f"not a readable CSV file ({error})"))
        return
    table = _table(kind, where, grid, problems)
    if table is not None:
        yield table


def _read_workbook(source: ImportFile, problems: list[str]) -> Iterator[_Table]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    where = Where(source.name)
    unreadable = (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ParseError)
    try:
        book = load_workbook(io.BytesIO(source.content), read_only=True, data_only=True)
    except (*unreadable, ValueError) as error:
        problems.append(where.at(None, f"not a readable Excel workbook ({error or 'damaged'})"))
        return
    try:
        sheets: list[Any] = list(book.worksheets)
        if source.kind is not None and len(sheets) != 1:
            problems.append(where.at(None, f"a kind is given, so the workbook must have one "
                                           f"sheet; it has {len(sheets)}"))  # fmt: skip
            return
        for sheet in sheets:
            sheet_where = Where(source.name, sheet.title)
            kind = source.kind or _kind_of(sheet.title)
            if kind is None:
                problems.append(sheet_where.at(None, f"unknown sheet; name it one of "
                                                     f"{', '.join(KINDS)}"))  # fmt: skip
                continue
            sheet.reset_dimensions()  # some writers record wrong ones; read every row
            grid = enumerate(sheet.iter_rows(values_only=True), 1)
            table = _table(kind, sheet_where, grid, problems)
            if table is not None:
                yield table
    except unreadable as error:
        problems.append(where.at(None, f"not a readable Excel workbook ({error})"))
        return
    finally:
        book.close()


def _read(source: ImportFile, problems: list[str]) -> Iterator[_Table]:
    """The tables of one file, one by one (problems reading it are added as they are met)."""
    suffix = PurePath(source.name).suffix.lower()
    if suffix == ".xlsx":
        return _read_workbook(source, problems)
    if suffix in (".csv", ".txt"):
        return _read_csv(source, problems)
    problems.append(Where(source.name).at(None, "not an Excel workbook (.xlsx) or a CSV file "
                                                "(.csv); save it as one of those"))  # fmt: skip
    return iter(())


# --------------------------------------------------------------------------- checking rows


@dataclass(frozen=True, slots=True)
class _WorkCentres:
    """Machine and line ids by case-folded name, to resolve the names in a routing sheet."""

    ids: Mapping[str, Mapping[str, list[int]]]  # "machine" | "line" -> folded name -> ids
    names: Mapping[str, list[str]]  # "machine" | "line" -> every name, sorted

    @classmethod
    def load(cls, session: Session) -> _WorkCentres:
        ids: dict[str, dict[str, list[int]]] = {"machine": {}, "line": {}}
        names: dict[str, set[str]] = {"machine": set(), "line": set()}
        for kind, model in (("machine", Machine), ("line", Line)):
            for row_id, name in session.execute(select(model.id, model.name).order_by(model.id)):
                ids[kind].setdefault(name.casefold(), []).append(row_id)
                names[kind].add(name)
        return cls(ids, {kind: sorted(found) for kind, found in names.items()})

    def find(self, kind: str, value: Cell) -> int:
        name = _text(value, 128)
        found = self.ids[kind].get(name.casefold(), [])
        if len(found) == 1:
            return found[0]
        if found:
            ids = ", ".join(map(str, found))
            raise _BadCell(f"{len(found)} {kind}s are named {name!r} (ids {ids}); rename one")
        known = self.names[kind]
        hint = f"known: {', '.join(known[:10])}{', ...' if len(known) > 10 else ''}"
        raise _BadCell(f"no {kind} named {name!r} ({hint if known else f'there is no {kind} yet'})")


@dataclass(slots=True)
class _RoutingDraft:
    where: Where  # its first row
    product: str | None = None
    name: str | None = None
    operations: list[tuple[Where, service.OperationSpec]] = field(default_factory=list)


@dataclass(slots=True)
class _Batch:
    """The checked rows, keyed by what the service functions are keyed by."""

    products: dict[str, tuple[Where, service.ProductSpec]] = field(default_factory=dict)
    routings: dict[str, _RoutingDraft] = field(default_factory=dict)
    boms: dict[str, list[tuple[Where, service.BomLine]]] = field(default_factory=dict)
    work_orders: dict[str, tuple[Where, service.WorkOrderSpec]] = field(default_factory=dict)

    def size(self) -> int:
        return len(self.products) + len(self.routings) + len(self.boms) + len(self.work_orders)


def _unique(row: _Cells, column: str, key: str, seen: Mapping[str, tuple[Where, Any]]) -> bool:
    if key in seen:
        row.fail(column, f"{key!r} is also on {seen[key][0]}")
        return False
    return True


def _check_products(row: _Cells, batch: _Batch, _zone: tzinfo, _centres: _WorkCentres) -> None:
    external_id = row.text("external_id", required=True)
    name = row.text("name", required=True, max_length=200)
    unit = row.text("unit_of_measure", max_length=16) or "pcs"
    serialised = row.flag("serialised")
    if external_id is None or name is None or row.failed:
        return
    if _unique(row, "external_id", external_id, batch.products):
        batch.products[external_id] = (row.where, service.ProductSpec(name, unit, serialised))


def _work_centre(row: _Cells, centres: _WorkCentres) -> tuple[int | None, int | None]:
    """(line_id, machine_id) of the row's machine or line name."""
    given = [c for c in ("machine", "line") if row.cells.get(c) is not None]
    if len(given) == 2:
        row.fail("line", "give a machine or a line, not both")
    if len(given) != 1:
        if not given:
            row.fail("machine", "empty; give the machine or the line the operation runs on")
        return None, None
    found = row.get(given[0], lambda v: centres.find(given[0], v))
    return (found, None) if given[0] == "line" else (None, found)


def _check_routings(row: _Cells, batch: _Batch, _zone: tzinfo, centres: _WorkCentres) -> None:
    routing = row.text("routing", required=True)
    product, routing_name = row.text("product"), row.text("routing_name", max_length=200)
    sequence = row.whole("sequence", required=True)
    name = row.text("name", required=True, max_length=200)
    line_id, machine_id = _work_centre(row, centres)
    cycle = row.number("ideal_cycle_time_s", above=0)
    setup = row.number("setup_time_s", minimum=0) or 0.0
    serialises = row.flag("serialises")
    if routing is None or sequence is None or name is None or row.failed:
        return
    draft = batch.routings.setdefault(routing, _RoutingDraft(row.where))
    for column, value, kept in (("product", product, draft.product),
                                ("routing_name", routing_name, draft.name)):  # fmt: skip
        if value is not None and kept is not None and value != kept:
            row.fail(column, f"{value!r}, but an earlier row of routing {routing!r} says {kept!r}")
    draft.product, draft.name = draft.product or product, draft.name or routing_name
    other = next((w for w, op in draft.operations if op.sequence == sequence), None)
    if other is not None:
        row.fail("sequence", f"{sequence} is also on {other} (routing {routing!r})")
    if not row.failed:
        spec = service.OperationSpec(sequence, name, line_id, machine_id, cycle, setup, serialises)
        draft.operations.append((row.where, spec))


def _check_bom(row: _Cells, batch: _Batch, _zone: tzinfo, _centres: _WorkCentres) -> None:
    parent = row.text("parent", required=True)
    component = row.text("component", required=True)
    quantity = row.number("quantity_per_unit", required=True, above=0)
    scrap = row.number("scrap_allowance_pct", minimum=0, below=100) or 0.0
    if parent is None or component is None or quantity is None or row.failed:
        return
    lines = batch.boms.setdefault(parent, [])
    other = next((w for w, line in lines if line.component == component), None)
    if other is not None:
        row.fail("component", f"{component!r} is also on {other} (BOM of {parent!r})")
        return
    lines.append((row.where, service.BomLine(component, quantity, scrap)))


def _check_work_orders(row: _Cells, batch: _Batch, zone: tzinfo, _centres: _WorkCentres) -> None:
    external_id = row.text("external_id", required=True)
    product = row.text("product", required=True)
    quantity = row.whole("quantity", required=True, minimum=1)
    routing = row.text("routing")
    due_ms = row.get("due", lambda v: _moment_ms(v, zone))
    priority = row.get("priority", lambda v: _whole(v, -_INT_MAX))
    if external_id is None or product is None or quantity is None or row.failed:
        return
    if _unique(row, "external_id", external_id, batch.work_orders):
        priority = DEFAULT_PRIORITY if priority is None else priority
        spec = service.WorkOrderSpec(product, quantity, routing, due_ms, priority)
        batch.work_orders[external_id] = (row.where, spec)


_CHECKS: Mapping[str, Callable[[_Cells, _Batch, tzinfo, _WorkCentres], None]] = {
    "products": _check_products,
    "routings": _check_routings,
    "bom": _check_bom,
    "work_orders": _check_work_orders,
}


def _check(
    files: Sequence[ImportFile], zone: tzinfo, centres: _WorkCentres, problems: list[str]
) -> _Batch:
    """Every row of every file checked (problems in file and row order) into one batch."""
    batch = _Batch()
    for source in files:
        for table in _read(source, problems):
            for where, cells in table.rows:
                row = _Cells(where, cells, problems)
                if cells[""] is not None:
                    row.fail(None, f"{_show(cells[''])} is in a column without a name")
                _CHECKS[table.kind](row, batch, zone, centres)
    for routing, draft in batch.routings.items():
        if draft.product is None:
            problems.append(draft.where.at("product", f"empty; give the product routing "
                                                      f"{routing!r} makes"))  # fmt: skip
    return batch


# --------------------------------------------------------------------------- applying


@dataclass(frozen=True, slots=True)
class _State:
    """What an upsert may change, and the row whose ``updated_ms`` it bumps."""

    values: tuple[Any, ...]
    stamped: Product | Routing | WorkOrder
    updated_ms: int


_Keyed = TypeVar("_Keyed", Product, Routing, WorkOrder)


def _by_external_id(session: Session, model: type[_Keyed], external_id: str) -> _Keyed | None:
    return session.scalar(select(model).where(model.external_id == external_id))


def _product_state(session: Session, external_id: str) -> _State | None:
    product = _by_external_id(session, Product, external_id)
    if product is None:
        return None
    values = (product.name, product.unit_of_measure, product.serialised)
    return _State(values, product, product.updated_ms)


def _bom_state(session: Session, parent: str) -> _State | None:
    product = _by_external_id(session, Product, parent)
    if product is None:
        return None
    query = select(BomItem.component_product_id, BomItem.quantity_per_unit,
                   BomItem.scrap_allowance_pct).where(BomItem.parent_product_id == product.id)  # fmt: skip
    items = tuple(sorted(tuple(row) for row in session.execute(query)))
    return _State(items, product, product.updated_ms) if items else None


def _routing_state(session: Session, external_id: str) -> _State | None:
    routing = _by_external_id(session, Routing, external_id)
    if routing is None:
        return None
    operations = tuple(
        (op.sequence, op.name, op.line_id, op.machine_id, op.ideal_cycle_time_s,
         op.setup_time_s, op.serialises)
        for op in session.scalars(select(RoutingOperation)
                                  .where(RoutingOperation.routing_id == routing.id)
                                  .order_by(RoutingOperation.sequence))
    )  # fmt: skip
    return _State((routing.product_id, routing.name, operations), routing, routing.updated_ms)


def _work_order_state(session: Session, external_id: str) -> _State | None:
    order = _by_external_id(session, WorkOrder, external_id)
    if order is None:
        return None
    values = (order.product_id, order.routing_id, order.quantity_ordered, order.due_ms,
              order.priority)  # fmt: skip
    return _State(values, order, order.updated_ms)


# service error field -> column, per kind ("items[]" is any index of a list)
_FIELD_COLUMNS: Mapping[str, Mapping[str, str]] = {
    "bom": {"product": "parent", "items[].component": "component"},
    "routings": {
        "product": "product",
        "operations": "sequence",
        "operations[]": "machine",
        "operations[].machine_id": "machine",
        "operations[].line_id": "line",
    },
    "work_orders": {"product": "product", "routing": "routing"},
}
_FIELD = re.compile(r"(?P<name>\w+)(?:\[(?P<index>\d+)\])?(?:\.(?P<sub>\w+))?: (?P<rest>.*)", re.S)


def _relabel(error: CloudError, kind: str, rows: Sequence[Where]) -> str:
    """A service error, told at the row (and column) it came from."""
    text = str(error)
    match = _FIELD.fullmatch(text)
    if match is not None:
        index = match["index"]
        key = match["name"] + ("[]" if index is not None else "")
        key += f".{match['sub']}" if match["sub"] else ""
        column = _FIELD_COLUMNS.get(kind, {}).get(key)
        if column is not None:
            where = rows[int(index)] if index is not None and int(index) < len(rows) else rows[0]
            return where.at(column, match["rest"])
    return rows[0].at(None, text)


@dataclass(slots=True)
class _Applier:
    """Runs each upsert under a savepoint, counts its outcome or keeps its error."""

    session: Session
    problems: list[str]
    counts: dict[str, KindCounts] = field(default_factory=dict)

    def __call__(
        self, kind: str, rows: Sequence[Where], state: Callable[[], _State | None],
        write: Callable[[], object],
    ) -> None:  # fmt: skip
        counts = self.counts.setdefault(kind, KindCounts())
        before = state()
        try:
            with self.session.begin_nested():
                write()
        except CloudError as error:
            self.problems.append(_relabel(error, kind, rows))
            return
        after = state()
        if before is None:
            counts.created += 1
        elif after is not None and after.values == before.values:
            after.stamped.updated_ms = before.updated_ms  # unchanged: keep when it last changed
            counts.unchanged += 1
        else:
            counts.updated += 1


def _apply(session: Session, batch: _Batch, now: int, problems: list[str]) -> dict[str, KindCounts]:
    """Upsert the batch: products, routings, BOMs, work orders; the counts per kind."""
    apply = _Applier(session, problems)
    for ext, (where, product) in batch.products.items():
        apply("products", [where], partial(_product_state, session, ext),
              partial(service.upsert_product, session, ext, product, now))  # fmt: skip
    for ext, draft in batch.routings.items():
        assert draft.product is not None  # checked
        operations = tuple(op for _, op in draft.operations)
        routing = service.RoutingSpec(draft.product, draft.name or ext, operations)
        apply("routings", [w for w, _ in draft.operations] or [draft.where],
              partial(_routing_state, session, ext),
              partial(service.upsert_routing, session, ext, routing, now))  # fmt: skip
    for parent, lines in batch.boms.items():
        apply("bom", [w for w, _ in lines], partial(_bom_state, session, parent),
              partial(service.replace_bom, session, parent, [line for _, line in lines], now))  # fmt: skip
    for ext, (where, order) in batch.work_orders.items():
        apply("work_orders", [where], partial(_work_order_state, session, ext),
              partial(service.upsert_work_order, session, ext, order, now))  # fmt: skip
    session.flush()
    return apply.counts


def run_import(
    session: Session, files: Sequence[ImportFile], *, now: int, tz: str = "UTC",
    dry_run: bool = False,
) -> ImportResult:  # fmt: skip
    """Check ``files``, then apply them in one transaction: commit, or roll back (dry run).

    Due dates without an offset are local time in ``tz``. Raises ``ImportRejected`` listing
    every problem (the transaction rolled back: nothing written).
    """
    problems: list[str] = []
    try:
        zone = time_zone(tz)
    except InvalidRequest as error:
        raise ImportRejected([str(error)]) from None
    batch = _check(files, zone, _WorkCentres.load(session), problems)
    if not problems and batch.size() == 0:
        problems.append("nothing to import: the files hold no rows under their header rows")
    counts = _apply(session, batch, now, problems) if not problems else {}
    if problems or dry_run:
        session.rollback()
    if problems:
        raise ImportRejected(problems)
    if not dry_run:
        session.commit()
    return ImportResult(counts, dry_run)


__all__ = [
    "COLUMNS",
    "KINDS",
    "MAX_PROBLEMS",
    "ImportFile",
    "ImportRejected",
    "ImportResult",
    "KindCounts",
    "Where",
    "run_import",
    "time_zone",
]
