"""Route for the spreadsheet import: ``POST /api/production/import`` (one .xlsx or .csv file).

The upload goes through ``cloud.production.importer``: everything is checked first, then applied
in one transaction. Any problem answers 400 with every problem found, each naming its file,
sheet, row and column, and nothing is written; ``dry_run=true`` answers what would change.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from cloud.api.deps import WriteSessionDep
from cloud.errors import InvalidRequest
from cloud.production.importer import KINDS, ImportFile, ImportRejected, run_import
from protocols.clock import now_ms

MAX_UPLOAD_BYTES = 20 * 1024 * 1024

router = APIRouter(prefix="/api/production", tags=["production"])


class KindCountsOut(BaseModel):
    created: int
    updated: int
    unchanged: int


class ImportOut(BaseModel):
    dry_run: bool = Field(description="true: checked and counted, nothing written")
    counts: dict[str, KindCountsOut] = Field(description="per kind, in the order applied")


class ImportProblemsOut(BaseModel):
    detail: str = Field(description="the whole message: a count, then one problem a line")
    problems: list[str] = Field(description="'file, sheet S, row R, column C: what is wrong'")
    omitted: int = Field(description="problems found beyond the ones listed")


@router.post(
    "/import",
    response_model=ImportOut,
    responses={400: {"model": ImportProblemsOut, "description": "nothing was imported"}},
)
def post_import(
    session: WriteSessionDep,
    file: Annotated[UploadFile | None, File(description="an .xlsx workbook or a .csv file")] = None,
    dry_run: Annotated[bool, Query(description="check and count, write nothing")] = False,
    kind: Annotated[
        str | None, Query(description=f"CSV: what it holds ({', '.join(KINDS)}); default: its name")
    ] = None,
    tz: Annotated[str, Query(description="time zone of due dates without an offset")] = "UTC",
) -> ImportOut | JSONResponse:
    """Import products, routings, BOMs and work orders from a spreadsheet (see docs/import.md)."""
    if file is None:
        raise InvalidRequest("file: upload one .xlsx or .csv file (multipart field 'file')")
    content = file.file.read(MAX_UPLOAD_BYTES + 1)
    if len(content) > MAX_UPLOAD_BYTES:
        raise InvalidRequest(f"file: larger than {MAX_UPLOAD_BYTES // 1024 // 1024} MiB")
    source = ImportFile(file.filename or "upload.csv", content, kind)
    try:
        result = run_import(session, [source], now=now_ms(), tz=tz, dry_run=dry_run)
    except ImportRejected as rejected:
        body = ImportProblemsOut(
            detail=str(rejected), problems=list(rejected.problems), omitted=rejected.omitted
        )
        return JSONResponse(body.model_dump(), status_code=400)
    counts = {
        name: KindCountsOut(created=c.created, updated=c.updated, unchanged=c.unchanged)
        for name, c in result.counts.items()
    }
    return ImportOut(dry_run=result.dry_run, counts=counts)
