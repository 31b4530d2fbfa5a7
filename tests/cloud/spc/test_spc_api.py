"""The SPC routes over a real database (SQLite and PostgreSQL), through TestClient.

The app is ``create_app`` with the SPC router included, as ``cloud/api/app.py`` will have it;
the data are Montgomery's piston rings written through the real ingest writer."""

from __future__ import annotations

import warnings

import pytest

with warnings.catch_warnings():
    # starlette 1.x asks for httpx2 and warns once, at import, when it finds only httpx
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.api.spc import router as spc_router
from cloud.spc.evaluator import evaluate_pending
from tests.cloud.spc.conftest import Lathe, T
from tests.cloud.spc.piston_rings import PISTON_RINGS_PHASE_I, PISTON_RINGS_PHASE_II

BASELINE_END = T + 125_000
PHASE2_END = BASELINE_END + 75_000


@pytest.fixture
def client(db_engine, lathe: Lathe):
    lathe.feed(lathe.bores(T, [v for group in PISTON_RINGS_PHASE_I for v in group]))
    app = create_app(db_engine)
    app.include_router(spc_router)
    with TestClient(app) as test_client:
        yield test_client


def _chart(**fields):
    return {"name": "bore xbar", "machine": "ring-lathe", "metric": "bore",
            "chart_type": "xbar_r", "subgroup_size": 5, "lsl": 73.95, "usl": 74.05,
            "alarm": True} | fields  # fmt: skip


def _create(client, **fields) -> dict:
    response = client.post("/api/spc/charts?by=qe", json=_chart(**fields))
    assert response.status_code == 201, response.text
    return response.json()


def test_charts_are_created_read_listed_replaced_and_deleted(client, lathe):
    created = _create(client)
    assert (created["machine_id"], created["rules"][-1], created["created_by"]) == (
        lathe.machine_id, "nelson8", "qe",
    )  # fmt: skip
    assert created["limits"] is None
    chart_id = created["id"]
    got = client.get(f"/api/spc/charts/{chart_id}").json()
    assert (got["name"], got["view"]) == ("bore xbar", None)
    listed = client.get("/api/spc/charts", params={"machine_id": lathe.machine_id}).json()
    assert [c["id"] for c in listed] == [chart_id]

    put = client.put(f"/api/spc/charts/{chart_id}?by=lead", json=_chart(rules="western_electric"))
    assert put.status_code == 200, put.text
    assert (put.json()["rules"], put.json()["updated_by"]) == (["we1", "we2", "we3", "we4"], "lead")
    assert client.delete(f"/api/spc/charts/{chart_id}").status_code == 204
    assert client.get(f"/api/spc/charts/{chart_id}").status_code == 404
    assert client.get("/api/spc/charts").json() == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"chart_type": "xbar"}, "chart_type"),
        ({"subgroup_size": 11}, "subgroup_size"),
        ({"usl": 73.0}, "usl"),
        ({"rules": ["nelson9"]}, "rules"),
        ({"machine": "nope"}, "machine"),
        ({"machine": None}, "machine"),
        ({"product": "NOPE"}, "product"),
        ({"alarm_priority": "urgent"}, "alarm_priority"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_chart_bodies_answer_400_naming_the_field(client, fields, field):
    response = client.post("/api/spc/charts", json=_chart(**fields))
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(f"{field}:")


def test_a_second_chart_of_the_same_name_answers_400(client):
    _create(client)
    response = client.post("/api/spc/charts", json=_chart())
    assert response.status_code == 400
    assert response.json()["detail"].startswith("name:")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/spc/charts/999"),
        ("put", "/api/spc/charts/999"),
        ("delete", "/api/spc/charts/999"),
        ("get", "/api/spc/charts/999/limits"),
        ("post", "/api/spc/charts/999/limits"),
        ("get", "/api/spc/charts/999/violations?from=0&to=1"),
        ("get", "/api/spc/charts/999/capability?from=0&to=1"),
    ],
)
def test_unknown_charts_answer_404(client, method, path):
    body = {"put": _chart(), "post": {"baseline_from": 0, "baseline_to": 1, "set_by": "qe"}}
    response = client.request(method, path, json=body.get(method))
    assert response.status_code == 404, response.text
    assert "no SPC chart 999" in response.json()["detail"]


def test_phase_i_limits_are_set_kept_as_history_and_returned(client):
    chart_id = _create(client)["id"]
    body = {"baseline_from": "2027-01-15T08:00:00Z", "baseline_to": BASELINE_END,
            "set_by": "Li Wei", "note": "first 25 samples"}  # fmt: skip
    assert T == 1_800_000_000_000  # 2027-01-15T08:00:00Z
    first = client.post(f"/api/spc/charts/{chart_id}/limits", json=body)
    assert first.status_code == 201, first.text
    limits = first.json()
    assert (round(limits["centre"], 3), round(limits["ucl"], 3), round(limits["lcl"], 3)) == (
        74.001, 74.014, 73.988,
    )  # fmt: skip
    assert (limits["baseline_from_ms"], limits["set_by"], limits["subgroups_used"]) == (
        T, "Li Wei", 25,
    )  # fmt: skip
    second = client.post(f"/api/spc/charts/{chart_id}/limits",
                         json=body | {"exclude": [0], "set_by": "Li Wei"}).json()  # fmt: skip
    assert second["excluded"] == [{"index": 0, "ts_ms": T + 4_000}]
    history = client.get(f"/api/spc/charts/{chart_id}/limits").json()
    assert [h["id"] for h in history] == [second["id"], limits["id"]]
    assert client.get(f"/api/spc/charts/{chart_id}").json()["limits"]["id"] == second["id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"baseline_from": "yesterday"}, "baseline_from"),
        ({"exclude": [99]}, "exclude"),
        ({"set_by": ""}, "set_by"),
        ({"baseline_to": T}, "baseline_to_ms"),
    ],
)
def test_bad_limit_requests_answer_400_naming_the_field(client, body, field):
    chart_id = _create(client)["id"]
    full = {"baseline_from": T, "baseline_to": BASELINE_END, "set_by": "qe"} | body
    response = client.post(f"/api/spc/charts/{chart_id}/limits", json=full)
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(f"{field}")


def test_the_view_violations_and_capability_of_a_monitored_chart(client, lathe, db_engine):
    chart_id = _create(client)["id"]
    client.post(f"/api/spc/charts/{chart_id}/limits",
                json={"baseline_from": T, "baseline_to": BASELINE_END, "set_by": "qe"})  # fmt: skip
    lathe.feed(lathe.bores(BASELINE_END, [v for group in PISTON_RINGS_PHASE_II for v in group]))
    evaluate_pending(db_engine)

    window = {"from": BASELINE_END, "to": PHASE2_END}
    view = client.get(f"/api/spc/charts/{chart_id}", params=window).json()["view"]
    assert (view["source"], len(view["points"])) == ("evaluated", 15)
    out = [i for i, p in enumerate(view["points"]) if p["out_of_control"]]
    assert out == [11, 12, 13]  # Montgomery's samples 37..39
    assert view["points"][13]["statistic"] == pytest.approx(74.0234)
    assert view["points"][13]["ucl"] == pytest.approx(74.0144, abs=1e-4)
    violations = client.get(f"/api/spc/charts/{chart_id}/violations", params=window).json()
    assert [(v["rule"], v["recorded"]) for v in violations][:2] == [
        ("nelson5", True), ("nelson1", True),
    ]  # fmt: skip
    assert violations == view["violations"]
    assert all(v["alarm_id"] is not None for v in violations)
    assert violations[0]["points"] == [
        {"ts_ms": view["points"][8]["ts_ms"], "value": view["points"][8]["statistic"]},
        {"ts_ms": view["points"][9]["ts_ms"], "value": view["points"][9]["statistic"]},
    ]
    alarms = client.get("/api/alarms", params={"state": "open"}).json()
    assert [(a["id"], a["rule"], a["kind"]) for a in alarms] == [
        (violations[0]["alarm_id"], "spc.bore xbar", "spc_rule"),
    ]  # the series ends out of control: the alarm is still active

    capability = client.get(f"/api/spc/charts/{chart_id}/capability",
                            params={"from": T, "to": BASELINE_END}).json()  # fmt: skip
    assert capability["points_used"] == 125
    assert capability["within_method"] == "range"
    assert abs(capability["cp"] - 1.68) <= 0.02  # Montgomery, from the rounded R̄
    assert sum(capability["histogram"]["counts"]) == 125


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/spc/charts/{id}?from=0", "from"),
        ("/api/spc/charts/{id}?from=soon&to=1", "from"),
        ("/api/spc/charts/{id}/violations?from=5&to=1", "to"),
        ("/api/spc/charts/{id}/capability", "from"),
    ],
)
def test_bad_windows_answer_400_naming_the_field(client, path, field):
    chart_id = _create(client)["id"]
    response = client.get(path.format(id=chart_id))
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(field)
