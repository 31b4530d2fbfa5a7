"""Trace reports of one unit: JSON, a printable HTML page and a PDF, from a ``UnitTrace``.

A complaint or an audit needs the backward trace as a document: the JSON for machines, a page
to print or mail, and a PDF to archive. HTML and PDF are laid out from one format-neutral
document (``_Block``: a unit's facts, headings and tables, built once per unit of the trace
tree), so both always carry the same figures; the JSON is the trace itself with ISO 8601 UTC
times beside the epoch milliseconds.

Times in HTML and PDF are shown in the time zone asked for (an IANA name); an unknown zone or
format raises ``InvalidRequest`` naming the field. The PDF uses a core font (Helvetica, whose
Windows-1252 encoding holds °, µ, ³ and the dashes); other characters are replaced by readable
ASCII (``≤`` → ``<=``), accents dropped, and what is left becomes ``?``.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cloud.errors import InvalidRequest
from cloud.production.trace import (
    AlarmInWindow,
    ConsumedLot,
    InspectionTrace,
    OperationTrace,
    OperatorEntry,
    ParameterSummary,
    TestTrace,
    UnitTrace,
)
from protocols.clock import now_ms

if TYPE_CHECKING:
    from fpdf import FPDF

SCHEMA = "forgeline.trace/1"
NONE = "—"  # an absent value in a table cell
WINDOW_KINDS = {"unit_cycle": "unit cycle", "operation": "whole operation"}
# trace fields holding epoch milliseconds, and the ISO 8601 field the JSON adds beside each
TIME_FIELDS = {
    "created_ms": "created_at",
    "started_ms": "started_at",
    "finished_ms": "finished_at",
    "window_start_ms": "window_start_at",
    "window_end_ms": "window_end_at",
    "raised_ms": "raised_at",
    "cleared_ms": "cleared_at",
    "ms": "at",
}


@dataclass(frozen=True, slots=True)
class ReportFormat:
    media_type: str
    extension: str


REPORT_FORMATS = {
    "json": ReportFormat("application/json", "json"),
    "html": ReportFormat("text/html; charset=utf-8", "html"),
    "pdf": ReportFormat("application/pdf", "pdf"),
}


# --------------------------------------------------------------------------- values


def report_zone(tz: str) -> tzinfo:
    """The time zone named ``tz`` (IANA, e.g. Europe/Berlin), or ``InvalidRequest``."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe" is a folder
        raise InvalidRequest(
            f"tz: {tz!r} is not a known time zone; give an IANA name such as UTC or Europe/Berlin"
        ) from None


def report_format(name: str) -> ReportFormat:
    """The report format ``name`` (json, html or pdf), or ``InvalidRequest``."""
    found = REPORT_FORMATS.get(name)
    if found is None:
        raise InvalidRequest(f"format: {name!r} is not one of {', '.join(REPORT_FORMATS)}")
    return found


def report_filename(serial: str, extension: str) -> str:
    """``trace-<serial>.<ext>`` with every character unsafe in a file name made ``_``."""
    return f"trace-{re.sub(r'[^A-Za-z0-9._-]', '_', serial)}.{extension}"


def _iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _time(ms: int | None, zone: tzinfo) -> str:
    if ms is None:
        return NONE
    moment = datetime.fromtimestamp(ms // 1000, zone)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{ms % 1000:03d}" if ms % 1000 else text


def _number(value: float | None) -> str:
    return NONE if value is None else f"{value:.6g}"


def _limits(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{_number(low)} – {_number(high)}"
    if low is not None:
        return f"≥ {_number(low)}"
    return NONE if high is None else f"≤ {_number(high)}"


def _duration(ms: int) -> str:
    if ms == 0:
        return "0 s"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.3g} s"
    seconds = ms // 1000
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


# --------------------------------------------------------------------------- JSON


def _with_times(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out[key] = _with_times(item)
            if key in TIME_FIELDS:
                out[TIME_FIELDS[key]] = None if item is None else _iso(item)
        return out
    if isinstance(value, list):
        return [_with_times(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity
    return value


def trace_json(trace: UnitTrace, generated_ms: int | None = None) -> dict[str, Any]:
    """The trace as plain JSON-able data, with ``schema``, ``generated_at`` and ISO times."""
    generated = now_ms() if generated_ms is None else generated_ms
    body: dict[str, Any] = _with_times(dataclasses.asdict(trace))
    return {"schema": SCHEMA, "generated_ms": generated, "generated_at": _iso(generated), **body}


# --------------------------------------------------------------------------- document


@dataclass(frozen=True, slots=True)
class _Row:
    cells: tuple[str, ...]
    flagged: bool = False  # out of limits or failed: highlighted


@dataclass(frozen=True, slots=True)
class _Table:
    title: str
    columns: tuple[tuple[str, int], ...]  # heading and relative width
    rows: tuple[_Row, ...]
    empty: str  # said instead of the table when it has no rows


@dataclass(frozen=True, slots=True)
class _Heading:
    text: str
    flagged: bool = False


@dataclass(frozen=True, slots=True)
class _Block:
    """One unit of the trace tree: its facts, then headings and tables."""

    depth: int  # 0: the reported unit; 1: its components ...
    path: tuple[str, ...]  # serials from the reported unit down to this one
    facts: tuple[tuple[str, str], ...]
    parts: tuple[_Heading | _Table, ...]


_OPERATIONS = (
    ("Seq", 5), ("Operation", 14), ("Machine", 11), ("State", 8), ("Operators", 13),
    ("Start", 15), ("End", 15), ("Good", 6), ("Scrap", 6), ("Rework", 6), ("Window", 10),
)  # fmt: skip
_PARAMETERS = (
    ("Parameter", 16), ("Unit", 8), ("Limits", 14), ("Samples", 8), ("Min", 10), ("Max", 10),
    ("Mean", 10), ("Samples out", 9), ("Time out", 11),
)  # fmt: skip
_ALARMS = (("Raised", 15), ("Cleared", 15), ("Rule", 14), ("Metric", 12), ("Message", 44))
_EVENTS = (
    ("Time", 15), ("Action", 10), ("Operator", 14), ("Good", 7), ("Scrap", 7), ("Rework", 7),
    ("Reason", 40),
)  # fmt: skip
_LOTS = (
    ("Lot", 16), ("Product", 14), ("Supplier", 16), ("Supplier lot / heat", 14),
    ("Quantity", 8), ("Booked", 16), ("Time", 15),
)  # fmt: skip
_TESTS = (
    ("Test", 13), ("Machine", 11), ("Finished", 15), ("Verdict", 7), ("Characteristic", 16),
    ("Value", 11), ("Limits", 12), ("Result", 7),
)  # fmt: skip
_INSPECTIONS = (
    ("Characteristic", 15), ("Result", 10), ("Verdict", 7), ("Inspector", 12), ("Time", 15),
    ("Lot", 13), ("Note", 28),
)  # fmt: skip
_COMPONENTS = (("Serial", 20), ("Product", 20), ("Work order", 20), ("Made", 20))


def _operation_row(op: OperationTrace, zone: tzinfo) -> _Row:
    return _Row((
        str(op.sequence), op.name, op.machine or NONE, op.state, ", ".join(op.operators) or NONE,
        _time(op.started_ms, zone), _time(op.finished_ms, zone), str(op.good), str(op.scrap),
        str(op.rework), WINDOW_KINDS.get(op.window, op.window),
    ))  # fmt: skip


def _is_out(parameter: ParameterSummary) -> bool:
    return parameter.out_of_limits > 0 or parameter.time_out_of_limits_ms > 0


def _parameter_row(p: ParameterSummary) -> _Row:
    return _Row((
        p.metric, p.unit or NONE, _limits(p.low_limit, p.high_limit), str(p.count),
        _number(p.min), _number(p.max), _number(p.mean), str(p.out_of_limits),
        _duration(p.time_out_of_limits_ms),
    ), _is_out(p))  # fmt: skip


def _alarm_row(a: AlarmInWindow, zone: tzinfo) -> _Row:
    cells = (_time(a.raised_ms, zone), _time(a.cleared_ms, zone), a.rule, a.metric or NONE)
    return _Row((*cells, a.message))


def _event_row(e: OperatorEntry, zone: tzinfo) -> _Row:
    return _Row((
        _time(e.ms, zone), e.action, e.operator or NONE, str(e.good), str(e.scrap),
        str(e.rework), e.reason or NONE,
    ))  # fmt: skip


def _operation_parts(op: OperationTrace, zone: tzinfo) -> Iterator[_Heading | _Table]:
    window = WINDOW_KINDS.get(op.window, op.window)
    span = f"{_time(op.window_start_ms, zone)} – {_time(op.window_end_ms, zone)}"
    machine = f" on {op.machine}" if op.machine else ""
    out = any(_is_out(p) for p in op.parameters)
    yield _Heading(f"Operation {op.sequence} {op.name}{machine}: {window} {span}", out)
    parameters = tuple(_parameter_row(p) for p in op.parameters)
    yield _Table("Process parameters", _PARAMETERS, parameters, "No traced parameters.")
    alarms = tuple(_alarm_row(a, zone) for a in op.alarms)
    yield _Table("Alarms", _ALARMS, alarms, "No alarms in the window.")
    if op.events:
        yield _Table("Operator actions", _EVENTS, tuple(_event_row(e, zone) for e in op.events), "")


def _lot_row(lot: ConsumedLot, zone: tzinfo) -> _Row:
    booked = (
        lot.source if lot.via_operation is None else f"{lot.source}, operation {lot.via_operation}"
    )
    return _Row((
        lot.lot, lot.product, lot.supplier or NONE, lot.supplier_lot or NONE,
        _number(lot.quantity), booked, _time(lot.ms, zone),
    ))  # fmt: skip


def _test_rows(test: TestTrace, zone: tzinfo) -> Iterator[_Row]:
    head = (test.name, test.machine or NONE, _time(test.finished_ms, zone), _verdict(test.passed))
    if not test.values:
        yield _Row((*head, NONE, NONE, NONE, NONE), not test.passed)
    for v in test.values:
        value = _number(v.value) + (f" {v.unit}" if v.unit and v.value is not None else "")
        limits = _limits(v.low_limit, v.high_limit)
        yield _Row((*head, v.characteristic, value, limits, _verdict(v.passed)), not v.passed)


def _inspection_row(i: InspectionTrace, zone: tzinfo) -> _Row:
    result = i.attribute if i.value is None and i.attribute else _number(i.value)
    return _Row((
        i.characteristic, result, _verdict(i.passed), i.inspector, _time(i.ms, zone),
        i.lot or NONE, i.note or NONE,
    ), not i.passed)  # fmt: skip


def _component_row(c: UnitTrace, zone: tzinfo) -> _Row:
    return _Row((c.serial, c.product, c.work_order, _time(c.created_ms, zone)))


def _material_parts(trace: UnitTrace, zone: tzinfo) -> Iterator[_Heading | _Table]:
    yield _Heading("Material, tests and inspections")
    lots = tuple(_lot_row(lot, zone) for lot in trace.lots)
    yield _Table("Consumed lots", _LOTS, lots, "No material lots consumed.")
    tests = tuple(row for test in trace.tests for row in _test_rows(test, zone))
    yield _Table("Tests", _TESTS, tests, "No tests recorded.")
    inspections = tuple(_inspection_row(i, zone) for i in trace.inspections)
    yield _Table("Inspections", _INSPECTIONS, inspections, "No inspections recorded.")
    components = tuple(_component_row(c, zone) for c in trace.components)
    yield _Table("Components", _COMPONENTS, components, "No component units.")


def _findings(trace: UnitTrace) -> str:
    out = sum(1 for op in trace.operations for p in op.parameters if _is_out(p))
    alarms = sum(len(op.alarms) for op in trace.operations)
    tests = sum(1 for test in trace.tests if not test.passed)
    inspections = sum(1 for i in trace.inspections if not i.passed)
    return (
        f"{out} parameter(s) out of limits, {alarms} alarm(s), {tests} failed test(s), "
        f"{inspections} failed inspection(s)"
    )


def _made_at(trace: UnitTrace, zone: tzinfo) -> str:
    names = {op.sequence: op.name for op in trace.operations}
    name = names.get(trace.created_at_operation)
    step = f"operation {trace.created_at_operation}" + (f" {name}" if name else "")
    return f"{step}, {_time(trace.created_ms, zone)}"


def _block(trace: UnitTrace, path: tuple[str, ...], zone: tzinfo) -> _Block:
    facts = [
        ("Serial", trace.serial),
        ("Product", trace.product),
        ("Work order", trace.work_order),
        ("Made at", _made_at(trace, zone)),
        ("Findings", _findings(trace)),
    ]
    if len(path) > 1:
        facts.insert(1, ("Component of", " › ".join(path[:-1])))
    operations = tuple(_operation_row(op, zone) for op in trace.operations)
    parts: list[_Heading | _Table] = [
        _Table("Operations", _OPERATIONS, operations, "No operations.")
    ]
    for op in trace.operations:
        parts.extend(_operation_parts(op, zone))
    parts.extend(_material_parts(trace, zone))
    return _Block(len(path) - 1, path, tuple(facts), tuple(parts))


def _blocks(trace: UnitTrace, zone: tzinfo) -> list[_Block]:
    """The unit, then each component depth first: one block each."""
    blocks: list[_Block] = []
    stack: list[tuple[UnitTrace, tuple[str, ...]]] = [(trace, (trace.serial,))]
    while stack:
        unit, path = stack.pop()
        blocks.append(_block(unit, path, zone))
        stack.extend((c, (*path, c.serial)) for c in reversed(unit.components))
    return blocks


def _block_title(block: _Block) -> str:
    return f"Unit {block.path[0]}" if block.depth == 0 else f"Component {block.path[-1]}"


# --------------------------------------------------------------------------- HTML

_CSS = """
body { font: 10pt/1.35 "Helvetica Neue", Arial, sans-serif; color: #111; margin: 1.5em; }
h1 { font-size: 16pt; margin: 0 0 .2em; }
h2 { font-size: 13pt; margin: 1.2em 0 .3em; border-bottom: 2px solid #333; }
h3 { font-size: 10.5pt; margin: 1.1em 0 .2em; padding: 1px 4px; background: #f2f2f2; }
h4 { font-size: 9.5pt; margin: .6em 0 .15em; }
.meta { color: #555; margin: 0 0 1em; }
.unit { border-left: 3px solid #bbb; padding-left: 1em; }
.unit.depth-0 { border-left: none; padding-left: 0; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: .1em 1em; }
dl.facts dt { font-weight: bold; } dl.facts dd { margin: 0; }
table { border-collapse: collapse; width: 100%; margin: .2em 0 .6em; font-size: 9pt; }
th, td { border: 1px solid #999; padding: 2px 4px; text-align: left; vertical-align: top; }
th { background: #e6e6e6; }
.flag { background: #fde2e2; font-weight: bold; }
.empty { color: #555; font-style: italic; margin: .1em 0 .6em; }
@media print {
  @page { size: A4 landscape; margin: 12mm; }
  body { margin: 0; }
  .unit + .unit { break-before: page; }
  thead { display: table-header-group; }
  tr, h3, h4 { break-inside: avoid; } h3, h4 { break-after: avoid; }
  .flag, th, h3 { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _html_table(table: _Table) -> list[str]:
    lines = [f"<h4>{_e(table.title)}</h4>"]
    if not table.rows:
        return [*lines, f'<p class="empty">{_e(table.empty)}</p>']
    head = "".join(f"<th>{_e(column)}</th>" for column, _width in table.columns)
    total = sum(width for _column, width in table.columns)
    widths = "".join(
        f'<col style="width: {100 * width / total:.1f}%">' for _column, width in table.columns
    )
    lines += ["<table>", f"<colgroup>{widths}</colgroup>", f"<thead><tr>{head}</tr></thead>"]
    lines.append("<tbody>")
    for row in table.rows:
        cells = "".join(f"<td>{_e(cell)}</td>" for cell in row.cells)
        lines.append(f'<tr class="flag">{cells}</tr>' if row.flagged else f"<tr>{cells}</tr>")
    return [*lines, "</tbody>", "</table>"]


def _html_block(block: _Block) -> list[str]:
    indent = f' style="margin-left: {2 * block.depth}em"' if block.depth else ""
    lines = [
        f'<section class="unit depth-{block.depth}"{indent}>',
        f"<h2>{_e(_block_title(block))}</h2>",
        '<dl class="facts">',
        *(f"<dt>{_e(name)}</dt><dd>{_e(value)}</dd>" for name, value in block.facts),
        "</dl>",
    ]
    for part in block.parts:
        if isinstance(part, _Heading):
            flag = ' class="flag"' if part.flagged else ""
            lines.append(f"<h3{flag}>{_e(part.text)}</h3>")
        else:
            lines += _html_table(part)
    return [*lines, "</section>"]


def trace_html(trace: UnitTrace, generated_ms: int, tz: str = "UTC") -> str:
    """One self-contained printable page: inline CSS, no script, every text escaped."""
    zone = report_zone(tz)
    title = f"Trace report: unit {trace.serial}"
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="generator" content="forgeline">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">Work order {_e(trace.work_order)} · generated '
        f"{_e(_time(generated_ms, zone))} · times in {_e(tz)} · {SCHEMA}</p>",
    ]
    for block in _blocks(trace, zone):
        lines += _html_block(block)
    return "\n".join([*lines, "</body>", "</html>", ""])


# --------------------------------------------------------------------------- PDF

PDF_ENCODING = "windows-1252"  # the core fonts' WinAnsiEncoding
_PDF_SUBSTITUTES = str.maketrans({
    "≤": "<=", "≥": ">=", "≠": "!=", "≈": "~", "→": "->", "←": "<-", "↔": "<->", "−": "-",
    "Ω": "Ohm", "Δ": "delta ", "√": "sqrt", "∞": "inf", "⁻": "-", "¹": "1", "⁰": "0",
    "⁴": "4", "⁵": "5", "⁶": "6", "⁷": "7", "⁸": "8", "⁹": "9", "\u2009": " ", "\u202f": " ",
    "✓": "ok", "✗": "x", "Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "ı": "i", "Ħ": "H", "ħ": "h",
})  # fmt: skip
_MARGIN = 12.0  # mm
_INDENT = 6.0  # mm per component level, at most _MAX_INDENT_LEVELS
_MAX_INDENT_LEVELS = 5
_FLAG_RGB = (253, 226, 226)  # the highlight of what is out of limits or failed
_HEADING_RGB = (230, 230, 230)


def pdf_text(text: str) -> str:
    """``text`` in what the core fonts can show: substitutes, accents dropped, else ``?``."""
    text = text.translate(_PDF_SUBSTITUTES)
    out = []
    for char in text:
        try:
            char.encode(PDF_ENCODING)
        except UnicodeEncodeError:
            plain = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
            char = plain or "?"
        out.append(char)
    return "".join(out)


def _new_pdf(footer_text: str) -> FPDF:
    """An A4 landscape document whose every page's footer reads ``footer_text · page n/N``.

    fpdf2 (with fontTools and Pillow) takes a second or more to import, so only a PDF loads it.
    """
    from fpdf import FPDF

    class ReportPdf(FPDF):
        def footer(self) -> None:
            self.set_y(-10)
            self.set_font("Helvetica", size=7)
            self.set_text_color(90)
            self.cell(0, 5, f"{footer_text} · page {self.page_no()}/{{nb}}", align="C")
            self.set_text_color(0)

    pdf = ReportPdf(orientation="L", unit="mm", format="A4")
    pdf.core_fonts_encoding = PDF_ENCODING
    return pdf


def _pdf_heading(pdf: FPDF, text: str, size: float, flagged: bool = False) -> None:
    if pdf.will_page_break(20):
        pdf.add_page()
    pdf.ln(1.5)
    pdf.set_font("Helvetica", "B", size)
    pdf.set_fill_color(*_FLAG_RGB)
    pdf.multi_cell(0, size * 0.5, pdf_text(text), fill=flagged, new_x="LMARGIN", new_y="NEXT")


def _pdf_facts(pdf: FPDF, facts: Sequence[tuple[str, str]]) -> None:
    for name, value in facts:
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(32, 5, pdf_text(name))
        pdf.set_font("Helvetica", "", 9)
        pdf.multi_cell(0, 5, pdf_text(value), new_x="LMARGIN", new_y="NEXT")


def _pdf_table(pdf: FPDF, table: _Table) -> None:
    from fpdf.fonts import FontFace

    _pdf_heading(pdf, table.title, 9.5)
    pdf.set_font("Helvetica", "", 8)
    if not table.rows:
        pdf.set_font("Helvetica", "I", 8)
        pdf.multi_cell(0, 4.5, pdf_text(table.empty), new_x="LMARGIN", new_y="NEXT")
        return
    flagged = FontFace(emphasis="B", fill_color=_FLAG_RGB)
    widths = tuple(width for _column, width in table.columns)
    with pdf.table(
        col_widths=widths, width=pdf.epw, align="LEFT", text_align="LEFT", line_height=4,
        headings_style=FontFace(emphasis="B", fill_color=_HEADING_RGB), repeat_headings=1,
    ) as layout:  # fmt: skip
        heading = layout.row()
        for column, _width in table.columns:
            heading.cell(pdf_text(column))
        for row in table.rows:
            cells = layout.row()
            for cell in row.cells:
                cells.cell(pdf_text(cell), style=flagged if row.flagged else None)


def _pdf_block(pdf: FPDF, block: _Block) -> None:
    pdf.set_left_margin(_MARGIN + _INDENT * min(block.depth, _MAX_INDENT_LEVELS))
    pdf.add_page()
    _pdf_heading(pdf, _block_title(block), 13)
    _pdf_facts(pdf, block.facts)
    for part in block.parts:
        if isinstance(part, _Heading):
            _pdf_heading(pdf, part.text, 10, part.flagged)
        else:
            _pdf_table(pdf, part)


def trace_pdf(trace: UnitTrace, generated_ms: int, tz: str = "UTC") -> bytes:
    """The content of ``trace_html`` as a PDF: a page (or more) per unit, headers repeated."""
    zone = report_zone(tz)
    generated = _time(generated_ms, zone)
    pdf = _new_pdf(pdf_text(f"Unit {trace.serial} · generated {generated} ({tz})"))
    pdf.set_margins(_MARGIN, _MARGIN, _MARGIN)
    pdf.set_auto_page_break(True, margin=15)
    pdf.set_title(pdf_text(f"Trace report: unit {trace.serial}"))
    pdf.set_subject(pdf_text(f"Work order {trace.work_order}"))
    pdf.set_creator("forgeline")
    pdf.set_creation_date(datetime.fromtimestamp(generated_ms / 1000, UTC))
    for block in _blocks(trace, zone):
        _pdf_block(pdf, block)
    return bytes(pdf.output())


# --------------------------------------------------------------------------- any format


def render_report(trace: UnitTrace, fmt: str, generated_ms: int, tz: str = "UTC") -> bytes:
    """The report in format ``fmt`` (json, html or pdf) as bytes; JSON times are UTC."""
    report_format(fmt)
    if fmt == "json":
        report_zone(tz)  # the JSON ignores it, but a wrong one is still an error
        body = trace_json(trace, generated_ms)
        return json.dumps(body, ensure_ascii=False, indent=2, allow_nan=False).encode()
    if fmt == "html":
        return trace_html(trace, generated_ms, tz).encode()
    return trace_pdf(trace, generated_ms, tz)


__all__ = [
    "REPORT_FORMATS",
    "SCHEMA",
    "ReportFormat",
    "pdf_text",
    "render_report",
    "report_filename",
    "report_format",
    "report_zone",
    "trace_html",
    "trace_json",
    "trace_pdf",
]
