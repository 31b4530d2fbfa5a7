"""The files in deploy/ are what a plant installs: the sample configs validate, and the
production Mosquitto config (auth, ACL, TLS listener, persistence) really enforces its ACL."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.config import load_cloud_config
from edge.config import load_edge_config
from forgeline.processes import free_port, port_open, wait_for

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def test_sample_configs_validate_and_document_the_defaults() -> None:
    edge = load_edge_config(DEPLOY / "edge.sample.yaml")
    assert [d.id for d in edge.devices] == ["cnc-01", "press-01"]
    cloud = load_cloud_config(DEPLOY / "cloud.sample.yaml")
    assert cloud == load_cloud_config(None)  # the sample states exactly the defaults


def _production_broker(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    """deploy/mosquitto.conf with its paths pointed at tmp_path and free ports."""
    plain, tls = free_port(), free_port()
    certs = tmp_path / "certs"
    certs.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(certs / "server.key"),
         "-out", str(certs / "server.crt")],
        check=True, capture_output=True,
    )  # fmt: skip
    (certs / "ca.crt").write_bytes((certs / "server.crt").read_bytes())
    passwd = tmp_path / "forgeline.passwd"
    for i, (user, password) in enumerate((("cloud", "c-secret"), ("edge-1", "e1-secret"))):
        flags = ["-c"] if i == 0 else []
        subprocess.run(["mosquitto_passwd", "-b", *flags, str(passwd), user, password], check=True)
    acl = tmp_path / "forgeline.acl"
    acl.write_text((DEPLOY / "mosquitto" / "forgeline.acl").read_text())
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    conf = (
        conf.replace("listener 1883 127.0.0.1", f"listener {plain} 127.0.0.1")
        .replace("listener 8883", f"listener {tls} 127.0.0.1")
        .replace("/etc/mosquitto/certs", str(certs))
        .replace("/etc/mosquitto/forgeline.passwd", str(passwd))
        .replace("/etc/mosquitto/conf.d/forgeline/forgeline.acl", str(acl))
        .replace("/var/lib/mosquitto/", f"{tmp_path}/")
        .replace("log_dest syslog", "log_dest stderr")
    )
    conf += "\nuser root\n"
    (tmp_path / "mosquitto.conf").write_text(conf)
    log = tmp_path / "mosquitto.log"
    with log.open("wb") as out:
        broker = subprocess.Popen(
            ["/usr/sbin/mosquitto", "-c", str(tmp_path / "mosquitto.conf")],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for(lambda: port_open("127.0.0.1", plain) and port_open("127.0.0.1", tls), 10,
                 "the production Mosquitto config listening")  # fmt: skip
    except TimeoutError:
        broker.kill()
        broker.wait()
        pytest.fail(f"mosquitto refused deploy/mosquitto/mosquitto.conf:\n{log.read_text()}")
    return broker, plain, tls


def _client(port: int, user: str, password: str, **tls: Any) -> tuple[paho.Client, list[Any]]:
    received: list[Any] = []
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=user)
    client.username_pw_set(user, password)
    if tls:
        client.tls_set(ca_certs=tls["ca"])
    client.on_message = lambda c, u, m: received.append((m.topic, m.payload))
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client, received


def test_production_mosquitto_enforces_auth_and_the_per_edge_acl(tmp_path: Path) -> None:
    broker, plain, tls = _production_broker(tmp_path)
    clients: list[paho.Client] = []
    try:
        cloud, seen = _client(plain, "cloud", "c-secret")
        clients.append(cloud)
        cloud.subscribe("forgeline/v1/#", qos=1)
        edge, _ = _client(tls, "edge-1", "e1-secret", ca=str(tmp_path / "certs" / "ca.crt"))
        clients.append(edge)
        time.sleep(0.5)
        edge.publish("forgeline/v1/plant/edge-1/cnc-01/data", b"mine", qos=1).wait_for_publish(5)
        # edge-1 may not speak for another edge: the broker drops it silently
        edge.publish("forgeline/v1/plant/edge-2/cnc-01/data", b"not mine", qos=1).wait_for_publish(
            5
        )
        edge.publish("forgeline/v1/plant/edge-1/cnc-01/data", b"last", qos=1).wait_for_publish(5)
        wait_for(lambda: any(p == b"last" for _, p in seen), 10, "the edge's own messages")
        payloads = [p for _, p in seen]
        assert b"mine" in payloads
        assert b"not mine" not in payloads
        # a wrong password is refused by the broker
        refusals: list[Any] = []
        intruder = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        intruder.username_pw_set("edge-1", "wrong")
        intruder.on_connect = lambda c, u, f, reason, p: refusals.append(reason)
        intruder.connect("127.0.0.1", plain)
        intruder.loop_start()
        clients.append(intruder)
        wait_for(lambda: bool(refusals), 10, "the broker answering the intruder")
        assert refusals[0].is_failure
    finally:
        for client in clients:
            client.loop_stop()
            client.disconnect()
        broker.terminate()
        broker.wait(10)
