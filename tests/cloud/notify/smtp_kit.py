"""A real SMTP server for the tests: ``aiosmtpd``'s Controller on a free port, recording mail."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from forgeline.processes import free_port


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes  # the message exactly as sent (after the DATA command)
    login: str | None  # the user that authenticated, if any


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, _smtp: Any, session: Any, envelope: Any) -> str:
        user = getattr(session.auth_data, "login", None)
        login = user.decode() if isinstance(user, bytes) else None
        mail = ReceivedMail(
            envelope.mail_from, tuple(envelope.rcpt_tos), bytes(envelope.original_content), login
        )
        with self.server.lock:
            self.server.messages.append(mail)
            self.server.lock.notify_all()
        return "250 Message accepted for delivery"


class SmtpServer:
    """``aiosmtpd`` on 127.0.0.1:<free port>; ``smtp_options`` go to its SMTP class (TLS, AUTH)."""

    def __init__(self, **smtp_options: Any) -> None:
        self.port = free_port()
        self.messages: list[ReceivedMail] = []
        self.lock = threading.Condition()
        self.controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, **smtp_options
        )

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"{len(self.messages)} mails arrived, expected {count}")
                self.lock.wait(left)
            return list(self.messages)
