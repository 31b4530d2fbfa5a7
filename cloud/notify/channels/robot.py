"""What the DingTalk and WeCom robots have in common: a JSON reply with ``errcode``/``errmsg``."""

from __future__ import annotations

import json
from collections.abc import Mapping

from cloud.notify.channels.http import HttpReply
from cloud.notify.errors import DeliveryError


def check_robot_reply(
    reply: HttpReply, *, where: str, retryable: Mapping[int, str], hints: Mapping[int, str]
) -> None:
    """Raise ``DeliveryError`` unless the reply is ``{"errcode": 0, ...}``.

    ``retryable`` maps the error codes that a later attempt can cure to what they mean;
    ``hints`` says what to do about the others.
    """
    try:
        answer = json.loads(reply.body)
        code = int(answer["errcode"])
        message = str(answer.get("errmsg", ""))
    except (ValueError, TypeError, KeyError):
        text = reply.body[:200].decode("utf-8", errors="replace")
        raise DeliveryError(
            f"{where}: the reply is not the robot's JSON (HTTP {reply.status}): {text!r}",
            retryable=True,
        ) from None
    if code == 0:
        return
    if code in retryable:
        raise DeliveryError(
            f"{where}: errcode {code} ({retryable[code]}): {message}", retryable=True
        )
    hint = f"; {hints[code]}" if code in hints else ""
    raise DeliveryError(f"{where}: errcode {code}: {message}{hint}", retryable=False)
