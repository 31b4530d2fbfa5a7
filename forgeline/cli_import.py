"""``forgeline import``: products, routings, BOMs and work orders from a workbook or CSV files.

The command is registered on the main group in ``forgeline.cli``. Like every command it imports
the cloud only when it runs, so that ``forgeline --help`` works on an edge-only install. It
finds the database as ``forgeline cloud`` does (``--database-url``, else the cloud config's
``db_url``, else the default SQLite file), brings its schema up to date, and hands the files to
``cloud.production.importer``. Bad input exits with code 2 and every problem on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

# cloud.production.importer.KINDS (a test keeps them equal), spelled out so that the help
# needs no cloud packages
KINDS = ("products", "routings", "bom", "work_orders")


def _time_zone(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    from cloud.errors import InvalidRequest
    from cloud.production.importer import time_zone

    try:
        time_zone(value)
    except InvalidRequest as error:
        raise click.BadParameter(str(error).removeprefix("tz: ")) from None
    return value


def _database_url(database_url: str | None, config_file: Path | None) -> str:
    from cloud.config import CloudConfig, load_cloud_config
    from protocols.errors import ProfileError

    try:
        config = load_cloud_config(config_file) if config_file else CloudConfig()
    except ProfileError as exc:
        raise click.BadParameter(str(exc), param_hint="--config") from exc
    return database_url or config.database_url


@click.command("import")
@click.argument(
    "files",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default=None,
    help="What the CSV files hold (default: each file's name, e.g. bom.csv); with a workbook "
    "of a single sheet, what that sheet holds whatever its name.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check everything and print what would be created or updated, then write nothing.",
)
@click.option(
    "--tz",
    default="UTC",
    show_default=True,
    callback=_time_zone,
    metavar="ZONE",
    help="Time zone of due dates given without an offset (an IANA name, e.g. Europe/Berlin).",
)
@click.option(
    "--database-url",
    "--db-url",
    "database_url",
    default=None,
    metavar="URL",
    help="SQLAlchemy URL of the cloud database (sqlite:///path or postgresql+psycopg://...); "
    "default: the --config file's db_url, else the cloud's default SQLite file.",
)
@click.option(
    "--config",
    "config_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Cloud YAML config (see deploy/cloud.sample.yaml) whose database to import into.",
)
def import_command(
    files: tuple[Path, ...], kind: str | None, dry_run: bool, tz: str,
    database_url: str | None, config_file: Path | None,
) -> None:  # fmt: skip
    """Import products, routings, BOMs and work orders from .xlsx workbooks or CSV files.

    A workbook's sheets are named products, routings, bom and work_orders (any subset); a CSV
    file holds one kind, told by --kind or by its name (products.csv, routings.csv, bom.csv,
    work_orders.csv). The first row names the columns:

    \b
      products     external_id, name, unit_of_measure (pcs), serialised (yes/no)
      routings     routing, product, sequence, name, machine or line (by name),
                   ideal_cycle_time_s, setup_time_s, serialises, routing_name
      bom          parent, component, quantity_per_unit, scrap_allowance_pct
      work_orders  external_id, product, quantity, routing, due (date), priority

    Everything is checked before anything is written, then applied in one transaction
    (products, routings, BOMs, work orders); a repeat changes nothing. On any problem nothing
    is written and every problem is printed with its file, sheet, row and column (exit code
    2). The database schema is brought up to date first, as `forgeline cloud` does. See
    docs/import.md.
    """
    from sqlalchemy.exc import OperationalError

    from cloud.db import create_engine_for, migrate, session_factory, writer_engine
    from cloud.production.importer import ImportFile, ImportRejected, run_import
    from protocols.clock import now_ms

    url = _database_url(database_url, config_file)
    try:
        sources = [ImportFile(str(path), path.read_bytes(), kind) for path in files]
    except OSError as exc:
        raise click.ClickException(f"cannot read {exc.filename}: {exc.strerror}") from exc
    try:
        engine = create_engine_for(url)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--database-url") from exc
    try:
        migrate(url)
        with session_factory(writer_engine(engine))() as session:
            result = run_import(session, sources, now=now_ms(), tz=tz, dry_run=dry_run)
    except ImportRejected as rejected:
        click.echo(str(rejected), err=True)
        sys.exit(2)
    except OperationalError as exc:
        raise click.ClickException(f"cannot use the database: {exc.orig or exc}") from exc
    finally:
        engine.dispose()
    for name, counts in result.counts.items():
        click.echo(
            f"{name}: {counts.created} created, {counts.updated} updated, "
            f"{counts.unchanged} unchanged"
        )
    if dry_run:
        click.echo("dry run: nothing was written")
