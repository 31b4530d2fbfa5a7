"""The files in deploy/ are what a plant installs: the sample configs validate, and the
production Mosquitto config (auth, ACL, TLS listener, persistence) really enforces its ACL.

TLS is tested as a plant sets it up: a test CA signs the broker's certificate (SAN IP:127.0.0.1)
and edges trust that CA only; a client that does not trust it cannot connect.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from cryptography import x509
from paho.mqtt.enums import CallbackAPIVersion

from cloud.config import load_cloud_config
from edge.config import load_edge_config
from edge.mqtt_link import MqttLink
from forgeline.processes import free_port, port_open, wait_for
from protocols.mqtt_url import parse_mqtt_url

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def test_sample_configs_validate_and_document_the_defaults() -> None:
    edge = load_edge_config(DEPLOY / "edge.sample.yaml")
    assert [d.id for d in edge.devices] == ["cnc-01", "press-01"]
    cloud = load_cloud_config(DEPLOY / "cloud.sample.yaml")
    assert cloud == load_cloud_config(None)  # the sample states exactly the defaults


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _test_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A certificate authority of its own (key, certificate), as docs/deploy.md makes one."""
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", f"/CN=forgeline {name}", "-keyout", str(key), "-out", str(cert),
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    return key, cert


def _server_certificate(certs: Path, ca_key: Path, ca_cert: Path) -> None:
    """server.key and server.crt for 127.0.0.1, signed by the CA (not self-signed)."""
    csr, extensions = certs / "server.csr", certs / "server.ext"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", str(certs / "server.key"), "-out", str(csr))  # fmt: skip
    extensions.write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "1", "-extfile", str(extensions),
             "-out", str(certs / "server.crt"))  # fmt: skip


def _production_broker(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    """deploy/mosquitto.conf with its paths pointed at tmp_path and free ports.

    ``tmp_path/certs`` holds ``ca.crt`` (the test CA, which signed ``server.crt``) and
    ``other-ca.crt`` (a CA that signed nothing here). Users: cloud, edge-1, edge-2.
    """
    plain, tls = free_port(), free_port()
    certs = tmp_path / "certs"
    certs.mkdir()
    ca_key, ca_cert = _test_ca(certs, "ca")
    _server_certificate(certs, ca_key, ca_cert)
    _test_ca(certs, "other-ca")
    passwd = tmp_path / "forgeline.passwd"
    users = (("cloud", "c-secret"), ("edge-1", "e1-secret"), ("edge-2", "e2-secret"))
    for i, (user, password) in enumerate(users):
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
        # alarm notifications are the cloud's to send, never an edge's
        edge.publish("forgeline/v1/plant/_alarm", b"edge alarm", qos=1).wait_for_publish(5)
        cloud.publish("forgeline/v1/plant/_alarm", b"cloud alarm", qos=1).wait_for_publish(5)
        edge.publish("forgeline/v1/plant/edge-1/cnc-01/data", b"last", qos=1).wait_for_publish(5)
        wait_for(lambda: any(p == b"last" for _, p in seen), 10, "the edge's own messages")
        wait_for(lambda: any(p == b"cloud alarm" for _, p in seen), 10, "the cloud's alarm")
        payloads = [p for _, p in seen]
        assert b"mine" in payloads
        assert b"not mine" not in payloads
        assert b"edge alarm" not in payloads
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


def _stop_all(broker: subprocess.Popen[bytes], clients: list[paho.Client]) -> None:
    for client in clients:
        client.loop_stop()
        client.disconnect()
    broker.terminate()
    broker.wait(10)


def test_an_edge_cannot_read_another_edges_commands(tmp_path: Path) -> None:
    broker, plain, _ = _production_broker(tmp_path)
    clients: list[paho.Client] = []
    try:
        snoop, snooped = _client(plain, "edge-1", "e1-secret")
        clients.append(snoop)
        granted: list[Any] = []
        snoop.on_subscribe = lambda c, u, mid, codes, p: granted.extend(codes)
        snoop.subscribe([("forgeline/v1/+/edge-2/cmd", 1), ("forgeline/v1/#", 1),
                         ("forgeline/v1/+/edge-1/cmd", 1)])  # fmt: skip
        edge2, edge2_got = _client(plain, "edge-2", "e2-secret")
        clients.append(edge2)
        edge2.on_subscribe = lambda c, u, mid, codes, p: granted.extend(codes)
        edge2.subscribe("forgeline/v1/+/edge-2/cmd", qos=1)
        cloud, _ = _client(plain, "cloud", "c-secret")
        clients.append(cloud)
        # Mosquitto grants the subscriptions (MQTT 3.1.1 SUBACK) and applies the read ACL to
        # every message it would deliver
        wait_for(lambda: len(granted) == 4, 10, "the broker answering both edges' subscriptions")
        cloud.publish("forgeline/v1/plant/edge-2/cmd", b"for edge-2", qos=1).wait_for_publish(5)
        cloud.publish("forgeline/v1/plant/edge-1/cmd", b"for edge-1", qos=1).wait_for_publish(5)
        wait_for(lambda: b"for edge-2" in [p for _, p in edge2_got], 10, "edge-2's command")
        # the broker keeps the order of one publisher's QoS 1 messages: once edge-1 has its own
        # command, edge-2's (sent first) would have arrived too had the ACL let it through
        wait_for(lambda: any(p == b"for edge-1" for _, p in snooped), 10, "edge-1's own command")
        assert [p for _, p in snooped] == [b"for edge-1"]
        assert edge2_got == [("forgeline/v1/plant/edge-2/cmd", b"for edge-2")]
    finally:
        _stop_all(broker, clients)


def test_tls_listener_admits_only_clients_that_trust_the_test_ca(tmp_path: Path) -> None:
    broker, plain, tls = _production_broker(tmp_path)
    certs = tmp_path / "certs"
    clients: list[paho.Client] = []
    try:
        # the broker's certificate is issued by the test CA for 127.0.0.1, not self-signed
        server = x509.load_pem_x509_certificate((certs / "server.crt").read_bytes())
        ca = x509.load_pem_x509_certificate((certs / "ca.crt").read_bytes())
        assert server.issuer == ca.subject != server.subject
        server.verify_directly_issued_by(ca)
        names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]

        cloud, seen = _client(plain, "cloud", "c-secret")
        clients.append(cloud)
        cloud.subscribe("forgeline/v1/#", qos=1)
        time.sleep(0.3)
        # the edge's own MQTT link, trusting the test CA only, connects and publishes
        asyncio.run(_edge_publishes_over_tls(tls, certs / "ca.crt", b"over tls"))
        wait_for(lambda: any(p == b"over tls" for _, p in seen), 10, "the edge's TLS message")

        # a client that trusts the system's CAs, or another CA, fails the TLS handshake (the
        # standard library's TLS client, which paho uses; paho leaks the socket on this error)
        for trust in (None, certs / "other-ca.crt"):
            context = ssl.create_default_context(cafile=trust)
            with (
                socket.create_connection(("127.0.0.1", tls), timeout=5) as raw,
                pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"),
            ):
                context.wrap_socket(raw, server_hostname="127.0.0.1")
    finally:
        _stop_all(broker, clients)


async def _edge_publishes_over_tls(port: int, ca_file: Path, payload: bytes) -> None:
    connected = asyncio.Event()
    link = MqttLink(
        parse_mqtt_url(f"mqtts://edge-1:e1-secret@127.0.0.1:{port}"),
        "forgeline-edge-edge-1",
        loop=asyncio.get_running_loop(),
        subscriptions=["forgeline/v1/plant/edge-1/cmd"],
        on_message=lambda topic, data: None,
        on_connected=connected.set,
        tls={"ca_file": str(ca_file)},
    )
    link.start()
    try:
        await asyncio.wait_for(connected.wait(), 15)
        assert link.publish("forgeline/v1/plant/edge-1/cnc-01/data", payload)
    finally:
        await asyncio.to_thread(link.stop)


CLOUD_ONLY = {"sqlalchemy", "alembic", "psycopg", "fastapi", "uvicorn", "pydantic-settings"}
EDGE_NEEDS = {"forgeline", "pymodbus", "asyncua", "paho-mqtt", "prometheus-client", "numpy"}


@pytest.mark.slow
def test_the_edge_installs_offline_from_the_wheelhouse(tmp_path: Path) -> None:
    """scripts/build-wheelhouse, then `pip install --no-index` into a fresh venv, as on the PC.

    Building fetches from the package index (the connected machine's side); set
    FORGELINE_WHEELHOUSE to a wheelhouse built before to test only the offline half.
    """
    prebuilt = os.environ.get("FORGELINE_WHEELHOUSE")
    wheelhouse = Path(prebuilt) if prebuilt else tmp_path / "wheelhouse"
    if not prebuilt:
        build = subprocess.run([str(ROOT / "scripts" / "build-wheelhouse"), str(wheelhouse)],
                               capture_output=True, text=True, timeout=600)  # fmt: skip
        assert build.returncode == 0, build.stderr
        sums = (wheelhouse / "SHA256SUMS").read_text().splitlines()
        assert len(sums) == len(list(wheelhouse.glob("*.whl")))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # no pip config at all, no index: only the wheelhouse can supply packages
    offline = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
               "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1"}  # fmt: skip

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=tmp_path, env=offline, capture_output=True, text=True,
                              timeout=600)  # fmt: skip

    python = str(venv / "bin" / "python")
    install = run(python, "-m", "pip", "install", "--no-index", "--find-links", str(wheelhouse),
                  "forgeline[edge]")  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    edge_help = run(str(venv / "bin" / "forgeline"), "edge", "--help")
    assert edge_help.returncode == 0, edge_help.stderr
    assert "--config" in edge_help.stdout
    # imported from the venv (cwd is not the checkout), with its drivers
    imported = run(python, "-c", "import edge.agent, edge.drivers.modbus, edge.drivers.opcua, "
                   "edge.agent as a; print(a.__file__)")  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith(str(venv))
    listed = run(python, "-m", "pip", "list", "--format=json")
    installed = {p["name"].lower().replace("_", "-") for p in json.loads(listed.stdout)}
    assert installed >= EDGE_NEEDS, installed
    assert not installed & CLOUD_ONLY
