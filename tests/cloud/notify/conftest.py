"""Fixtures of the notification tests: real local HTTP and SMTP servers, example notifications.

``notification``  ``notification(priority="critical", ...)``: the golden example, fields replaced
``http_server``   ``http_server(replies=[(500, b"")], delay_s=0)`` → a started
                  ``RecordingHTTPServer`` (stopped after the test)
``smtp_server``   a started ``aiosmtpd`` Controller on a free port recording every message
                  (``smtp_server.messages``); ``smtp_server_factory(**smtp_options)`` for TLS/AUTH
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cloud.notify.message import Notification
from tests.cloud.notify.notify_kit import EXAMPLE, RecordingHTTPServer
from tests.cloud.notify.smtp_kit import SmtpServer


@pytest.fixture
def notification() -> Callable[..., Notification]:
    def make(**changes: Any) -> Notification:
        return dataclasses.replace(EXAMPLE, **changes)

    return make


@pytest.fixture
def http_server() -> Iterator[Callable[..., RecordingHTTPServer]]:
    made: list[RecordingHTTPServer] = []

    def make(**options: Any) -> RecordingHTTPServer:
        server = RecordingHTTPServer(**options)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


@pytest.fixture
def smtp_server_factory() -> Iterator[Callable[..., SmtpServer]]:
    made: list[SmtpServer] = []

    def make(**smtp_options: Any) -> SmtpServer:
        server = SmtpServer(**smtp_options)
        made.append(server)
        return server.start()

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def smtp_server(smtp_server_factory: Callable[..., SmtpServer]) -> SmtpServer:
    return smtp_server_factory()
