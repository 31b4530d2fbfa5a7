"""One JSON POST over HTTP(S) with a timeout, failures turned into ``DeliveryError``.

Retryable: connection errors, timeouts, HTTP 5xx, 408, 425 and 429. Not retryable: any other
4xx (the request itself is wrong: a bad token, a bad URL). Error messages never carry the URL's
query (robot tokens live there).
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from cloud.notify.errors import DeliveryError

RETRYABLE_STATUS = frozenset({408, 425, 429})
MAX_REPLY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: bytes


def _snippet(body: bytes) -> str:
    text = body[:300].decode("utf-8", errors="replace").strip()
    return f": {text}" if text else ""


def post_json(
    url: str, body: bytes, *, headers: Mapping[str, str], timeout_s: float, where: str
) -> HttpReply:
    """POST ``body`` as JSON; return the 2xx reply or raise ``DeliveryError`` naming ``where``."""
    request = urllib.request.Request(  # noqa: S310 - settings allow only http(s) URLs
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "forgeline-notify/1",
            **headers,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            return HttpReply(int(response.status), response.read(MAX_REPLY_BYTES))
    except urllib.error.HTTPError as error:
        status = int(error.code)
        try:
            reply = error.read(MAX_REPLY_BYTES)
        except (OSError, http.client.HTTPException):
            reply = b""
        finally:
            error.close()
        retryable = status >= 500 or status in RETRYABLE_STATUS
        raise DeliveryError(
            f"{where}: HTTP {status} {error.reason}{_snippet(reply)}", retryable=retryable
        ) from None
    except TimeoutError:
        raise DeliveryError(f"{where}: no answer within {timeout_s} s", retryable=True) from None
    except urllib.error.URLError as error:
        raise DeliveryError(
            f"{where}: cannot reach the server ({error.reason})", retryable=True
        ) from None
    except (OSError, http.client.HTTPException) as error:
        raise DeliveryError(
            f"{where}: the connection failed ({type(error).__name__}: {error})", retryable=True
        ) from None
