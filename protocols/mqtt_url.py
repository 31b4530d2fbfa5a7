"""MQTT broker URLs: ``mqtt://user:pass@host:port`` (plain) and ``mqtts://...`` (TLS).

    >>> parse_mqtt_url("mqtts://edge-7:s3cret@broker.plant.local")
    MqttUrl(host='broker.plant.local', port=8883, username='edge-7', password='***', tls=True)

User name and password may be percent-encoded (``p%40ss`` is ``p@ss``). The default ports are
1883 (``mqtt``) and 8883 (``mqtts``). ``tcp://`` and ``ssl://`` are accepted as aliases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from protocols.errors import ProtocolError

_SCHEMES = {"mqtt": False, "tcp": False, "mqtts": True, "ssl": True}


class MqttUrlError(ProtocolError, ValueError):
    """A broker URL that cannot be used; the message names the URL (password hidden) and why."""


@dataclass(frozen=True, slots=True)
class MqttUrl:
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False

    def __repr__(self) -> str:
        hidden = None if self.password is None else "***"
        return (
            f"MqttUrl(host={self.host!r}, port={self.port}, username={self.username!r}, "
            f"password={hidden!r}, tls={self.tls})"
        )

    def redacted(self) -> str:
        """The URL with the password hidden, for logs."""
        scheme = "mqtts" if self.tls else "mqtt"
        user = ""
        if self.username is not None:
            user = self.username + (":***" if self.password is not None else "") + "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}"


def _hide(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def parse_mqtt_url(url: str) -> MqttUrl:
    """Parse a broker URL; raise ``MqttUrlError`` saying what is wrong and what is expected."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise MqttUrlError(f"MQTT URL {_hide(url)!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise MqttUrlError(
            f"MQTT URL {_hide(url)!r}: scheme must be mqtt:// or mqtts:// (TLS), "
            f"e.g. mqtt://127.0.0.1:1883"
        )
    if not parts.hostname:
        raise MqttUrlError(f"MQTT URL {_hide(url)!r} names no host, e.g. mqtt://127.0.0.1:1883")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise MqttUrlError(f"MQTT URL {_hide(url)!r}: only user:password@host:port may be given")
    tls = _SCHEMES[scheme]
    return MqttUrl(
        host=parts.hostname,
        port=port if port is not None else (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        tls=tls,
    )
