"""``forgeline trace SERIAL``: a unit's trace report (JSON, HTML or PDF) from the cloud database.

It reads the database directly, so no cloud process needs to run, and writes the same report
as ``GET /api/trace/units/{serial}/report``. The cloud's modules are imported when the command
runs, so an edge-only install (``forgeline[edge]``) keeps a working CLI.
"""

from __future__ import annotations

from pathlib import Path

import click

FORMATS = ("json", "html", "pdf")


def _database_url(db_url: str | None, config_file: Path | None) -> str:
    """``--database-url``, else the config's, else the cloud's default SQLite file."""
    from sqlalchemy.exc import ArgumentError

    from cloud.config import CloudConfig, load_cloud_config
    from cloud.db import normalize_url
    from protocols.errors import ProfileError

    try:
        config = load_cloud_config(config_file) if config_file else CloudConfig()
    except ProfileError as exc:
        raise click.ClickException(str(exc)) from exc
    url = db_url or config.database_url
    try:
        parsed = normalize_url(url)
    except ArgumentError as exc:
        raise click.BadParameter(
            f"{url!r} is not a database URL ({exc})", param_hint="--database-url"
        ) from exc
    database = parsed.database or ":memory:"
    local = parsed.get_backend_name() == "sqlite" and database != ":memory:"
    if local and not Path(database).exists():
        raise click.ClickException(
            f"no database file {database}; give --database-url (the cloud's db_url) or --config"
        )
    return url


def _choose_format(fmt: str | None, output: Path | None) -> str:
    if fmt is not None:
        return fmt
    suffix = output.suffix.lower().lstrip(".") if output is not None else ""
    return {"htm": "html"}.get(suffix, suffix) if suffix in (*FORMATS, "htm") else "json"


def _render(url: str, serial: str, fmt: str, tz: str) -> bytes:
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import Session

    from cloud.db import create_engine_for
    from cloud.errors import CloudError
    from cloud.production.trace import backward_trace
    from cloud.production.trace_report import render_report
    from protocols.clock import now_ms

    try:
        engine = create_engine_for(url)
    except ValueError as exc:  # neither SQLite nor PostgreSQL
        raise click.BadParameter(str(exc), param_hint="--database-url") from exc
    try:
        with Session(engine) as session:
            now = now_ms()
            return render_report(backward_trace(session, serial, now), fmt, now, tz)
    except CloudError as exc:
        raise click.ClickException(str(exc)) from exc
    except SQLAlchemyError as exc:
        shown = engine.url.render_as_string(hide_password=True)
        reason = getattr(exc, "orig", None) or exc  # the driver's words, without SQLAlchemy's
        raise click.ClickException(f"database {shown}: {reason}") from exc
    finally:
        engine.dispose()


def _write(report: bytes, output: Path | None, serial: str, fmt: str) -> None:
    from cloud.production.trace_report import report_filename

    to_stdout = str(output) == "-" if output is not None else fmt != "pdf"
    if to_stdout:
        click.echo(report, nl=False)  # bytes go to the binary stream
        return
    target = output if output is not None else Path(report_filename(serial, fmt))
    target.write_bytes(report)
    click.echo(f"wrote {target} ({len(report)} bytes)", err=True)


@click.command("trace")
@click.argument("serial")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Report format (default: from the suffix of --output, else json).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=None,
    help="Write the report here; '-' is standard output (default: standard output for json "
    "and html, ./trace-SERIAL.pdf for pdf).",
)
@click.option(
    "--tz",
    default="UTC",
    show_default=True,
    metavar="ZONE",
    help="IANA time zone of the times in html and pdf, e.g. Europe/Berlin (json is UTC).",
)
@click.option(
    "--database-url",
    "--db-url",
    "db_url",
    default=None,
    metavar="URL",
    help="SQLAlchemy URL of the cloud database (sqlite:///path or postgresql+psycopg://...); "
    "default: the db_url of --config, else the cloud's default SQLite file.",
)
@click.option(
    "--config",
    "config_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Cloud YAML config whose database to read (see deploy/cloud.sample.yaml).",
)
def trace(
    serial: str,
    fmt: str | None,
    output: Path | None,
    tz: str,
    db_url: str | None,
    config_file: Path | None,
) -> None:
    """Export the trace report of unit SERIAL: how it was made, its lots, tests and components."""
    from cloud.errors import InvalidRequest
    from cloud.production.trace_report import report_zone

    try:
        report_zone(tz)
    except InvalidRequest as exc:
        raise click.BadParameter(str(exc).removeprefix("tz: "), param_hint="--tz") from exc
    chosen = _choose_format(fmt, output)
    report = _render(_database_url(db_url, config_file), serial, chosen, tz)
    _write(report, output, serial, chosen)


__all__ = ["trace"]
