"""``forgeline spc load``: charts from YAML into a real SQLite database; mistakes exit 2."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

import cloud.models  # noqa: F401  (every table on Base.metadata)
from cloud.db import create_engine_for, migrate
from cloud.ingest.writer import IngestWriter
from cloud.spc.models import SpcChart
from forgeline.cli import main
from protocols.wire import MetricDefinition
from tests.cloud.conftest import Wire

CHARTS = """\
charts:
  - name: press1 temperature
    machine: press1
    metric: temperature
    chart_type: i_mr
    lsl: 180
    usl: 200
    alarm: true
"""


def _database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'forgeline.db'}"
    migrate(url)
    engine = create_engine_for(url)
    metrics = (MetricDefinition("temperature", "float32", "process_param", unit="degC"),)
    IngestWriter(engine).write([Wire().birth("press1", metrics=metrics)])
    engine.dispose()
    return url


def test_spc_load_upserts_the_charts_by_name(tmp_path: Path) -> None:
    url = _database(tmp_path)
    charts = tmp_path / "charts.yaml"
    charts.write_text(CHARTS)
    first = CliRunner().invoke(main, ["spc", "load", str(charts), "--database-url", url])
    assert first.exit_code == 0, first.output
    assert "created chart" in first.output
    charts.write_text(CHARTS.replace("usl: 200", "usl: 205"))
    again = CliRunner().invoke(main, ["spc", "load", str(charts), "--database-url", url])
    assert again.exit_code == 0, again.output
    assert "updated chart" in again.output
    engine = create_engine_for(url)
    with engine.connect() as conn:
        rows = conn.execute(select(SpcChart.name, SpcChart.usl, SpcChart.created_by)).all()
    engine.dispose()
    assert [(r.name, r.usl, r.created_by) for r in rows] == [
        ("press1 temperature", 205.0, "file:charts.yaml")
    ]


def test_spc_load_names_the_file_line_and_field_of_a_mistake(tmp_path: Path) -> None:
    url = _database(tmp_path)
    charts = tmp_path / "charts.yaml"
    charts.write_text(CHARTS.replace("chart_type: i_mr", "chart_type: x_bar"))
    result = CliRunner().invoke(main, ["spc", "load", str(charts), "--database-url", url])
    assert result.exit_code == 2
    assert "charts.yaml:5: charts[0].chart_type" in result.output
