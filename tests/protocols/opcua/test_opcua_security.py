"""OPC UA security against the simulator configured to require it: certificates, trust, login."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509

from device_profiles import profile_path
from protocols.errors import DeviceRejected
from protocols.opcua import OpcUaLink
from protocols.opcua.security import (
    Pki,
    SecuritySettings,
    UntrustedCertificate,
    certificate_uri,
    ensure_own_certificate,
)
from protocols.profile import load_profile
from simulators.behaviour import MachineBehaviour
from simulators.opcua_server import OpcUaDeviceServer

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

NAMESPACE = "urn:forgeline:sim:sole_injection_press"
USERS = {"operator": "s3cret-Pa55"}
# name → (endpoints the server offers, users it requires)
SETUPS: dict[str, tuple[list[str], dict[str, str] | None]] = {
    "none": (["None"], None),
    "sign": (["Basic256Sha256/Sign"], None),
    "encrypt": (["Basic256Sha256/SignAndEncrypt"], None),
    "login": (["None"], USERS),
}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def sims(
    anyio_backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, OpcUaDeviceServer]]:
    """One simulated press per security set-up (each requires only what its name says)."""
    profile = load_profile(profile_path("sole_injection_press"))
    servers = {
        name: OpcUaDeviceServer(
            f"press-{name}",
            profile,
            MachineBehaviour(profile, seed=3),
            security=security,
            users=users,
            pki_dir=tmp_path_factory.mktemp(f"sim-{name}"),
        )
        for name, (security, users) in SETUPS.items()
    }
    await asyncio.gather(*(s.start() for s in servers.values()))
    yield servers
    await asyncio.gather(*(s.stop() for s in servers.values()))


def trust(sim: OpcUaDeviceServer, pki_dir: Path) -> None:
    """What an engineer does: copy the server's certificate into the edge's trusted folder."""
    assert sim.certificate_path is not None
    (pki_dir / "trusted").mkdir(parents=True, exist_ok=True)
    shutil.copy(sim.certificate_path, pki_dir / "trusted" / f"{sim.device_id}.der")


async def read_state(link: OpcUaLink) -> object:
    (node,) = await link.resolve(["s=Press.State"], NAMESPACE)
    (result,) = await link.read_values([node])
    assert result.status == "Good"
    return result.value


def test_security_settings_refuse_mismatches() -> None:
    with pytest.raises(ValueError, match="go together"):
        SecuritySettings("Basic256Sha256", "None", Path("/tmp/pki"))
    with pytest.raises(ValueError, match="pki_dir"):
        SecuritySettings("Basic256Sha256", "Sign")
    with pytest.raises(ValueError, match="not one of"):
        SecuritySettings("Basic128Rsa15", "Sign", Path("/tmp/pki"))  # type: ignore[arg-type]
    assert SecuritySettings().describe() == "None"


def test_own_certificate_is_made_once_with_the_application_uri(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    own = ensure_own_certificate(pki, "urn:forgeline:edge:test-pc", host_name="test-pc")
    certificate = x509.load_der_x509_certificate(pki.certificate_path.read_bytes())
    assert certificate_uri(certificate) == own.application_uri == "urn:forgeline:edge:test-pc"
    assert pki.private_key_path.stat().st_mode & 0o077 == 0  # the key is the owner's only
    assert pki.trusted_dir.is_dir()
    assert pki.rejected_dir.is_dir()
    before = pki.certificate_path.read_bytes()
    again = ensure_own_certificate(pki, "urn:other")  # an existing, valid pair is kept
    assert pki.certificate_path.read_bytes() == before
    assert again.application_uri == "urn:forgeline:edge:test-pc"


async def test_none_and_anonymous(sims: dict[str, OpcUaDeviceServer]) -> None:
    link = OpcUaLink(sims["none"].endpoint_url, timeout_s=3.0)
    await link.connect()
    try:
        assert await read_state(link) is not None
    finally:
        await link.close()


@pytest.mark.parametrize(("setup", "mode"), [("sign", "Sign"), ("encrypt", "SignAndEncrypt")])
async def test_basic256sha256_with_a_trusted_server(
    sims: dict[str, OpcUaDeviceServer], tmp_path: Path, setup: str, mode: str
) -> None:
    sim = sims[setup]
    pki_dir = tmp_path / "pki"
    trust(sim, pki_dir)
    security = SecuritySettings("Basic256Sha256", mode, pki_dir)  # type: ignore[arg-type]
    link = OpcUaLink(sim.endpoint_url, timeout_s=3.0, security=security)
    await link.connect()
    try:
        assert await read_state(link) is not None
        # the edge's certificate was made on this first connect, naming the client's URI
        own = x509.load_der_x509_certificate((pki_dir / "own" / "cert.der").read_bytes())
        assert certificate_uri(own) == link.application_uri
        assert link.application_uri is not None
        assert link.application_uri.startswith("urn:forgeline:edge:")
    finally:
        await link.close()

    # the same server without security: it offers none, and the error says what it offers
    plain = OpcUaLink(sim.endpoint_url, timeout_s=3.0)
    with pytest.raises(DeviceRejected, match=rf"offers no None endpoint.*Basic256Sha256/{mode}"):
        await plain.connect()
    # the other mode is not offered either
    other = "Sign" if mode == "SignAndEncrypt" else "SignAndEncrypt"
    wrong_mode = OpcUaLink(
        sim.endpoint_url,
        timeout_s=3.0,
        security=SecuritySettings("Basic256Sha256", other, pki_dir),  # type: ignore[arg-type]
    )
    with pytest.raises(DeviceRejected, match=rf"no Basic256Sha256/{other} endpoint"):
        await wrong_mode.connect()


async def test_an_untrusted_server_is_refused_saying_which_file_to_move_where(
    sims: dict[str, OpcUaDeviceServer], tmp_path: Path
) -> None:
    sim = sims["encrypt"]
    pki = Pki(tmp_path / "pki")
    security = SecuritySettings("Basic256Sha256", "SignAndEncrypt", pki.root)
    link = OpcUaLink(sim.endpoint_url, timeout_s=3.0, security=security)
    with pytest.raises(UntrustedCertificate) as refused:
        await link.connect()
    message = str(refused.value)
    (rejected,) = list(pki.rejected_dir.iterdir())
    assert sim.endpoint_url in message
    assert "urn:forgeline:sim:press-encrypt" in message  # the server's application URI
    assert f"move {rejected} to {pki.trusted_dir}/" in message
    assert rejected.read_bytes() == sim.certificate_path.read_bytes()  # type: ignore[union-attr]

    rejected.rename(pki.trusted_dir / rejected.name)  # as the message says
    await link.connect()
    try:
        assert await read_state(link) is not None
    finally:
        await link.close()


async def test_trust_on_first_use_saves_the_first_certificate_and_pins_it(
    sims: dict[str, OpcUaDeviceServer], tmp_path: Path
) -> None:
    sim = sims["sign"]
    pki = Pki(tmp_path / "pki")
    security = SecuritySettings("Basic256Sha256", "Sign", pki.root, trust_on_first_use=True)
    link = OpcUaLink(sim.endpoint_url, timeout_s=3.0, security=security)
    await link.connect()
    await link.close()
    (saved,) = list(pki.trusted_dir.iterdir())
    assert saved.read_bytes() == sim.certificate_path.read_bytes()  # type: ignore[union-attr]

    # Another certificate for the same application URI (a replaced server or an impostor)
    impostor = Pki(tmp_path / "impostor")
    ensure_own_certificate(impostor, "urn:forgeline:sim:press-sign", use="server")
    saved.write_bytes(impostor.certificate_path.read_bytes())
    with pytest.raises(UntrustedCertificate, match="differs from the trusted"):
        await link.connect()


async def test_username_and_password(sims: dict[str, OpcUaDeviceServer]) -> None:
    sim = sims["login"]
    right = OpcUaLink(sim.endpoint_url, 3.0, "operator", USERS["operator"])
    await right.connect()
    try:
        assert await read_state(right) is not None
    finally:
        await right.close()

    wrong = OpcUaLink(sim.endpoint_url, 3.0, "operator", "guess")
    with pytest.raises(DeviceRejected) as refused:
        await wrong.connect()
    message = str(refused.value)
    assert sim.endpoint_url in message
    assert "BadUserAccessDenied" in message
    assert "None, user 'operator'" in message  # the policy and the user
    assert "wrong username or password" in message

    anonymous = OpcUaLink(sim.endpoint_url, 3.0)
    with pytest.raises(DeviceRejected, match=r"None, anonymous.*set username and password"):
        await anonymous.connect()


async def test_username_and_password_over_an_encrypted_channel(
    anyio_backend: str, tmp_path: Path
) -> None:
    profile = load_profile(profile_path("sole_injection_press"))
    sim = OpcUaDeviceServer(
        "press-both",
        profile,
        MachineBehaviour(profile, seed=4),
        security=["Basic256Sha256/SignAndEncrypt"],
        users=USERS,
        pki_dir=tmp_path / "sim",
    )
    await sim.start()
    try:
        trust(sim, tmp_path / "pki")
        security = SecuritySettings("Basic256Sha256", "SignAndEncrypt", tmp_path / "pki")
        link = OpcUaLink(sim.endpoint_url, 3.0, "operator", USERS["operator"], security=security)
        await link.connect()
        try:
            assert await read_state(link) is not None
        finally:
            await link.close()
        wrong = OpcUaLink(sim.endpoint_url, 3.0, "operator", "nope", security=security)
        with pytest.raises(
            DeviceRejected, match=r"Basic256Sha256/SignAndEncrypt, user 'operator'.*wrong username"
        ):
            await wrong.connect()
    finally:
        await sim.stop()
