"""Fixtures for the OPC UA library tests: a real asyncua server, and links to it.

``opcua_server``   a module-scoped server (tests that stop or restart a server make their own)
``link``           an ``OpcUaLink`` connected to it (closed after the test)
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from protocols.opcua import OpcUaLink
from tests.protocols.opcua.opcua_server import OpcUaTestServer


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # asyncua runs on asyncio only


@pytest.fixture(scope="module")
async def opcua_server(anyio_backend: str) -> AsyncIterator[OpcUaTestServer]:
    server = await OpcUaTestServer().start()
    yield server
    await server.stop()


@pytest.fixture
async def link(opcua_server: OpcUaTestServer) -> AsyncIterator[OpcUaLink]:
    opcua_link = OpcUaLink(opcua_server.url, timeout_s=2.0)
    await opcua_link.connect()
    yield opcua_link
    await opcua_link.close()
