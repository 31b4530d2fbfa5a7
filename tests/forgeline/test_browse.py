"""`forgeline profiles browse`: a draft profile from the simulator serving a built-in profile."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from asyncua import ua
from click.testing import CliRunner

from device_profiles import profile_path
from forgeline.browse import draft_profile, profile_node, snake_case, unique_names
from forgeline.cli import main
from protocols.opcua.browse import BrowsedVariable
from protocols.profile import Profile, load_profile
from simulators.behaviour import MachineBehaviour
from simulators.opcua_server import OpcUaDeviceServer

NAMESPACE = "urn:forgeline:sim:sole_injection_press"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def press(anyio_backend: str) -> AsyncIterator[OpcUaDeviceServer]:
    """The sole injection press, with a low MaxNodesPerRead so browsing must batch its reads."""
    profile = load_profile(profile_path("sole_injection_press"))
    sim = OpcUaDeviceServer("press-01", profile, MachineBehaviour(profile), max_nodes_per_read=7)
    await sim.start()
    yield sim
    await sim.stop()


def check_against_the_original(draft: Profile, original: Profile) -> None:
    assert draft.protocol == "opcua"
    assert draft.opcua_options.namespace_uri == NAMESPACE
    drafted = {t.node: t for t in draft.tags}
    assert set(drafted) == {t.node for t in original.tags}
    for tag in original.tags:
        twin = drafted[tag.node]
        assert twin.name == tag.name  # the simulator's browse names are the tag names
        assert twin.type == tag.type, tag.name
        assert twin.unit == tag.unit, tag.name
        assert twin.writable == tag.writable, tag.name
        assert twin.role == "info"
        limits = tag.limits
        if limits is not None and limits.low is not None and limits.high is not None:
            assert twin.limits == limits, tag.name  # from EURange
        else:
            assert twin.limits is None, tag.name
    descriptions = {t.name: t.description for t in draft.tags}
    assert descriptions["mould_id"] == "mould mounted on the station, set at mould change"
    assert descriptions["nozzle_temperature"] is None  # not the browse name repeated


@pytest.mark.anyio
@pytest.mark.integration
async def test_the_cli_drafts_a_profile_that_validates_and_matches_the_original(
    press: OpcUaDeviceServer, tmp_path: Path
) -> None:
    out = tmp_path / "drafts" / "press.yaml"
    # The real CLI in its own process; this event loop keeps serving the simulator meanwhile.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "forgeline", "profiles", "browse", press.endpoint_url,
        "--out", str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    assert f"wrote {out}" in stderr.decode()
    assert out.read_text(encoding="utf-8").startswith("# Draft profile of opc.tcp://")

    validated = CliRunner().invoke(main, ["profiles", "validate", str(out)])
    assert validated.exit_code == 0, validated.output
    assert "sole_injection_press (opcua, 15 tags)" in validated.output
    check_against_the_original(load_profile(out), press.profile)


@pytest.mark.anyio
@pytest.mark.integration
async def test_browse_below_a_root_node_with_reads_within_the_servers_limit(
    press: OpcUaDeviceServer,
) -> None:
    before = len(press.read_sizes)
    draft = await draft_profile(
        press.endpoint_url, namespace_uri=NAMESPACE, root="s=press-01", model="press_draft"
    )
    assert draft.model == "press_draft"
    assert draft.tags == 15
    assert draft.skipped == []
    assert max(press.read_sizes[before:]) <= 7  # MaxNodesPerRead 7 respected
    with pytest.raises(ValueError, match="has no namespace 'urn:nowhere'"):
        await draft_profile(press.endpoint_url, namespace_uri="urn:nowhere")


@pytest.mark.anyio
@pytest.mark.integration
async def test_an_unreachable_server_fails_with_exit_code_1(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "forgeline", "profiles", "browse", "opc.tcp://127.0.0.1:1/",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 1
    assert "browse failed: opc.tcp://127.0.0.1:1/" in stderr.decode()


def variable(name: str, path: tuple[str, ...] = ()) -> BrowsedVariable:
    return BrowsedVariable(
        node_id=ua.NodeId(name, 2),
        browse_name=name,
        path=path,
        data_type=ua.NodeId(ua.ObjectIds.Double),
        value_rank=-1,
        access_level=1,
        description=None,
        unit=None,
        eu_range=None,
    )


def test_names_are_snake_case_and_unique() -> None:
    assert snake_case("Zone1Temp") == "zone1_temp"
    assert snake_case("PLCState") == "plc_state"
    assert snake_case("Barrel.Temp-2") == "barrel_temp_2"
    assert snake_case("2ndStage") == "tag_2nd_stage"
    assert snake_case("温度") == "tag"
    names = unique_names(
        [
            variable("Temperature", ("Press", "Barrel")),
            variable("Temperature", ("Press", "Nozzle")),
            variable("Speed", ("A",)),
            variable("Speed", ("A",)),
        ]
    )
    assert names == ["barrel_temperature", "nozzle_temperature", "a_speed", "a_speed_2"]


def test_node_ids_are_relative_in_the_profile_namespace_only() -> None:
    namespaces = ["http://opcfoundation.org/UA/", "urn:server", "urn:press", "urn:other"]
    assert profile_node(ua.NodeId("Press.Temp", 2), 2, namespaces) == "s=Press.Temp"
    # a bare i= is namespace 0 in a profile, so a numeric id keeps its namespace URI
    assert profile_node(ua.NodeId(1001, 2), 2, namespaces) == "nsu=urn:press;i=1001"
    assert profile_node(ua.NodeId("X", 3), 2, namespaces) == "nsu=urn:other;s=X"
    assert profile_node(ua.NodeId(2258, 0), 2, namespaces) == "i=2258"
