"""Route for the trace report of a unit: JSON, a printable HTML page, or a PDF to archive.

``GET /api/trace/units/{serial}/report?format=json|html|pdf&tz=Europe/Berlin``. An unknown
serial answers 404; an unknown format or time zone answers 400 naming the parameter.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from cloud.api.deps import SessionDep
from cloud.production.trace import backward_trace
from cloud.production.trace_report import (
    REPORT_FORMATS,
    render_report,
    report_filename,
    report_format,
    report_zone,
)
from protocols.clock import now_ms

router = APIRouter(prefix="/api", tags=["production"])


@router.get(
    "/trace/units/{serial}/report",
    response_class=Response,
    responses={
        200: {
            "description": "The report in the asked format",
            "content": {f.media_type: {} for f in REPORT_FORMATS.values()},
        },
        400: {"description": "Unknown format or time zone"},
        404: {"description": "No unit with this serial"},
    },
)
def get_unit_trace_report(
    serial: str,
    session: SessionDep,
    fmt: str = Query("json", alias="format", description="json, html or pdf"),
    tz: str = Query("UTC", description="IANA time zone of the HTML and PDF times"),
) -> Response:
    """The backward trace of the unit as a report; the PDF comes as a download."""
    chosen = report_format(fmt)
    report_zone(tz)  # a wrong zone answers 400 before the trace is built
    now = now_ms()
    body = render_report(backward_trace(session, serial, now), fmt, now, tz)
    headers = {}
    if chosen.extension == "pdf":
        name = report_filename(serial, chosen.extension)
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return Response(body, media_type=chosen.media_type, headers=headers)
