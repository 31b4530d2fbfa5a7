"""The charts file: validation with file, line and field in every error, the documented sample,
and loading (machines by name, products by external id, upsert by chart name) on SQLite and
PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.db import Base
from cloud.errors import InvalidRequest
from cloud.production import service as production
from cloud.spc import service
from cloud.spc.config import ChartSpec, load_charts_file
from cloud.spc.models import SpcChart
from protocols.errors import ProfileError
from tests.cloud.spc.conftest import T

SAMPLE = Path(__file__).parents[3] / "deploy" / "spc-charts.sample.yaml"

GOOD = """\
charts:
  - name: bore
    machine: ring-lathe
    metric: bore
    product: VALVE
    chart_type: xbar_r
    subgroup_size: 5
    lsl: 73.95
    usl: 74.05
    alarm: true
  - name: scrap
    machine: ring-lathe
    chart_type: u
    subgroup_window_s: 600
    rules: western_electric
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "charts.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_sample_file_validates_and_documents_every_field():
    charts = load_charts_file(SAMPLE)
    assert {c.chart_type for c in charts} == {"xbar_r", "xbar_s", "i_mr", "p", "c"}
    text = SAMPLE.read_text(encoding="utf-8")
    for name in ChartSpec.model_fields:
        assert re.search(rf"^#   (\w+, )*{name}\b", text, re.MULTILINE), f"{name} is undocumented"


def test_a_good_file_gives_chart_specs_with_defaults_and_rule_sets(tmp_path):
    bore, scrap = load_charts_file(_write(tmp_path, GOOD))
    assert (bore.rule_names, bore.alarm_priority, bore.enabled, bore.product) == (
        [f"nelson{i}" for i in range(1, 9)], "medium", True, "VALVE",
    )  # fmt: skip
    assert (scrap.rule_names, scrap.metric, scrap.subgroup_size) == (
        ["we1", "we2", "we3", "we4"], None, None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("replace", "by", "line", "field", "message"),
    [
        ("chart_type: xbar_r", "chart_type: xbar", 6, "charts[0].chart_type", "Input should be"),
        ("subgroup_size: 5", "subgroup_size: 12", 7, "charts[0].subgroup_size", "2..10"),
        ("usl: 74.05", "usl: 73.9", 9, "charts[0].usl", "must be above lsl 73.95"),
        ("    alarm: true", "    alarm: true\n    colour: red", 11, "charts[0].colour",
         "unknown field"),
        ("rules: western_electric", "rules: [nelson1, nelson9]", 15, "charts[1].rules",
         "unknown rule 'nelson9'"),
        ("    subgroup_window_s: 600\n", "", 11, "charts[1].subgroup_window_s",
         "counts scrap per window"),
        ("  - name: scrap", "  - name: bore", 11, "charts[1].name", "already the name of"),
        ("    machine: ring-lathe\n    chart_type: u", "    chart_type: u", 11, "charts[1].machine",
         "give the machine's name"),
    ],
)  # fmt: skip
def test_mistakes_name_the_file_line_and_field(tmp_path, replace, by, line, field, message):
    assert replace in GOOD
    path = _write(tmp_path, GOOD.replace(replace, by, 1))
    with pytest.raises(ProfileError) as raised:
        load_charts_file(path)
    [(found_line, found_field, found_message)] = raised.value.problems
    assert (found_line, found_field) == (line, field), raised.value.problems
    assert message in found_message
    assert str(path) in str(raised.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ProfileError, match="cannot read"):
        load_charts_file(tmp_path / "nope.yaml")


def test_loading_resolves_names_and_upserts_by_chart_name(db_engine, lathe, tmp_path):
    with Session(db_engine) as session:
        production.upsert_product(session, "VALVE", production.ProductSpec("Valve"), T)
        first = service.load_charts(session, load_charts_file(_write(tmp_path, GOOD)), "file", T)
        session.commit()
        assert [(c.name, created) for c, created in first] == [("bore", True), ("scrap", True)]
        bore = first[0][0]
        assert (bore.machine_id, bore.product_id is not None, bore.created_by) == (
            lathe.machine_id, True, "file",
        )  # fmt: skip
        again = service.load_charts_from_file(
            session, _write(tmp_path, GOOD.replace("usl: 74.05", "usl: 74.04")), "file", T + 1
        )
        session.commit()
        expected = [(bore.id, False), (first[1][0].id, False)]
        assert [(c.id, created) for c, created in again] == expected
        assert session.get(SpcChart, bore.id).usl == 74.04
        assert session.scalar(select(func.count()).select_from(SpcChart)) == 2


def test_loading_names_the_chart_and_field_of_an_unknown_machine(db_engine, lathe, tmp_path):
    text = GOOD.replace("machine: ring-lathe", "machine: lathe-9", 1)
    with Session(db_engine) as session, pytest.raises(InvalidRequest) as raised:
        service.load_charts(session, load_charts_file(_write(tmp_path, text)), "file", T)
    assert str(raised.value).startswith("charts[0] ('bore'): machine: no machine is named")


def test_the_spc_tables_of_migration_0010_match_the_models(db_engine):
    with db_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    spc = [item for item in diff if "spc_" in repr(item)]
    assert spc == []
    assert {"spc_chart", "spc_limits", "spc_point", "spc_violation"} <= set(Base.metadata.tables)
