"""Draft a device profile from a live OPC UA server (``forgeline profiles browse``).

The server's address space is walked (``protocols.opcua.browse``) and every variable with a
scalar data type forgeline knows becomes one tag: a snake_case name from its browse name (made
unique with its parent's name, then a number), its node id (namespace-relative when in the
profile's namespace), its type, unit (EngineeringUnits), limits (EURange), description and
``writable`` (AccessLevel). Every tag gets ``role: info``: the engineer decides which is the
state, the counters and the process parameters. The draft validates as it is.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import click
import yaml
from asyncua import ua

from protocols.errors import FieldBusError
from protocols.opcua import OpcUaLink
from protocols.opcua.browse import BrowsedVariable, browse_variables
from protocols.opcua.security import SecurityModeName, SecurityPolicyName, SecuritySettings
from protocols.profile import parse_profile

_NAME_LIMIT = 63


@dataclass(slots=True)
class Draft:
    """A drafted profile: its YAML text, and what was left out and why."""

    text: str
    model: str
    namespace_uri: str | None
    tags: int
    skipped: list[str] = field(default_factory=list)  # "<node id> (<browse name>): why"


def snake_case(name: str) -> str:
    """``Zone1Temp`` → ``zone1_temp``, ``Barrel.Temp-2`` → ``barrel_temp_2``; starts with a letter."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if not text or not text[0].isalpha():
        text = f"tag_{text}".rstrip("_")
    return text[:_NAME_LIMIT].rstrip("_")


def unique_names(variables: list[BrowsedVariable]) -> list[str]:
    """One profile tag name per variable: snake_case, then the parent's name, then a number."""
    names = [snake_case(v.browse_name) for v in variables]
    counts = Counter(names)
    for i, variable in enumerate(variables):
        if counts[names[i]] > 1 and variable.path:
            names[i] = snake_case(f"{variable.path[-1]}_{variable.browse_name}")
    taken: set[str] = set()
    out: list[str] = []
    for name in names:
        candidate, number = name, 2
        while candidate in taken:
            suffix = f"_{number}"
            candidate = f"{name[: _NAME_LIMIT - len(suffix)]}{suffix}"
            number += 1
        taken.add(candidate)
        out.append(candidate)
    return out


def profile_node(node_id: ua.NodeId, namespace_index: int | None, namespaces: list[str]) -> str:
    """The profile's ``node`` for a NodeId: ``s=..`` in the profile namespace, else ``nsu=..``.

    A numeric id is written ``nsu=<uri>;i=..`` even in the profile namespace: a bare ``i=`` is a
    standard node of namespace 0 in forgeline profiles (as in the OPC UA specification).
    """
    text = node_id.to_string()
    identifier = text.split(";", 1)[1] if text.startswith("ns=") else text
    index = node_id.NamespaceIndex
    if index == 0:
        return identifier
    if index == namespace_index and not identifier.startswith("i="):
        return identifier
    if index < len(namespaces):
        return f"nsu={namespaces[index]};{identifier}"
    return text


def model_name(namespace_uri: str | None) -> str:
    """A profile model name from the namespace URI's last segment (``draft`` without one)."""
    tail = re.split(r"[:/#]", (namespace_uri or "").rstrip(":/#"))[-1]
    slug = re.sub(r"[^a-z0-9_.-]+", "_", tail.lower()).strip("_.-")
    return slug[:64] if slug and slug[0].isalnum() else "draft"


def draft_from_variables(
    variables: list[BrowsedVariable],
    namespaces: list[str],
    endpoint_url: str,
    namespace_uri: str | None = None,
    model: str | None = None,
) -> Draft:
    """The draft profile of browsed variables (no I/O)."""
    skipped: list[str] = []
    usable: list[BrowsedVariable] = []
    for variable in variables:
        if variable.profile_type is None:
            kind = (
                "an array"
                if variable.value_rank is not None and variable.value_rank >= 0
                else f"data type {variable.data_type.to_string() if variable.data_type else '?'}"
            )
            skipped.append(f"{variable.node_id.to_string()} ({variable.browse_name}): {kind}")
        else:
            usable.append(variable)
    if namespace_uri is None:
        indexes = Counter(v.node_id.NamespaceIndex for v in usable if v.node_id.NamespaceIndex)
        if indexes:
            namespace_uri = namespaces[indexes.most_common(1)[0][0]]
    namespace_index = namespaces.index(namespace_uri) if namespace_uri in namespaces else None
    tags: list[dict[str, Any]] = []
    for name, variable in zip(unique_names(usable), usable, strict=True):
        tag: dict[str, Any] = {
            "name": name,
            "role": "info",
            "type": variable.profile_type,
            "node": profile_node(variable.node_id, namespace_index, namespaces),
        }
        if variable.unit:
            tag["unit"] = variable.unit
        if variable.eu_range is not None:
            tag["limits"] = {"low": variable.eu_range[0], "high": variable.eu_range[1]}
        if variable.writable:
            tag["writable"] = True
        if variable.description and variable.description != variable.browse_name:
            tag["description"] = variable.description  # asyncua servers default it to the name
        tags.append(tag)
    if not tags:
        raise ValueError(
            f"{endpoint_url}: no variable with a supported scalar type found"
            + (f" ({len(skipped)} skipped)" if skipped else "")
            + "; try another --root"
        )
    model = model or model_name(namespace_uri)
    document: dict[str, Any] = {
        "model": model,
        "description": f"Drafted from {endpoint_url}",
        "protocol": "opcua",
    }
    if namespace_uri is not None:
        document["opcua"] = {"namespace_uri": namespace_uri}
    document["tags"] = tags
    header = [
        f"# Draft profile of {endpoint_url}, made by `forgeline profiles browse` on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "# Review before use: every tag has role 'info'; set the state (with 'states'), counters",
        "# and process parameters, deadbands, scan classes and which tags may really be written.",
    ]
    header += [f"# skipped {line}" for line in skipped]
    body = yaml.safe_dump(
        document, sort_keys=False, allow_unicode=True, default_flow_style=False, width=4096
    )
    text = "\n".join(header) + "\n" + body
    parse_profile(text, f"draft of {endpoint_url}")  # the draft must validate as written
    return Draft(text, model, namespace_uri, len(tags), skipped)


async def draft_profile(
    endpoint_url: str,
    *,
    namespace_uri: str | None = None,
    root: str | None = None,
    model: str | None = None,
    username: str | None = None,
    password: str | None = None,
    security: SecuritySettings | None = None,
    timeout_s: float = 4.0,
) -> Draft:
    """Connect, walk the address space below ``root`` (a profile-style node id; default the
    Objects folder) and draft a profile; raises FieldBusError subclasses when the server
    cannot be reached or refuses, ValueError for a bad ``root`` or nothing to draft."""
    link = OpcUaLink(endpoint_url, timeout_s, username, password, security=security)
    await link.connect()
    try:
        namespaces = await link.namespace_array()
        if namespace_uri is not None and namespace_uri not in namespaces:
            raise ValueError(
                f"{endpoint_url} has no namespace {namespace_uri!r} (it has: "
                f"{', '.join(namespaces)})"
            )
        start = (await link.resolve([root], namespace_uri))[0] if root else None
        variables = await browse_variables(link, start)
    finally:
        await link.close()
    return draft_from_variables(variables, namespaces, endpoint_url, namespace_uri, model)


def run_browse(
    endpoint_url: str,
    out: Path | None,
    namespace_uri: str | None,
    root: str | None,
    model: str | None,
    username: str | None,
    password: str | None,
    security: str = "None",
    pki_dir: Path | None = None,
) -> int:
    """The body of ``forgeline profiles browse``: the exit code (0 drafted, 1 failed)."""
    policy, _, mode = security.partition("/")
    try:
        settings = SecuritySettings(
            cast(SecurityPolicyName, policy), cast(SecurityModeName, mode or "None"), pki_dir
        )
        draft = asyncio.run(
            draft_profile(
                endpoint_url,
                namespace_uri=namespace_uri,
                root=root,
                model=model,
                username=username,
                password=password,
                security=settings,
            )
        )
    except (FieldBusError, ValueError) as exc:
        click.echo(f"browse failed: {exc}", err=True)
        return 1
    if out is None:
        click.echo(draft.text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(draft.text, encoding="utf-8")
        click.echo(
            f"wrote {out}: model {draft.model}, {draft.tags} tags"
            + (
                f", {len(draft.skipped)} variables skipped (listed in the file)"
                if draft.skipped
                else ""
            )
            + f"; check it with: forgeline profiles validate {out}",
            err=True,
        )
    return 0
