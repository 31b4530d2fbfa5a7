"""Broker URL parsing (protocols.mqtt_url), shared by the edge and the cloud."""

from __future__ import annotations

import pytest

from protocols.errors import ProtocolError
from protocols.mqtt_url import MqttUrl, MqttUrlError, parse_mqtt_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1", MqttUrl("127.0.0.1", 1883)),
        ("mqtt://broker:1884", MqttUrl("broker", 1884)),
        ("mqtts://broker", MqttUrl("broker", 8883, tls=True)),
        ("mqtts://edge-7:s3cret@broker:9883", MqttUrl("broker", 9883, "edge-7", "s3cret", True)),
        ("mqtt://u:p%40ss%3Aw@[::1]:1883", MqttUrl("::1", 1883, "u", "p@ss:w")),
        ("tcp://h:1", MqttUrl("h", 1)),
        ("ssl://h", MqttUrl("h", 8883, tls=True)),
        ("mqtt://user@h", MqttUrl("h", 1883, "user")),
    ],
)
def test_parse(url, expected):
    assert parse_mqtt_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://h", "scheme must be mqtt"),
        ("mqtt://", "names no host"),
        ("mqtt://h:70000", "out of range"),
        ("mqtt://h/topic", "only user:password@host:port"),
        ("broker:1883", "scheme must be mqtt"),
    ],
)
def test_refused(url, message):
    with pytest.raises(MqttUrlError, match=message):
        parse_mqtt_url(url)


def test_password_never_shows():
    url = parse_mqtt_url("mqtts://u:topsecret@h")
    assert "topsecret" not in repr(url)
    assert url.redacted() == "mqtts://u:***@h:8883"
    with pytest.raises(ProtocolError) as caught:
        parse_mqtt_url("http://u:topsecret@h")
    assert "topsecret" not in str(caught.value)
