"""The delivery thread: POST due ``erp_delivery`` rows to their ERP endpoints, with retries.

Each round reads the rows that are due (``pending`` with ``next_attempt_ms <= now``, or
``sending`` whose claim has lapsed because the process that claimed it died), claims each one
with ``UPDATE ... WHERE id = ? AND <still due>`` (only one process wins, so a row is never sent
twice at once, however many cloud processes run), POSTs the stored body with a timeout, and
records the attempt (``erp_delivery_attempt``: when, how long, HTTP status or error) in the same
transaction as the row's new state:

- a 2xx answer: ``delivered``;
- anything else (another status, a redirect, a refused connection, a timeout): ``pending``
  again, due after ``min(max_backoff_s, initial_backoff_s * 2**(n-1))`` for the n-th failed
  attempt, until ``max_attempts`` are used up: then ``failed`` (``POST
  /api/integration/deliveries/{id}/retry`` puts it back with a fresh set of attempts).

A round goes on until nothing is due but the rows of endpoints that failed in it: an endpoint
that fails gets no more rows in that round, so one dead ERP costs one timeout per round, not one
per queued row, and its backlog never holds up the other endpoints. The body is signed with the endpoint's secret:
``X-Forgeline-Signature: sha256=<hex HMAC-SHA256 of the body>``. A dead ERP or database never
stops the thread: failures are logged once per streak (with what to do), recoveries once, and
an outcome that could not be written is kept and written first when the database answers
(a process that dies meanwhile leaves the row claimed; it is sent again once the claim lapses,
and the ERP drops the duplicate by ``event_id``). Delivery is at least once, in due order, not
strictly ordered across retries.

``WebhookDelivery(engine, settings)``: ``start()``, ``stop()``, ``wake()``; ``run_once()`` does
one round on the caller's thread, ``flush()`` waits for the rows due now (tests).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, Engine, and_, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from cloud.db import table_of, writer_engine
from cloud.integration.models import (
    DELIVERED,
    FAILED,
    PENDING,
    SENDING,
    ErpDelivery,
    ErpDeliveryAttempt,
    ErpWebhook,
)
from cloud.integration.settings import WebhookDeliverySettings
from protocols.clock import now_ms

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Forgeline-Signature"
MAX_REPLY_BYTES = 64 * 1024
CLAIM_MARGIN_MS = 30_000  # a claim outlives the POST's timeout by this much

_deliveries = table_of(ErpDelivery)
_attempts = table_of(ErpDeliveryAttempt)


def sign_body(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of body keyed with secret>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def where_of(url: str) -> str:
    """The URL without its query and user info (tokens live there), for logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


# --------------------------------------------------------------------------- one POST


@dataclass(frozen=True, slots=True)
class PostOutcome:
    status: int | None  # None: no HTTP answer
    error: str | None  # None: a 2xx answer
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.error is None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer like any other non-2xx: urllib would re-send a POST as GET."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


def _snippet(body: bytes) -> str:
    text = body[:300].decode("utf-8", errors="replace").strip()
    return f": {text}" if text else ""


def post(
    opener: urllib.request.OpenerDirector,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
) -> PostOutcome:
    """POST ``body``; a 2xx answer is delivered, anything else an error saying what happened."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310
    started = time.monotonic()

    def done(status: int | None, error: str | None) -> PostOutcome:
        return PostOutcome(status, error, round((time.monotonic() - started) * 1000))

    try:
        with opener.open(request, timeout=timeout_s) as response:
            response.read(MAX_REPLY_BYTES)
            status = int(response.status)
    except urllib.error.HTTPError as error:
        try:
            reply = error.read(MAX_REPLY_BYTES)
        except (OSError, http.client.HTTPException):
            reply = b""
        finally:
            error.close()
        return done(int(error.code), f"HTTP {error.code} {error.reason}{_snippet(reply)}")
    except TimeoutError:
        return done(None, f"no answer within {timeout_s} s")
    except urllib.error.URLError as error:
        return done(None, f"cannot reach the ERP ({error.reason})")
    except (OSError, http.client.HTTPException) as error:
        return done(None, f"the connection failed ({type(error).__name__}: {error})")
    if 200 <= status < 300:
        return done(status, None)
    return done(status, f"HTTP {status}: only a 2xx answer counts as delivered")


# --------------------------------------------------------------------------- the thread


@dataclass(frozen=True, slots=True)
class _Job:
    """A claimed row and where it goes."""

    delivery_id: int
    claim: str
    event: str
    event_id: str
    endpoint: str
    url: str | None  # None: the endpoint no longer exists
    secret: str | None
    body: str
    attempt: int  # the number of this attempt (1-based, over the row's life)
    in_round: int  # the number of this attempt since the last manual retry


@dataclass(frozen=True, slots=True)
class _Outcome:
    job: _Job
    started_ms: int
    post: PostOutcome


class WebhookDelivery:
    """Sends due ERP webhook deliveries on one thread; safe beside other cloud processes."""

    def __init__(
        self,
        engine: Engine,
        settings: WebhookDeliverySettings | None = None,
        *,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self.settings = settings or WebhookDeliverySettings()
        self._reader = engine
        self._engine = writer_engine(engine)  # SQLite: claims queue at BEGIN, never deadlock
        self._clock_ms = clock_ms
        self._opener = urllib.request.build_opener(_NoRedirect())
        self._unwritten: list[_Outcome] = []  # outcomes the database did not take yet
        self._failing: set[str] = set()  # endpoints whose last attempt failed
        self._db_failing = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._rounds = threading.Condition()
        self._rounds_begun = 0
        self._last_idle_round = 0  # the last round that found nothing due
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="erp-webhooks", daemon=True)
        self._thread.start()
        log.info("erp webhooks: delivering (poll every %s s)", self.settings.poll_s)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the POST in flight (at most ``timeout_s``); the rest waits in the table."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("erp webhooks: the delivery thread is still sending; left behind")
            self._thread = None

    def wake(self) -> None:
        """Look for due rows now (after a commit that queued some, or a manual retry)."""
        self._wake.set()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until a round that began after this call found nothing due (tests).

        Without a running thread the rounds run on the caller's thread.
        """
        deadline = time.monotonic() + timeout
        if self._thread is None:
            while self.run_once():
                if time.monotonic() > deadline:
                    return False
            return True
        with self._rounds:
            begun = self._rounds_begun
            self._wake.set()
            while self._last_idle_round <= begun:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._rounds.wait(left)
        return True

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.is_set():
            self._wake.clear()  # a wake() during the round makes the next one start at once
            try:
                self.run_once()
            except SQLAlchemyError as error:
                delay = min(self.settings.db_retry_max_s, max(0.5, delay * 2))
                self._database_failed(error, delay)
                self._stop.wait(delay)
                continue
            except Exception:  # a bug must not stop the deliveries for good
                log.exception("erp webhooks: unexpected error in a delivery round; going on")
                self._stop.wait(self.settings.poll_s)
                continue
            delay = 0.0
            self._wake.wait(self.settings.poll_s)

    def _database_failed(self, error: SQLAlchemyError, delay: float) -> None:
        if not self._db_failing:
            log.error(
                "erp webhooks: the database does not answer (%s); deliveries wait, retrying "
                "every %s s at most (check the database server and db_url)",
                str(error).splitlines()[0], self.settings.db_retry_max_s,
            )  # fmt: skip
        self._db_failing = True
        log.debug("erp webhooks: next database try in %.1f s", delay)

    # ------------------------------------------------------------------ one round

    def run_once(self) -> int:
        """One round: claim and send every row that is due, until none is left but those of
        endpoints that failed in this round (one failure per endpoint and round). Answers how
        many rows were attempted."""
        with self._rounds:
            self._rounds_begun += 1
            round_number = self._rounds_begun
        self._write_unwritten()
        failed_now: set[str] = set()
        handled = 0
        while not self._stop.is_set():
            due = self._due(self._clock_ms(), failed_now)
            if self._db_failing:
                log.info("erp webhooks: the database answers again")
                self._db_failing = False
            taken = 0
            for delivery_id, endpoint in due:
                if self._stop.is_set():
                    break
                if endpoint in failed_now:
                    continue
                job = self._claim(delivery_id)
                if job is None:
                    continue  # another process took it, or it is no longer due
                taken += 1
                if not self._attempt(job):
                    failed_now.add(endpoint)
            handled += taken
            if not taken:
                break  # nothing due, or every due row taken by other processes
        if not handled:
            with self._rounds:
                self._last_idle_round = max(self._last_idle_round, round_number)
                self._rounds.notify_all()
        return handled

    def _due_condition(self, now: int) -> ColumnElement[bool]:
        return or_(
            and_(_deliveries.c.state == PENDING, _deliveries.c.next_attempt_ms <= now),
            and_(_deliveries.c.state == SENDING, _deliveries.c.claimed_until_ms < now),
        )

    def _due(self, now: int, skipped: set[str]) -> list[tuple[int, str]]:
        """(id, endpoint) of due rows whose endpoint is enabled (and not ``skipped``) or gone,
        in due order."""
        endpoints = table_of(ErpWebhook)
        query = (
            select(_deliveries.c.id, _deliveries.c.endpoint)
            .select_from(
                _deliveries.outerjoin(endpoints, endpoints.c.name == _deliveries.c.endpoint)
            )
            .where(
                self._due_condition(now),
                or_(endpoints.c.id.is_(None), endpoints.c.enabled.is_(True)),
            )
            .order_by(_deliveries.c.next_attempt_ms, _deliveries.c.id)
            .limit(self.settings.batch_max)
        )
        if skipped:
            query = query.where(_deliveries.c.endpoint.not_in(sorted(skipped)))
        with self._reader.connect() as conn:
            return [(int(row[0]), str(row[1])) for row in conn.execute(query)]

    def _claim(self, delivery_id: int) -> _Job | None:
        """Take the row for this thread if it is still due; None if someone else has it."""
        now = self._clock_ms()
        claim = uuid.uuid4().hex
        lease = now + round(self.settings.timeout_s * 1000) + CLAIM_MARGIN_MS
        endpoints = table_of(ErpWebhook)
        with self._engine.begin() as conn:
            taken = conn.execute(
                update(_deliveries)
                .where(_deliveries.c.id == delivery_id, self._due_condition(now))
                .values(state=SENDING, claim=claim, claimed_until_ms=lease, updated_ms=now)
            )
            if taken.rowcount != 1:
                return None
            row = conn.execute(
                select(_deliveries, endpoints.c.url, endpoints.c.secret)
                .select_from(
                    _deliveries.outerjoin(endpoints, endpoints.c.name == _deliveries.c.endpoint)
                )
                .where(_deliveries.c.id == delivery_id)
            ).one()
        attempt = row.attempts + 1
        return _Job(
            delivery_id, claim, row.event, row.event_id, row.endpoint, row.url, row.secret,
            row.body, attempt, attempt - row.round_start,
        )  # fmt: skip

    def _attempt(self, job: _Job) -> bool:
        """POST the job and record the outcome; True if delivered."""
        started_ms = self._clock_ms()
        if job.url is None:
            outcome = PostOutcome(
                None, f"the webhook endpoint {job.endpoint!r} no longer exists; not sent", 0
            )
        else:
            body = job.body.encode("utf-8")
            outcome = post(
                self._opener, job.url, body, self._headers(job, body), self.settings.timeout_s
            )
        recorded = _Outcome(job, started_ms, outcome)
        self._report(recorded)
        try:
            self._write(recorded)
        except SQLAlchemyError:
            self._unwritten.append(recorded)
            raise
        return outcome.delivered

    def _headers(self, job: _Job, body: bytes) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "forgeline-erp-webhooks/1",
            "X-Forgeline-Event": job.event,
            "X-Forgeline-Event-Id": job.event_id,
            "X-Forgeline-Delivery": str(job.delivery_id),
            "X-Forgeline-Attempt": str(job.attempt),
        }
        if job.secret:
            headers[SIGNATURE_HEADER] = sign_body(job.secret, body)
        return headers

    # ------------------------------------------------------------------ outcomes

    def _final(self, outcome: _Outcome) -> bool:
        gone = outcome.job.url is None
        return gone or outcome.job.in_round >= self.settings.max_attempts

    def _write_unwritten(self) -> None:
        while self._unwritten:
            self._write(self._unwritten[0])
            self._unwritten.pop(0)

    def _write(self, outcome: _Outcome) -> None:
        """The row's new state and the attempt, in one transaction (if the claim still holds)."""
        job, result = outcome.job, outcome.post
        now = self._clock_ms()
        if result.delivered:
            values: dict[str, Any] = {"state": DELIVERED, "delivered_ms": now}
        elif self._final(outcome):
            values = {"state": FAILED}
        else:
            wait_ms = self.settings.backoff_ms(job.in_round)
            values = {"state": PENDING, "next_attempt_ms": outcome.started_ms + wait_ms}
        values |= {
            "attempts": job.attempt, "last_status": result.status, "last_error": result.error,
            "claim": None, "claimed_until_ms": None, "updated_ms": now,
        }  # fmt: skip
        with self._engine.begin() as conn:
            kept = conn.execute(
                update(_deliveries)
                .where(_deliveries.c.id == job.delivery_id, _deliveries.c.claim == job.claim)
                .values(**values)
            )
            if kept.rowcount != 1:
                log.warning(
                    "erp webhooks: delivery %d to %r: its claim lapsed during the POST (another "
                    "process may send it again; the ERP drops duplicates by event_id)",
                    job.delivery_id, job.endpoint,
                )  # fmt: skip
                return
            conn.execute(
                insert(_attempts).values(
                    delivery_id=job.delivery_id, attempt=job.attempt, ms=outcome.started_ms,
                    http_status=result.status, error=result.error,
                    duration_ms=result.duration_ms,
                )
            )  # fmt: skip

    def _report(self, outcome: _Outcome) -> None:
        """Log the first failure of an endpoint's streak, its recovery, and every final failure."""
        job, result = outcome.job, outcome.post
        where = where_of(job.url) if job.url else "(deleted)"
        if result.delivered:
            if job.endpoint in self._failing:
                self._failing.discard(job.endpoint)
                log.info(
                    "erp webhooks: endpoint %r (%s) accepts deliveries again", job.endpoint, where
                )
            return
        if self._final(outcome):
            log.error(
                "erp webhooks: delivery %d (%s %s) to %r (%s) failed for good after %d attempts: "
                "%s; fix the endpoint, then POST /api/integration/deliveries/%d/retry",
                job.delivery_id, job.event, job.event_id, job.endpoint, where, job.in_round,
                result.error, job.delivery_id,
            )  # fmt: skip
        elif job.endpoint not in self._failing:
            log.warning(
                "erp webhooks: delivery %d to %r (%s) failed: %s; retrying with backoff up to %d "
                "attempts (will say when the endpoint accepts deliveries again)",
                job.delivery_id, job.endpoint, where, result.error, self.settings.max_attempts,
            )  # fmt: skip
        self._failing.add(job.endpoint)


__all__ = [
    "SIGNATURE_HEADER",
    "PostOutcome",
    "WebhookDelivery",
    "WebhookDeliverySettings",
    "post",
    "sign_body",
    "where_of",
]
