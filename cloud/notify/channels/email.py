"""E-mail over SMTP (``smtplib``): STARTTLS, SSL or plain, optional login, UTF-8 safe.

The subject reads ``[HIGH] Press 1: nozzle_temperature above high limit``; the plain-text body
has the message, the facts, the help text (cause, consequence, action) and the alarm link.
Non-ASCII text is encoded (RFC 2047 headers, quoted-printable UTF-8 body), so Chinese machine
names and units such as °C arrive intact. Failures: a 4xx reply, a dropped connection or a
timeout can be retried; a 5xx refusal (bad login, refused recipient), a TLS failure or a server
without STARTTLS cannot.
"""

from __future__ import annotations

import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr
from typing import ClassVar

from cloud.notify.channels.base import Channel, ChannelContext
from cloud.notify.errors import DeliveryError
from cloud.notify.message import Notification
from cloud.notify.render import plain_text, subject
from cloud.notify.settings import EmailChannelSettings


class EmailChannel(Channel[EmailMessage]):
    type: ClassVar[str] = "email"

    def __init__(self, name: str, settings: EmailChannelSettings, context: ChannelContext):
        super().__init__(name, settings, context)
        self.config = settings

    @property
    def where(self) -> str:
        server = f"{self.config.host}:{self.config.effective_port}"
        return f"email channel {self.name!r} (smtp {server}, {self.config.security})"

    def render(self, notification: Notification) -> EmailMessage:
        message = EmailMessage(policy=SMTP)
        message["Subject"] = subject(notification, self.context.render)
        message["From"] = self.config.sender
        message["To"] = ", ".join(self.config.to)
        sent = datetime.fromtimestamp(self.context.clock_ms() / 1000, tz=UTC)
        message["Date"] = format_datetime(sent)
        domain = self.config.sender.rsplit("@", 1)[-1].strip(" >") or "forgeline"
        message["Message-ID"] = make_msgid("forgeline", domain=domain)
        message["X-Forgeline-Alarm"] = str(notification.alarm_id)
        message["X-Forgeline-Event"] = notification.event
        message["X-Forgeline-Priority"] = notification.priority
        message.set_content(
            plain_text(notification, self.context.render), charset="utf-8", cte="quoted-printable"
        )
        return message

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.config.ca_file)

    def _connect(self) -> smtplib.SMTP:
        host, port, timeout = self.config.host, self.config.effective_port, self.config.timeout_s
        if self.config.security == "ssl":
            return smtplib.SMTP_SSL(host, port, timeout=timeout, context=self._tls())
        client = smtplib.SMTP(host, port, timeout=timeout)
        if self.config.security == "starttls":
            try:
                client.starttls(context=self._tls())
            except BaseException:
                client.close()
                raise
        return client

    def send(self, rendered: EmailMessage) -> None:
        try:
            with self._connect() as client:
                if self.config.username is not None and self.config.password is not None:
                    client.login(self.config.username, self.config.password.get_secret_value())
                refused = client.send_message(
                    rendered,
                    from_addr=parseaddr(self.config.sender)[1],
                    to_addrs=[parseaddr(address)[1] for address in self.config.to],
                )
        except smtplib.SMTPNotSupportedError as error:
            raise DeliveryError(
                f"{self.where}: {error} (without STARTTLS set security: ssl or none; without "
                "AUTH remove username and password)",
                retryable=False,
            ) from None
        except smtplib.SMTPRecipientsRefused as error:
            codes = sorted({code for code, _ in error.recipients.values()})
            raise DeliveryError(
                f"{self.where}: every recipient was refused: {error.recipients}",
                retryable=all(400 <= code < 500 for code in codes),
            ) from None
        except smtplib.SMTPResponseException as error:
            raw = error.smtp_error
            reply = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
            raise DeliveryError(
                f"{self.where}: the server answered {error.smtp_code} {reply}",
                retryable=400 <= error.smtp_code < 500,
            ) from None
        except ssl.SSLError as error:
            raise DeliveryError(
                f"{self.where}: TLS failed ({error}); check the server's certificate or ca_file",
                retryable=False,
            ) from None
        except (smtplib.SMTPException, OSError) as error:
            raise DeliveryError(
                f"{self.where}: {type(error).__name__}: {error}", retryable=True
            ) from None
        if refused:
            raise DeliveryError(
                f"{self.where}: sent, but these recipients were refused: {refused}",
                retryable=False,
            )
