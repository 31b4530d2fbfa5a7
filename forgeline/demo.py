"""``forgeline demo``: the whole plant on one machine, each part in its own process.

Order of start: broker (embedded amqtt unless ``--mqtt-url``), simulators (they write the
endpoints file), cloud (ingest, alarms, notifications, OEE, SPC, condition monitoring, API),
edge agent (its config made from the endpoints). The live view shows each machine's state, key
values, OEE since the demo started, open alarms and the pump's vibration zone and remaining life.
At the end the edge is stopped first and drains its log, then the accounting is taken from the
edge's log and the cloud's database; OEE, the alarms raised, the production run, the SPC chart
and the machines' condition are read from the API; then everything else stops.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from forgeline import demo_quality
from forgeline.accounting import account
from forgeline.processes import Child, free_port, port_open, wait_for

log = logging.getLogger("forgeline.demo")

EDGE_ID = "edge-1"
_REPORTED_ALARM_FIELDS = (
    "id", "rule", "kind", "priority", "machine", "metric", "value", "limit", "message", "state",
    "raised_ms", "cleared_ms", "activations",
)  # fmt: skip
OEE_REFRESH_S = 3.0  # the live view asks for OEE and condition this often (one request per machine)
CONDITION_INTERVAL_S = 5.0  # the demo's condition monitor assesses every machine this often


@dataclass(frozen=True, slots=True)
class DemoOptions:
    duration_s: float | None = None
    report: Path | None = None
    mqtt_url: str | None = None
    db_url: str | None = None
    api_port: int = 8000
    data_dir: Path | None = None
    scenario: str = "demo"
    live: bool = True
    log_level: str = "INFO"
    drain_s: float = 20.0


def edge_config(endpoints: dict[str, Any], mqtt_url: str, data_dir: Path) -> dict[str, Any]:
    """The edge agent's config for every device in a simulator endpoints file."""
    devices = []
    for d in endpoints["devices"]:
        device: dict[str, Any] = {"id": d["device_id"], "profile": d["profile"], "host": d["host"],
                                  "port": d["port"]}  # fmt: skip
        if d["protocol"] == "opcua":
            device["endpoint_url"] = d["endpoint_url"]
        else:
            device["unit_id"] = d.get("unit_id", 1)
        for key in ("area", "line"):
            if d.get(key):
                device[key] = d[key]
        devices.append(device)
    return {
        "site": endpoints.get("site", "demo-plant"),
        "edge_id": EDGE_ID,
        "data_dir": str(data_dir),
        "mqtt": {"url": mqtt_url},
        "buffer": {"resend_after_s": 5.0},
        "backoff_initial_s": 0.5,
        "backoff_max_s": 5.0,
        "status_interval_s": 1.0,
        "drain_on_stop_s": 15.0,
        "devices": devices,
    }


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own local API
        return json.loads(response.read())


class _EdgeStatus:
    """The edge's retained status messages (health figures), followed in a background client."""

    def __init__(self, mqtt_url: str) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        from protocols.mqtt_url import parse_mqtt_url
        from protocols.wire import JsonCodec, StatusMessage, TopicKind

        self.health: dict[str, Any] = {}
        url = parse_mqtt_url(mqtt_url)
        codec = JsonCodec()
        client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        if url.username:
            client.username_pw_set(url.username, url.password)

        def on_connect(c: Any, u: Any, f: Any, r: Any, p: Any) -> None:
            c.subscribe(f"forgeline/v1/+/{EDGE_ID}/status", qos=0)

        def on_message(c: Any, u: Any, msg: Any) -> None:
            with contextlib.suppress(Exception):
                status = codec.decode(TopicKind.STATUS, msg.payload)
                if isinstance(status, StatusMessage) and status.online:
                    self.health = dict(status.health)

        client.on_connect = on_connect
        client.on_message = on_message
        client.connect_async(url.host, url.port)
        client.loop_start()
        self._client = client

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _since(started_ms: int) -> str:
    return f"from={started_ms}&to={time.time_ns() // 1_000_000}"


def _oee_by_machine(api: str, machines: list[dict[str, Any]], started_ms: int) -> dict[int, Any]:
    """Each machine's OEE over the demo so far (``GET /api/oee/machines/{id}``), by machine id."""
    out: dict[int, Any] = {}
    for machine in machines:
        with contextlib.suppress(OSError, ValueError):
            out[machine["id"]] = _get_json(
                f"{api}/api/oee/machines/{machine['id']}?{_since(started_ms)}"
            )
    return out


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _oee_cell(oee: dict[str, Any] | None) -> str:
    if not oee:
        return ""
    k = oee["kpis"]
    return (
        f"{_percent(k['oee'])} (A {_percent(k['availability'])} E {_percent(k['effectiveness'])}"
        f" Q {_percent(k['quality_ratio'])})"
    )


def _alarm_table(alarms: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title=f"open alarms: {len(alarms)}", expand=False, title_justify="left")
    for column in ("priority", "machine", "state", "since", "alarm"):
        table.add_column(column)
    now_ms = time.time_ns() // 1_000_000
    for alarm in alarms[:8]:
        table.add_row(
            alarm["priority"], alarm["machine"], alarm["state"],
            f"{(now_ms - alarm['raised_ms']) / 1000:.0f} s ago", alarm["message"],
        )  # fmt: skip
    return table


def _render(machines: list[dict[str, Any]], health: dict[str, Any], stats: dict[str, Any],
            elapsed: float, oee: dict[int, Any] | None = None,
            alarms: list[dict[str, Any]] | None = None, condition: str = "") -> Any:  # fmt: skip
    from rich.console import Group
    from rich.table import Table

    oee = oee or {}
    alarms = alarms or []
    table = Table(title=f"forgeline demo · {elapsed:5.0f} s · Ctrl-C to stop", expand=False)
    for column in ("machine", "line", "protocol", "state", "key values", "OEE since start",
                   "alarms", "samples/s", "link"):  # fmt: skip
        table.add_column(column)
    for m in machines:
        device = m.get("device") or m.get("id")
        values = m.get("values") or {}
        params = [v for v in values.values() if v.get("role") == "process_param"]
        shown = []
        for v in params[:3]:
            value = v.get("value")
            text = (
                "bad"
                if v.get("quality") == "bad"
                else (f"{value:.1f}" if isinstance(value, float) else str(value))
            )
            shown.append(f"{v['metric']}={text}{v.get('unit') or ''}")
        link = health.get(f"{device}.link_up")
        open_alarms = sum(1 for a in alarms if a.get("machine_id") == m.get("id"))
        table.add_row(
            str(m.get("name") or device), str(m.get("line") or ""), str(m.get("protocol") or ""),
            str(m.get("state") or "?"), "  ".join(shown), _oee_cell(oee.get(m.get("id", -1))),
            str(open_alarms or ""), str(health.get(f"{device}.samples_per_s", "")),
            "up" if link == 1 else ("DOWN" if link == 0 else "?"),
        )  # fmt: skip
    table.caption = (
        f"edge buffer: {health.get('buffer_messages', '?')} msgs · "
        f"stored samples: {stats.get('stored_samples', '?')} · "
        f"duplicates: {stats.get('duplicates', '?')} · dead letters: {stats.get('dead_letters', '?')}"
        + (f"\ncondition: {condition}" if condition else "")
    )
    return Group(table, _alarm_table(alarms)) if alarms else table


def run_demo(options: DemoOptions) -> int:
    data_dir = options.data_dir or Path(tempfile.mkdtemp(prefix="forgeline-demo-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    logs = data_dir / "logs"
    db_url = options.db_url or f"sqlite:///{data_dir / 'forgeline.db'}"
    api = f"http://127.0.0.1:{options.api_port}"
    stop = threading.Event()
    previous_handler = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    children: list[Child] = []
    status: _EdgeStatus | None = None
    edge: Child | None = None
    log.info("demo starting: data_dir=%s db=%s api=%s", data_dir, db_url, api)
    try:
        if options.mqtt_url is None:
            port = free_port()
            mqtt_url = f"mqtt://127.0.0.1:{port}"
            children.append(Child("broker", ["broker", "--port", str(port)], logs))
            wait_for(lambda: port_open("127.0.0.1", port), 20, "the embedded broker listening")
        else:
            mqtt_url = options.mqtt_url
        endpoints_file = data_dir / "endpoints.json"
        sim = Child("sim", ["sim", "--scenario", options.scenario,
                            "--endpoints-file", str(endpoints_file)], logs)  # fmt: skip
        children.append(sim)

        def sim_ready() -> bool:
            sim.check()
            return endpoints_file.exists()

        wait_for(sim_ready, 60, "the simulators writing their endpoints file")
        endpoints = json.loads(endpoints_file.read_text())
        protocols = {d["device_id"]: d["protocol"] for d in endpoints["devices"]}

        cloud_file = data_dir / "cloud.yaml"
        condition_file = data_dir / "condition.yaml"
        profiles = {d["profile"] for d in endpoints["devices"]}
        condition_file.write_text(yaml.safe_dump(demo_quality.condition_settings(profiles)))
        cloud_file.write_text(yaml.safe_dump({
            "mqtt_url": mqtt_url, "db_url": db_url, "api_port": options.api_port,
            "worker_id": "demo-cloud", "shared_subscription": options.mqtt_url is not None,
            "condition_file": str(condition_file), "condition_interval_s": CONDITION_INTERVAL_S,
        }))  # fmt: skip
        cloud = Child("cloud", ["cloud", "--config", str(cloud_file)], logs)
        children.append(cloud)

        def api_ready() -> bool:
            cloud.check()
            with contextlib.suppress(OSError, ValueError):
                _get_json(f"{api}/healthz")
                return True
            return False

        wait_for(api_ready, 60, f"the cloud API answering at {api}")

        edge_file = data_dir / "edge.yaml"
        edge_data = data_dir / "edge"
        edge_file.write_text(yaml.safe_dump(edge_config(endpoints, mqtt_url, edge_data)))
        edge = Child("edge", ["edge", "--config", str(edge_file)], logs)
        children.append(edge)
        status = _EdgeStatus(mqtt_url)
        print(f"forgeline demo running: API {api}/docs · logs in {logs} · broker {mqtt_url}",
              flush=True)  # fmt: skip
        started_ms = time.time_ns() // 1_000_000
        from forgeline.demo_production import OrderStarter

        order = OrderStarter(api)  # in a thread: the live view starts at once
        order.start()
        baseline_to_ms = started_ms + round(demo_quality.baseline_s(options.duration_s) * 1000)
        quality = demo_quality.QualityStarter(api, started_ms, baseline_to_ms)
        quality.start()
        _watch(options, api, status, children, stop, started_ms)
        order.join(timeout=5)
        quality.cancel()
        quality.join(timeout=5)
        return _finish(options, edge, db_url, data_dir, edge_data, protocols, api, started_ms,
                       order.order_id, quality.chart_id)  # fmt: skip
    except (TimeoutError, RuntimeError) as exc:
        log.error("demo failed: %s", exc)
        return 1
    finally:
        if status is not None:
            status.close()
        for child in reversed(children):
            child.stop()
        signal.signal(signal.SIGTERM, previous_handler)
        log.info("demo stopped: data_dir=%s", data_dir)


def _watch(options: DemoOptions, api: str, status: _EdgeStatus, children: list[Child],
           stop: threading.Event, started_ms: int) -> None:  # fmt: skip
    """Show the live view until the duration is up, Ctrl-C, SIGTERM, or a part dies."""
    started = time.monotonic()
    oee: dict[int, Any] = {}
    condition = ""
    last_oee = -OEE_REFRESH_S
    live = None
    if options.live:
        from rich.live import Live

        live = Live(refresh_per_second=2, transient=False)
        live.start()
    last_line = 0.0
    try:
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if options.duration_s is not None and elapsed >= options.duration_s:
                break
            for child in children:
                child.check()
            machines: list[dict[str, Any]] = []
            stats: dict[str, Any] = {}
            alarms: list[dict[str, Any]] = []
            with contextlib.suppress(OSError, ValueError):
                machines = _get_json(f"{api}/api/machines")
                stats = _get_json(f"{api}/api/ingest/stats")
                alarms = _get_json(f"{api}/api/alarms")
            if elapsed - last_oee >= OEE_REFRESH_S:
                last_oee = elapsed
                oee = _oee_by_machine(api, machines, started_ms)
                with contextlib.suppress(OSError, ValueError):
                    condition = demo_quality.condition_line(
                        _get_json(f"{api}/api/maintenance/condition")
                    )
            if live is not None:
                live.update(_render(machines, status.health, stats, elapsed, oee, alarms,
                                    condition))  # fmt: skip
            elif elapsed - last_line >= 5:
                last_line = elapsed
                site = [k["kpis"]["oee"] for k in oee.values() if k["kpis"]["oee"] is not None]
                log.info(
                    "progress: elapsed_s=%.0f machines=%d stored_samples=%s edge_buffer=%s "
                    "open_alarms=%d mean_machine_oee=%s condition=%s",
                    elapsed, len(machines), stats.get("stored_samples"),
                    status.health.get("buffer_messages"), len(alarms),
                    f"{sum(site) / len(site):.2f}" if site else "n/a", condition or "n/a",
                )  # fmt: skip
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.stop()


def _oee_summary(oee: dict[str, Any]) -> dict[str, Any]:
    """The report's view of a machine's OEE: the KPIs with the time elements they came from."""
    kpis = oee["kpis"]
    return {
        "window": oee["window"],
        **{key: kpis[key] for key in (
            "oee", "availability", "effectiveness", "quality_ratio", "nee",
            "technical_efficiency", "setup_rate", "scrap_ratio", "mtbf_s", "mttr_s",
        )},
        "time_elements": kpis["time_elements"],
        "quantities": kpis["quantities"],
        "reasons": kpis["reasons"],
    }  # fmt: skip


def _production_report(api: str, started_ms: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """OEE per device since the demo started, and every alarm raised since then."""
    machines = _get_json(f"{api}/api/machines")
    oee = {
        m["device"]: _oee_summary(found)
        for m in machines
        if (found := _oee_by_machine(api, [m], started_ms).get(m["id"])) is not None
    }
    alarms = [
        {key: a[key] for key in _REPORTED_ALARM_FIELDS}
        for a in _get_json(f"{api}/api/alarms?state=all&limit=10000")
        if a["raised_ms"] >= started_ms - 60_000  # a demo database may be reused
    ]
    return oee, alarms


def _production(api: str, order_id: int | None, data_dir: Path) -> dict[str, Any] | None:
    """The demo work order's figures and its latest unit's trace (printed and reported)."""
    from forgeline import demo_production

    if order_id is None:
        return None
    try:
        found = demo_production.summary(api, order_id, data_dir)
    except (OSError, ValueError) as error:
        log.error("demo production: could not read work order %d from %s: %s", order_id, api,
                  error)  # fmt: skip
        return None
    traced = found["traced_unit"]
    print(f"  work order {found['work_order']} on {found['machine']}: {found['units']} units, "
          f"{found['good']} good, {found['scrap']} scrap"
          + (f"; how {traced['serial']} was made: {traced['pdf']}" if traced else ""),
          flush=True)  # fmt: skip
    return found


def _quality(api: str, chart_id: int | None, started_ms: int) -> dict[str, Any] | None:
    """The demo's SPC chart: limits, violations, capability (printed and reported)."""
    if chart_id is None:
        return None
    try:
        found = demo_quality.quality_summary(api, chart_id, started_ms)
    except (OSError, ValueError) as error:
        log.error("demo quality: could not read SPC chart %d from %s: %s", chart_id, api, error)
        return None
    limits, capability = found["limits"], found["capability"]
    print(f"  SPC {found['chart']}: "
          + (f"limits {limits['lcl']:.2f}..{limits['ucl']:.2f} (centre {limits['centre']:.2f}), "
             f"{found['points']} points judged, {len(found['violations'])} violations"
             if limits else "no phase I limits (run too short)")
          + (f", Cpk {capability['cpk']:.2f}" if capability else ""), flush=True)  # fmt: skip
    return found


def _condition(api: str, started_ms: int) -> dict[str, Any] | None:
    """The machines' condition, suggestions and condition alarms (printed and reported)."""
    try:
        found = demo_quality.condition_summary(api, started_ms)
    except (OSError, ValueError) as error:
        log.error("demo condition: could not read the condition from %s: %s", api, error)
        return None
    line = demo_quality.condition_line(found["assessments"])
    print(f"  condition: {line or 'no vibration class assessed yet'}; "
          f"{len(found['suggestions'])} maintenance suggestions open", flush=True)  # fmt: skip
    return found


def _finish(options: DemoOptions, edge: Child, db_url: str, data_dir: Path, edge_data: Path,
            protocols: dict[str, str], api: str, started_ms: int,
            order_id: int | None, chart_id: int | None) -> int:  # fmt: skip
    """Stop the edge (it drains its log), take the accounting, write the report."""
    from edge.agent import outbox_path

    log.info("stopping the edge agent and draining its log (up to %.0f s)", options.drain_s)
    edge.stop(timeout_s=options.drain_s + 10)
    duplicates: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError):
        stats = _get_json(f"{api}/api/ingest/stats")
        duplicates = {
            k: int(v) for k, v in (stats.get("duplicate_samples_by_device") or {}).items()
        }
    report = account(db_url, EDGE_ID, outbox_path(edge_data), protocols, duplicates)
    oee: dict[str, Any] = {}
    alarms: list[dict[str, Any]] = []
    try:
        oee, alarms = _production_report(api, started_ms)
    except (OSError, ValueError) as error:
        log.error("could not read OEE and alarms from %s for the report: %s", api, error)
    for machine in report["machines"]:
        machine["oee"] = oee.get(machine["machine"])
        machine["alarms_raised"] = sum(1 for a in alarms if a["machine"] == machine["machine"])
    report["alarms"] = alarms
    report["production"] = _production(api, order_id, data_dir)
    report["quality"] = _quality(api, chart_id, started_ms)
    report["condition"] = _condition(api, started_ms)
    totals = report["totals"]
    totals["alarms_raised"] = len(alarms)
    print(
        f"demo finished: read={totals['read']} published={totals['published']} "
        f"stored={totals['stored']} duplicates={totals['duplicates']} "
        f"pending={totals['pending']} lost={totals['lost']} alarms_raised={len(alarms)}",
        flush=True,
    )
    for device, summary in sorted(oee.items()):
        print(f"  {device}: OEE {_percent(summary['oee'])} (A {_percent(summary['availability'])}"
              f" E {_percent(summary['effectiveness'])} Q {_percent(summary['quality_ratio'])})",
              flush=True)  # fmt: skip
    if options.report is not None:
        options.report.parent.mkdir(parents=True, exist_ok=True)
        options.report.write_text(json.dumps(report, indent=2) + "\n")
        print(f"report written to {options.report}", flush=True)
    return 0 if totals["lost"] == 0 else 2
