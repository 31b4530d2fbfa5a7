"""``forgeline spc load FILE``: control charts from a YAML file into the database (upsert by name).

Registered on the main group in ``forgeline.cli``; it imports the cloud only when it runs. The
database is found as ``forgeline import`` finds it. A mistake exits with code 2 and names the
file, line and field (or the chart and field).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group("spc")
def spc() -> None:
    """Statistical process control: control charts (docs/spc.md)."""


@spc.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--database-url", default=None, help="Default: the cloud config's database.")
@click.option(
    "--config", "config_file", default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path), help="The cloud config file.",
)  # fmt: skip
@click.option("--by", default=None, help="Who loads them (default: file:<name>).")
def load(file: Path, database_url: str | None, config_file: Path | None, by: str | None) -> None:
    """Validate FILE and upsert its charts by name."""
    from sqlalchemy.orm import Session

    from cloud.db import create_engine_for, migrate, writer_engine
    from cloud.errors import InvalidRequest
    from cloud.spc.service import load_charts_from_file
    from forgeline.cli_import import _database_url
    from protocols.clock import now_ms
    from protocols.errors import ProfileError

    url = _database_url(database_url, config_file)
    migrate(url)
    engine = create_engine_for(url)
    try:
        with Session(writer_engine(engine), expire_on_commit=False) as session:
            loaded = load_charts_from_file(session, file, by or f"file:{file.name}", now_ms())
            session.commit()
    except (ProfileError, InvalidRequest) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    finally:
        engine.dispose()
    for chart, created in loaded:
        click.echo(f"{'created' if created else 'updated'} chart {chart.id}: {chart.name}")
