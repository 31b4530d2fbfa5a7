"""OPC UA security: an application's own certificate, its trusted peers, policies and modes.

A PKI folder (the edge uses ``<data_dir>/pki``) holds:

    own/cert.der      this application's instance certificate (DER), made on first use
    own/key.pem       its RSA private key (PKCS#8 PEM, readable by the owner only)
    trusted/          certificates of the peers this application trusts (.der or .pem, any name)
    rejected/         peer certificates refused as untrusted, kept so an operator can inspect
                      one and move it to trusted/

A server's certificate is trusted when ``trusted/`` holds the same certificate (byte for byte).
With ``trust_on_first_use`` a server whose application URI has no certificate in ``trusted/``
yet is trusted and its certificate saved there; a different certificate for a URI already
trusted is still refused (a replaced server, or an impostor). The default is strict.

Errors (``protocols.errors``): ``UntrustedCertificate`` (a ``DeviceRejected``) says which file
to move where.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from asyncua import ua
from asyncua.crypto import security_policies
from asyncua.crypto.cert_gen import (
    dump_private_key_as_pem,
    generate_private_key,
    generate_self_signed_app_certificate,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from protocols.errors import DeviceRejected

log = logging.getLogger(__name__)

SecurityPolicyName = Literal["None", "Basic256Sha256"]
SecurityModeName = Literal["None", "Sign", "SignAndEncrypt"]
CertificateUse = Literal["client", "server"]

SECURITY_POLICIES: tuple[str, ...] = ("None", "Basic256Sha256")
SECURITY_MODES: tuple[str, ...] = ("None", "Sign", "SignAndEncrypt")
CERTIFICATE_DAYS = 10 * 365  # an industrial PC is not re-provisioned every year
_RENEW_BEFORE_S = 7 * 86400  # a certificate this close to expiry is replaced

_POLICY_CLASSES: dict[str, type[security_policies.SecurityPolicy]] = {
    "None": security_policies.SecurityPolicyNone,
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
}
_MODES: dict[str, ua.MessageSecurityMode] = {
    "None": ua.MessageSecurityMode.None_,
    "Sign": ua.MessageSecurityMode.Sign,
    "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt,
}


class UntrustedCertificate(DeviceRejected):
    """A peer's certificate is not in the trusted folder (the message says what to move where)."""


def policy_uri(policy: str) -> str:
    """The security policy URI of a policy name (``Basic256Sha256`` → http://opcfoundation...)."""
    return str(_POLICY_CLASSES[policy].URI)


def policy_class(policy: str) -> type[security_policies.SecurityPolicy]:
    return _POLICY_CLASSES[policy]


def message_mode(mode: str) -> ua.MessageSecurityMode:
    return _MODES[mode]


def describe_endpoint(endpoint: ua.EndpointDescription) -> str:
    """``Basic256Sha256/Sign`` (or ``None``) for an endpoint a server offers."""
    uri = endpoint.SecurityPolicyUri or ""
    policy = uri.rsplit("#", 1)[-1] or "None"
    mode = {v: k for k, v in _MODES.items()}.get(endpoint.SecurityMode, str(endpoint.SecurityMode))
    return "None" if policy == "None" else f"{policy}/{mode}"


@dataclass(frozen=True, slots=True)
class Pki:
    """The folders and files of one application's PKI (see the module docstring)."""

    root: Path

    @property
    def certificate_path(self) -> Path:
        return self.root / "own" / "cert.der"

    @property
    def private_key_path(self) -> Path:
        return self.root / "own" / "key.pem"

    @property
    def trusted_dir(self) -> Path:
        return self.root / "trusted"

    @property
    def rejected_dir(self) -> Path:
        return self.root / "rejected"


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """How a client secures its session: policy and mode, its PKI, and whom it trusts."""

    policy: SecurityPolicyName = "None"
    mode: SecurityModeName = "None"
    pki_dir: Path | None = None
    trust_on_first_use: bool = False
    application_uri: str | None = None  # for a first certificate; default urn:forgeline:edge:<host>

    def __post_init__(self) -> None:
        if self.policy not in SECURITY_POLICIES:
            raise ValueError(
                f"security_policy {self.policy!r} is not one of {', '.join(SECURITY_POLICIES)}"
            )
        if self.mode not in SECURITY_MODES:
            raise ValueError(
                f"security_mode {self.mode!r} is not one of {', '.join(SECURITY_MODES)}"
            )
        if (self.policy == "None") != (self.mode == "None"):
            raise ValueError(
                "security_policy and security_mode go together: both None, or "
                f"Basic256Sha256 with Sign or SignAndEncrypt (got {self.policy}/{self.mode})"
            )
        if self.secure and self.pki_dir is None:
            raise ValueError(f"security policy {self.policy} needs a pki_dir for the certificates")

    @property
    def secure(self) -> bool:
        return self.policy != "None"

    @property
    def pki(self) -> Pki | None:
        return Pki(Path(self.pki_dir)) if self.pki_dir is not None else None

    def describe(self) -> str:
        """``None`` or ``Basic256Sha256/SignAndEncrypt``."""
        return "None" if not self.secure else f"{self.policy}/{self.mode}"


@dataclass(frozen=True, slots=True)
class OwnCertificate:
    """An application's certificate and key on disk, and the application URI it names."""

    certificate_path: Path
    private_key_path: Path
    application_uri: str
    certificate: x509.Certificate


def default_application_uri(host_name: str | None = None) -> str:
    return f"urn:forgeline:edge:{host_name or socket.gethostname()}"


def certificate_uri(certificate: x509.Certificate) -> str | None:
    """The application URI in a certificate's subjectAltName, if it has one."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def thumbprint(certificate: x509.Certificate) -> str:
    """The SHA-1 thumbprint OPC UA tools show for a certificate (hex, upper case)."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()


def first_certificate(der: bytes) -> bytes:
    """The leading certificate of a DER blob that may be a chain (concatenated certificates)."""
    if len(der) < 2 or der[0] != 0x30:
        raise ValueError("not a DER certificate")
    length = der[1]
    if length < 0x80:
        return der[: 2 + length]
    size = length & 0x7F
    return der[: 2 + size + int.from_bytes(der[2 : 2 + size], "big")]


def load_certificate_file(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(first_certificate(data))


def _usable(certificate: x509.Certificate, key: rsa.RSAPrivateKey, now: datetime) -> bool:
    remaining = (certificate.not_valid_after_utc - now).total_seconds()
    public = certificate.public_key()
    same_key = (
        isinstance(public, rsa.RSAPublicKey)
        and public.public_numbers() == key.public_key().public_numbers()
    )
    return same_key and remaining > _RENEW_BEFORE_S and certificate_uri(certificate) is not None


def ensure_own_certificate(
    pki: Pki,
    application_uri: str | None = None,
    host_name: str | None = None,
    use: CertificateUse = "client",
    days: int = CERTIFICATE_DAYS,
) -> OwnCertificate:
    """This application's certificate and key, made when missing, expiring or not matching.

    An existing, valid pair is kept as it is (its application URI wins over ``application_uri``,
    so the identity peers trust does not change when a host is renamed). Blocking: RSA key
    generation and file I/O; call it from a worker thread in async code.
    """
    cert_path, key_path = pki.certificate_path, pki.private_key_path
    host = host_name or socket.gethostname()
    now = datetime.now(UTC)
    key: rsa.RSAPrivateKey | None = None
    if key_path.is_file():
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if isinstance(loaded, rsa.RSAPrivateKey):
            key = loaded
    if key is not None and cert_path.is_file():
        certificate = load_certificate_file(cert_path)
        uri = certificate_uri(certificate)
        if uri is not None and _usable(certificate, key, now):
            return OwnCertificate(cert_path, key_path, uri, certificate)
        application_uri = application_uri or uri
    uri = application_uri or default_application_uri(host)
    if key is None:
        key = generate_private_key()
        _write_private(key_path, dump_private_key_as_pem(key))
    uses = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if use == "server":
        uses.append(ExtendedKeyUsageOID.SERVER_AUTH)
    certificate = generate_self_signed_app_certificate(
        key,
        uri,
        {"organizationName": "forgeline"},
        [x509.UniformResourceIdentifier(uri), x509.DNSName(host)],
        extended=uses,
        days=days,
    )
    _write_atomic(cert_path, certificate.public_bytes(serialization.Encoding.DER))
    for folder in (pki.trusted_dir, pki.rejected_dir):
        folder.mkdir(parents=True, exist_ok=True)
    log.info(
        "made the application certificate %s (URI %s, thumbprint %s)",
        cert_path, uri, thumbprint(certificate),
    )  # fmt: skip
    return OwnCertificate(cert_path, key_path, uri, certificate)


def trusted_certificates(folder: Path) -> list[tuple[Path, x509.Certificate]]:
    """The readable certificates in a folder (files that are not certificates are skipped)."""
    found: list[tuple[Path, x509.Certificate]] = []
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        try:
            found.append((path, load_certificate_file(path)))
        except ValueError:
            log.warning("%s is not a certificate (DER or PEM); ignored", path)
    return found


def certificate_file_name(certificate: x509.Certificate) -> str:
    """``<common name>_<thumbprint prefix>.der``, safe as a file name."""
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    label = str(names[0].value) if names else (certificate_uri(certificate) or "certificate")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "certificate"
    return f"{slug[:60]}_{thumbprint(certificate)[:16]}.der"


def check_server_certificate(
    pki: Pki, der: bytes, endpoint_url: str, trust_on_first_use: bool = False
) -> Path:
    """Accept a server certificate that ``trusted/`` holds; return the trusted file.

    Otherwise save it in ``rejected/`` and raise ``UntrustedCertificate`` naming the file to
    move (or, with ``trust_on_first_use`` and no certificate yet for the server's application
    URI, save it in ``trusted/`` and accept it). An expired certificate is always refused.
    Blocking (file I/O).
    """
    certificate = x509.load_der_x509_certificate(first_certificate(der))
    uri = certificate_uri(certificate)
    who = (
        f"the server certificate of {endpoint_url} (application URI {uri or '?'}, "
        f"SHA-1 thumbprint {thumbprint(certificate)})"
    )
    now = datetime.now(UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise UntrustedCertificate(
            f"{who} is valid from {certificate.not_valid_before_utc:%Y-%m-%d} to "
            f"{certificate.not_valid_after_utc:%Y-%m-%d}, not now: renew it on the server"
        )
    trusted = trusted_certificates(pki.trusted_dir)
    for path, known in trusted:
        if known == certificate:
            return path
    name = certificate_file_name(certificate)
    if trust_on_first_use and not any(certificate_uri(c) == uri for _, c in trusted):
        path = pki.trusted_dir / name
        _write_atomic(path, certificate.public_bytes(serialization.Encoding.DER))
        log.warning("trusting %s on first use: saved as %s", who, path)
        return path
    rejected = pki.rejected_dir / name
    _write_atomic(rejected, certificate.public_bytes(serialization.Encoding.DER))
    replaced = [str(p) for p, c in trusted if uri is not None and certificate_uri(c) == uri]
    hint = (
        f"; it differs from the trusted {', '.join(replaced)} for the same URI (a replaced "
        "server certificate, or another server)"
        if replaced
        else ""
    )
    raise UntrustedCertificate(
        f"{who} is not trusted{hint}: if this is the right server, move {rejected} to "
        f"{pki.trusted_dir}/ (or copy the server's certificate file there) and connect again"
    )


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    _write_atomic(path, data, mode=0o600)
