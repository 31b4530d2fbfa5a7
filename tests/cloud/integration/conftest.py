"""Fixtures of the ERP webhook tests: real ERP servers on loopback and a plant in the database.

``erp_server``  ``erp_server(statuses=[500], secret=..., port=...)`` → a started ``ErpServer``
                (closed after the test)
``plant``       machines press-1 and bench-1 on line A in ``db_engine``'s database
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.cloud.integration.erp_kit import ErpServer, make_plant


@pytest.fixture
def erp_server() -> Iterator[Callable[..., ErpServer]]:
    made: list[ErpServer] = []

    def make(**options: Any) -> ErpServer:
        server = ErpServer(**options)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


@pytest.fixture
def plant(db_engine: Any) -> dict[str, int]:
    return make_plant(db_engine)
