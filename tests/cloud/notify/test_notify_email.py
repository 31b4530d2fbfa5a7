"""The e-mail channel against a real SMTP server (aiosmtpd): plain, login, STARTTLS and SSL."""

from __future__ import annotations

import email
import re
import ssl
import subprocess
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from cloud.notify.channels.base import ChannelContext
from cloud.notify.channels.registry import build_channel
from cloud.notify.errors import DeliveryError
from cloud.notify.render import RenderContext
from cloud.notify.settings import NotificationSettings
from forgeline.processes import free_port
from tests.cloud.notify.notify_kit import EXAMPLE, golden

CONTEXT = ChannelContext(
    render=RenderContext("Asia/Shanghai", "https://mom.plant.local/alarms/{alarm_id}"),
    clock_ms=lambda: 1_764_425_101_000,  # the Date header: 2025-11-29 14:05:01 UTC
)
SUBJECT = (
    "[HIGH] Press 1: nozzle_temperature above high limit "
    "(escalated to level 1, still not acknowledged)"
)


def mailer(port: int, **settings: Any) -> Any:
    config = {"type": "email", "host": "127.0.0.1", "port": port, "security": "none",
              "sender": "forgeline <alarms@plant1.example>",
              "to": ["shift-lead@plant1.example", "王工 <wang@plant1.example>"], **settings}  # fmt: skip
    parsed = NotificationSettings.model_validate({"channels": {"mail": config}, "routes": []})
    return build_channel("mail", parsed.channels["mail"], CONTEXT)


def normalised(data: bytes) -> str:
    """The message as text with its one volatile header (Message-ID) replaced."""
    text = data.decode("ascii").replace("\r\n", "\n")
    return re.sub(r"^Message-ID: <[^>]+>$", "Message-ID: <normalised@plant1.example>", text,
                  flags=re.MULTILINE)  # fmt: skip


def test_mail_arrives_with_subject_help_text_and_link_utf8_intact(smtp_server):
    mailer(smtp_server.port).deliver(EXAMPLE)

    (mail,) = smtp_server.wait_for(1)
    # the envelope carries the bare addresses; the headers keep the names
    assert mail.mail_from == "alarms@plant1.example"
    assert mail.rcpt_tos == ("shift-lead@plant1.example", "wang@plant1.example")
    golden("email.eml", normalised(mail.data))
    parsed = email.message_from_bytes(mail.data, policy=default_policy)
    assert parsed["Subject"] == SUBJECT
    assert parsed["To"] == "shift-lead@plant1.example, 王工 <wang@plant1.example>"
    assert parsed["Date"] == "Sat, 29 Nov 2025 14:05:01 +0000"
    body = parsed.get_content()
    assert "Likely cause: Heater band relay K3 stuck closed" in body
    assert "If nobody acts: Short shots and burnt material (烧焦)" in body
    assert "Action: Check relay K3 in cabinet 2; lower zone 2 setpoint by 5 °C" in body
    assert "Open the alarm: https://mom.plant.local/alarms/42" in body


def _authenticator(_server, _session, _envelope, _mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"pa55-word"
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


def test_login_and_a_refused_login(smtp_server_factory):
    server = smtp_server_factory(authenticator=_authenticator, auth_require_tls=False)
    mailer(server.port, username="alarms", password="pa55-word").deliver(EXAMPLE)
    assert server.wait_for(1)[0].login == "alarms"

    with pytest.raises(DeliveryError, match="535") as refused:
        mailer(server.port, username="alarms", password="wrong").deliver(EXAMPLE)
    assert not refused.value.retryable
    assert "wrong" not in str(refused.value)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made by openssl, valid one day)."""
    folder = tmp_path_factory.mktemp("smtp-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def test_starttls_with_the_plants_ca_and_plain_refused(smtp_server_factory, certificate):
    server = smtp_server_factory(tls_context=_server_tls(certificate), require_starttls=True)
    mailer(server.port, security="starttls", ca_file=str(certificate[0])).deliver(EXAMPLE)
    assert server.wait_for(1)[0].rcpt_tos[0] == "shift-lead@plant1.example"

    with pytest.raises(DeliveryError, match="530") as plain:
        mailer(server.port, security="none").deliver(EXAMPLE)
    assert not plain.value.retryable

    with pytest.raises(DeliveryError, match="TLS failed") as untrusted:
        mailer(server.port, security="starttls").deliver(EXAMPLE)  # system CAs: not trusted
    assert not untrusted.value.retryable


def test_ssl_from_the_first_byte(smtp_server_factory, certificate):
    server = smtp_server_factory(ssl_context=_server_tls(certificate))
    mailer(server.port, security="ssl", ca_file=str(certificate[0])).deliver(EXAMPLE)
    assert len(server.wait_for(1)) == 1


def test_no_server_is_a_retryable_failure():
    with pytest.raises(DeliveryError, match=r"Connection refused|ConnectionRefused") as caught:
        mailer(free_port()).deliver(EXAMPLE)
    assert caught.value.retryable
