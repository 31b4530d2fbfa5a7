"""Dependencies of the API routes, as ``Annotated`` aliases (``SessionDep``, ``StoreDep`` ...)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cloud.db import writer_engine
from cloud.errors import InvalidRequest
from cloud.timeseries.store import TimeSeriesStore

if TYPE_CHECKING:
    from cloud.ingest.worker import IngestWorker


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def get_write_session(request: Request) -> Iterator[Session]:
    """A session whose transactions take SQLite's write lock at BEGIN (PostgreSQL: the same as
    ``get_session``), for routes that read and then write: a deferred SQLite transaction that
    reads first cannot take the write lock once another writer has committed, and fails."""
    with Session(writer_engine(request.app.state.engine), expire_on_commit=False) as session:
        yield session


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_store(request: Request) -> TimeSeriesStore:
    store: TimeSeriesStore = request.app.state.store
    return store


def get_worker(request: Request) -> IngestWorker | None:
    worker: IngestWorker | None = request.app.state.worker
    return worker


SessionDep = Annotated[Session, Depends(get_session)]
WriteSessionDep = Annotated[Session, Depends(get_write_session)]
EngineDep = Annotated[Engine, Depends(get_engine)]
StoreDep = Annotated[TimeSeriesStore, Depends(get_store)]
WorkerDep = Annotated["IngestWorker | None", Depends(get_worker)]


class BadRequestRoute(APIRoute):
    """A route whose request validation errors answer 400 with the failing field (a model's
    own check that names its field, "usl: ...", reads as it was written)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as error:
                first = error.errors()[0]
                field = ".".join(str(part) for part in first["loc"] if part != "body")
                message = str(first["msg"]).removeprefix("Value error, ")
                raise InvalidRequest(f"{field}: {message}" if field else message) from error

        return route
