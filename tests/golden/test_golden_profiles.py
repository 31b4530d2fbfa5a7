"""Golden cases per device profile: raw device contents in, decoded samples out, one test.

Each folder ``tests/golden/<profile>/`` is one case for the built-in profile of that name:

``input.yaml``
    What the device holds. Modbus profiles: one mapping per table (``holding``, ``input``,
    ``coil``, ``discrete``) of **profile addresses** (as written in the profile, so one-based
    profiles are written one-based) to raw 16-bit words or bits, plus ``strict_map: true`` when
    only the listed registers exist (a read that touches any other answers exception 2, as many
    PLCs do); otherwise unlisted registers between listed ones read 0. OPC UA profiles:
    ``source_timestamp`` (ISO 8601, UTC) and ``nodes``: each profile node id to its raw value,
    or to ``{value, type (VariantType name), status (StatusCode name), source_timestamp}``.
``expected.yaml``
    ``samples``: every tag of the profile → ``{value, quality, reason}`` as the edge must
    publish them (engineering values after scale and offset, worked out by hand in comments),
    and for OPC UA ``source_ts_ms``: the epoch milliseconds every sample must carry.

The test starts a real server (pymodbus or asyncua) on a port the OS picks, loaded with the raw
contents, reads once through the real edge driver and compares. A built-in profile without a
case folder fails.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from asyncua import ua

from device_profiles import available, profile_path
from edge.drivers.base import Endpoint, create_driver
from edge.processors import WaveformProcessor
from protocols.profile import Profile, load_profile
from protocols.wire import Sample
from tests.golden.golden_servers import (
    MODBUS_TABLES,
    RawModbusServer,
    RawNode,
    RawOpcUaServer,
    default_variant,
)

pytestmark = pytest.mark.anyio

CASES_DIR = Path(__file__).resolve().parent
FLOAT_REL = 1e-6  # float32 carries about 7 significant digits


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _case_names() -> list[str]:
    folders = {
        p.name for p in CASES_DIR.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))
    }
    return sorted(folders | set(available()))


MODBUS_INPUT_KEYS = {*MODBUS_TABLES, "strict_map"}
OPCUA_INPUT_KEYS = {"source_timestamp", "nodes"}
EXPECTED_KEYS = {"samples", "source_ts_ms"}
SAMPLE_KEYS = {"value", "quality", "reason", "ts_ms"}


def _load_yaml(path: Path, allowed: set[str]) -> dict[str, Any]:
    if not path.exists():
        pytest.fail(f"{path} is missing (see docs/device-profiles.md, 'Golden cases')")
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(content, dict):
        pytest.fail(f"{path}: expected a mapping at the top level")
    unknown = set(content) - allowed
    if unknown:
        pytest.fail(f"{path}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")
    return content


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(str(text))
    if moment.tzinfo is None:
        pytest.fail(f"source_timestamp {text!r} needs a zone (write it as UTC, ending in Z)")
    return moment.astimezone(UTC)


# --------------------------------------------------------------------------- reading once


async def _read_modbus(profile: Profile, raw: dict[str, Any]) -> list[Sample]:
    offset = 1 if profile.modbus_options.addressing == "one_based" else 0
    tables: dict[str, dict[int, int | bool]] = {}
    for table in MODBUS_TABLES:
        for address, word in (raw.get(table) or {}).items():
            if int(address) - offset < 0:
                pytest.fail(f"input.yaml {table} {address}: not an address of a one_based profile")
            tables.setdefault(table, {})[int(address) - offset] = word
    server = RawModbusServer(tables, strict_map=bool(raw.get("strict_map", False)))
    await server.start()
    driver = create_driver(profile, Endpoint(profile.model, "127.0.0.1", server.port, 1))
    try:
        await driver.connect()
        return await driver.read()
    finally:
        await driver.close()
        await server.stop()


def _raw_nodes(profile: Profile, raw: dict[str, Any]) -> dict[str, RawNode]:
    default_time = _utc(raw["source_timestamp"])
    nodes: dict[str, RawNode] = {}
    for text, content in (raw.get("nodes") or {}).items():
        spec = content if isinstance(content, dict) else {"value": content}
        variant = (
            getattr(ua.VariantType, spec["type"])
            if "type" in spec
            else default_variant(profile, text)
        )
        stamp = spec.get("source_timestamp")
        nodes[text] = RawNode(
            value=spec["value"],
            variant=variant,
            status=spec.get("status", "Good"),
            source_time=_utc(stamp) if stamp else default_time,
        )
    return nodes


async def _read_opcua(profile: Profile, raw: dict[str, Any]) -> list[Sample]:
    server = RawOpcUaServer(profile, _raw_nodes(profile, raw))
    await server.start()
    driver = create_driver(profile, Endpoint(profile.model, endpoint_url=server.endpoint_url))
    try:
        await driver.connect()
        samples = await driver.read()
        take_windows = getattr(driver, "take_windows", None)
        if take_windows is not None:  # waveform tags: their windows become feature samples
            features, _events = WaveformProcessor(profile).process(take_windows())
            samples += features
        return samples
    finally:
        await driver.close()
        await server.stop()


# --------------------------------------------------------------------------- comparing


def _value_problem(actual: object, wanted: object) -> str | None:
    if wanted is None:
        return None if actual is None else f"value {actual!r}, expected null"
    if isinstance(wanted, bool):
        return None if actual is wanted else f"value {actual!r}, expected {wanted!r}"
    if isinstance(wanted, float):
        if isinstance(actual, float) and actual == pytest.approx(wanted, rel=FLOAT_REL):
            return None
        return f"value {actual!r}, expected float ≈ {wanted!r}"
    if isinstance(wanted, int):
        if type(actual) is int and actual == wanted:
            return None
        return f"value {actual!r}, expected int {wanted!r}"
    return None if actual == wanted else f"value {actual!r}, expected {wanted!r}"


def _problems(
    profile: Profile,
    samples: list[Sample],
    expected: dict[str, Any],
    ts_window: tuple[int, int] | None,
) -> list[str]:
    wanted_samples: dict[str, dict[str, Any]] = expected.get("samples") or {}
    tag_names = list(profile.metric_names)  # a waveform tag is published as its features
    problems: list[str] = []
    unlisted = [name for name in tag_names if name not in wanted_samples]
    unknown = [name for name in wanted_samples if name not in tag_names]
    if unlisted:
        problems.append(f"expected.yaml lists no sample for tags {unlisted} (every tag is needed)")
    if unknown:
        problems.append(f"expected.yaml names metrics the profile does not have: {unknown}")
    by_metric: dict[str, list[Sample]] = {}
    for sample in samples:
        by_metric.setdefault(sample.metric, []).append(sample)
    for name in tag_names:
        got = by_metric.get(name)
        if not got:
            problems.append(f"{name}: the driver returned no sample")
            continue
        wanted = wanted_samples.get(name)
        if wanted is None:
            continue
        if not isinstance(wanted, dict) or set(wanted) - SAMPLE_KEYS:
            problems.append(f"{name}: expected.yaml entry {wanted!r} (keys: {sorted(SAMPLE_KEYS)})")
            continue
        wanted_value = wanted.get("value")
        wanted_quality = wanted.get("quality", "good")
        wanted_reason = wanted.get("reason")
        wanted_ts = wanted.get("ts_ms", expected.get("source_ts_ms"))
        for sample in got:  # a subscription may add a notification of the same reading
            value_problem = _value_problem(sample.value, wanted_value)
            if value_problem:
                problems.append(f"{name}: {value_problem}")
            if sample.quality.value != wanted_quality:
                problems.append(
                    f"{name}: quality {sample.quality.value}, expected {wanted_quality}"
                )
            if sample.reason != wanted_reason:
                problems.append(f"{name}: reason {sample.reason!r}, expected {wanted_reason!r}")
            if wanted_ts is not None and sample.ts_ms != wanted_ts:
                problems.append(f"{name}: ts_ms {sample.ts_ms}, expected source time {wanted_ts}")
            if wanted_ts is None and ts_window is not None:
                low, high = ts_window
                if not low <= sample.ts_ms <= high:
                    problems.append(
                        f"{name}: ts_ms {sample.ts_ms} outside the read ({low}..{high})"
                    )
    return problems


@pytest.mark.parametrize("case", _case_names())
async def test_golden_case(case: str) -> None:
    folder = CASES_DIR / case
    if not folder.is_dir():
        pytest.fail(
            f"built-in profile {case!r} has no golden case: add tests/golden/{case}/ with "
            "input.yaml and expected.yaml (see docs/device-profiles.md, 'Golden cases')"
        )
    if case not in available():
        pytest.fail(f"tests/golden/{case}/ names no built-in profile ({', '.join(available())})")
    profile = load_profile(profile_path(case))
    opcua = profile.protocol == "opcua"
    raw = _load_yaml(folder / "input.yaml", OPCUA_INPUT_KEYS if opcua else MODBUS_INPUT_KEYS)
    expected = _load_yaml(folder / "expected.yaml", EXPECTED_KEYS)

    before = time.time_ns() // 1_000_000
    if opcua:
        if "source_ts_ms" not in expected:
            pytest.fail(f"{folder}/expected.yaml: an OPC UA case needs source_ts_ms")
        samples = await _read_opcua(profile, raw)
    else:
        samples = await _read_modbus(profile, raw)
    after = time.time_ns() // 1_000_000

    problems = _problems(profile, samples, expected, (before, after))
    assert not problems, f"golden case {case}:\n  " + "\n  ".join(problems)
