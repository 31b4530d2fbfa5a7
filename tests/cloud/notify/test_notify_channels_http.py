"""Webhook, DingTalk and WeCom channels against a real local HTTP server that records requests."""

from __future__ import annotations

import json
import subprocess
from dataclasses import fields
from typing import Any

import pytest

from cloud.notify.channels.base import ChannelContext
from cloud.notify.channels.dingtalk import dingtalk_sign
from cloud.notify.channels.registry import build_channel
from cloud.notify.channels.webhook import body_signature
from cloud.notify.channels.wecom import CUT_MARK, MAX_CONTENT_BYTES
from cloud.notify.errors import DeliveryError
from cloud.notify.message import Notification
from cloud.notify.render import RenderContext
from cloud.notify.settings import NotificationSettings
from tests.cloud.notify.notify_kit import EXAMPLE, dead_url, golden, pretty

CONTEXT = ChannelContext(
    render=RenderContext("Asia/Shanghai", "https://mom.plant.local/alarms/{alarm_id}")
)


def channel(settings: dict[str, Any], context: ChannelContext = CONTEXT) -> Any:
    parsed = NotificationSettings.model_validate({"channels": {"c1": settings}, "routes": []})
    return build_channel("c1", parsed.channels["c1"], context)


def openssl_hmac(key: str, data: bytes, *, base64: bool) -> str:
    """HMAC-SHA256 computed by openssl, independently of the code under test."""
    if base64:
        digest = subprocess.run(
            ["openssl", "dgst", "-sha256", "-hmac", key, "-binary"],
            input=data, capture_output=True, check=True,
        ).stdout  # fmt: skip
        return (
            subprocess.run(["base64"], input=digest, capture_output=True, check=True)
            .stdout.decode()
            .strip()
        )
    out = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", key], input=data, capture_output=True, check=True
    ).stdout.decode()
    return out.rsplit("= ", 1)[1].strip()


# --------------------------------------------------------------------------- webhook


def test_webhook_posts_the_versioned_body_with_headers_and_an_hmac_signature(http_server):
    server = http_server(default=(204, b""))
    hook = channel({
        "type": "webhook", "url": f"{server.url}/hooks/alarms?source=forgeline",
        "headers": {"Authorization": "Bearer plant-token"}, "secret": "hook-secret",
    })  # fmt: skip
    hook.deliver(EXAMPLE)

    (request,) = server.wait_for(1)
    assert (request.path, request.query) == ("/hooks/alarms", {"source": ["forgeline"]})
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert request.headers["Authorization"] == "Bearer plant-token"
    expected = "sha256=" + openssl_hmac("hook-secret", request.body, base64=False)
    assert request.headers["X-Forgeline-Signature"] == expected
    body = request.json()
    assert {f.name for f in fields(Notification)} <= set(body)
    assert (body["v"], body["type"], body["event"], body["priority"]) == (
        1, "alarm_notification", "escalated", "high",
    )  # fmt: skip
    golden("webhook.json", pretty(body))


def test_webhook_signature_worked_example():
    # printf '{"a":1}' | openssl dgst -sha256 -hmac 'hook-secret'
    assert body_signature("hook-secret", b'{"a":1}') == (
        "sha256=eb8ded9d103e519ca7e2ab1be0df069c649c61531b59a9dcbf2fa2e799fb1fa6"
    )


def test_webhook_failures_say_whether_a_retry_can_help(http_server):
    server = http_server(
        replies=[(500, b"database down"), (404, b"no such hook"), (429, b"slow down")]
    )
    hook = channel({"type": "webhook", "url": f"{server.url}/hook?token=s3cret"})
    outcomes = []
    for _ in range(3):
        with pytest.raises(DeliveryError) as caught:
            hook.deliver(EXAMPLE)
        outcomes.append((caught.value.retryable, str(caught.value)))
    assert [retryable for retryable, _ in outcomes] == [True, False, True]
    assert "HTTP 500" in outcomes[0][1]
    assert "database down" in outcomes[0][1]
    assert "HTTP 404" in outcomes[1][1]
    assert all("s3cret" not in text and "?***" in text for _, text in outcomes)

    with pytest.raises(DeliveryError, match="cannot reach the server") as refused:
        channel({"type": "webhook", "url": dead_url()}).deliver(EXAMPLE)
    assert refused.value.retryable


def test_webhook_timeout_is_a_retryable_failure(http_server):
    server = http_server(delay_s=2.0)
    hook = channel({"type": "webhook", "url": f"{server.url}/hook", "timeout_s": 0.3})
    with pytest.raises(DeliveryError, match=r"0\.3 s|timed out") as caught:
        hook.deliver(EXAMPLE)
    assert caught.value.retryable


# --------------------------------------------------------------------------- DingTalk


def test_dingtalk_signature_worked_example():
    # printf '1764424500000\nSECf1b2c3d4e5' | openssl dgst -sha256 -hmac 'SECf1b2c3d4e5' -binary | base64
    assert dingtalk_sign("SECf1b2c3d4e5", 1_764_424_500_000) == (
        "/2oF+SBnGr1XQhICeoTH+ezoYmCQJkYUHtLchk0aSRg="
    )


def test_dingtalk_sends_markdown_with_at_mobiles_and_a_fixed_clock_signature(http_server):
    server = http_server()
    context = ChannelContext(render=CONTEXT.render, clock_ms=lambda: 1_764_424_500_000)
    robot = channel({
        "type": "dingtalk", "access_token": "tok-123", "secret": "SECf1b2c3d4e5",
        "base_url": f"{server.url}/robot/send", "at_mobiles": ["13800001111"],
    }, context)  # fmt: skip
    robot.deliver(EXAMPLE)

    (request,) = server.wait_for(1)
    assert request.path == "/robot/send"
    # the worked example above, URL-encoded: / → %2F, + → %2B, = → %3D
    assert request.raw_query == (
        "access_token=tok-123&timestamp=1764424500000"
        "&sign=%2F2oF%2BSBnGr1XQhICeoTH%2BezoYmCQJkYUHtLchk0aSRg%3D"
    )
    body = request.json()
    assert body["at"] == {"atMobiles": ["13800001111"], "isAtAll": False}
    assert body["markdown"]["text"].endswith("@13800001111")
    golden("dingtalk.json", pretty(body))


def test_dingtalk_signs_each_attempt_with_the_current_time_checked_by_openssl(http_server):
    server = http_server()
    robot = channel({
        "type": "dingtalk", "access_token": "tok-123", "secret": "SEC0a9b8c7d",
        "base_url": f"{server.url}/robot/send",
    })  # fmt: skip
    robot.deliver(EXAMPLE)
    (request,) = server.wait_for(1)
    timestamp = request.query["timestamp"][0]
    expected = openssl_hmac("SEC0a9b8c7d", f"{timestamp}\nSEC0a9b8c7d".encode(), base64=True)
    assert request.query["sign"] == [expected]


def test_dingtalk_errcode_is_a_failure_retried_only_when_it_can_help(http_server):
    server = http_server(replies=[
        (200, b'{"errcode":130101,"errmsg":"send too fast"}'),
        (200, b'{"errcode":310000,"errmsg":"sign not match"}'),
        (200, b"<html>proxy error</html>"),
    ])  # fmt: skip
    robot = channel({
        "type": "dingtalk", "access_token": "tok-123", "base_url": f"{server.url}/robot/send",
    })  # fmt: skip
    errors = []
    for _ in range(3):
        with pytest.raises(DeliveryError) as caught:
            robot.deliver(EXAMPLE)
        errors.append(caught.value)
    assert [e.retryable for e in errors] == [True, False, True]
    assert "130101" in str(errors[0])
    assert "sign not match" in str(errors[1])
    assert "加签" in str(errors[1])
    assert all("tok-123" not in str(e) for e in errors)


# --------------------------------------------------------------------------- WeCom


def test_wecom_sends_markdown_content_to_the_key_url(http_server):
    server = http_server()
    robot = channel({
        "type": "wecom", "key": "693a91f6-key", "base_url": f"{server.url}/cgi-bin/webhook/send",
        "mention_userids": ["zhangsan"],
    })  # fmt: skip
    robot.deliver(EXAMPLE)
    (request,) = server.wait_for(1)
    assert (request.path, request.query) == ("/cgi-bin/webhook/send", {"key": ["693a91f6-key"]})
    body = request.json()
    assert body["markdown"]["content"].endswith("<@zhangsan>")
    golden("wecom.json", pretty(body))


def test_wecom_cuts_a_message_to_4096_bytes_and_keeps_the_mentions(notification):
    robot = channel({"type": "wecom", "key": "k", "mention_userids": ["lisi"]})
    long = notification(action="更换加热圈 " * 2000)  # 3 bytes per character: far over 4096
    content = json.loads(robot.render(long))["markdown"]["content"]
    assert len(content.encode("utf-8")) <= MAX_CONTENT_BYTES
    assert content.endswith(CUT_MARK + "\n\n<@lisi>")
    short = json.loads(robot.render(EXAMPLE))["markdown"]["content"]
    assert CUT_MARK not in short


def test_wecom_errcodes(http_server):
    server = http_server(replies=[
        (200, b'{"errcode":93000,"errmsg":"invalid webhook url"}'),
        (200, b'{"errcode":45009,"errmsg":"api freq out of limit"}'),
        (502, b"bad gateway"),
    ])  # fmt: skip
    robot = channel({"type": "wecom", "key": "k-secret", "base_url": f"{server.url}/send"})
    errors = []
    for _ in range(3):
        with pytest.raises(DeliveryError) as caught:
            robot.deliver(EXAMPLE)
        errors.append(caught.value)
    assert [e.retryable for e in errors] == [False, True, True]
    assert "copy the robot's webhook URL" in str(errors[0])
    assert all("k-secret" not in str(e) for e in errors)
