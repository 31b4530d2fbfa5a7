"""The ``forgeline`` command line: one entry point for the demo, the simulators, edge and cloud.

Each command imports what it needs when it runs, so an edge-only install (``forgeline[edge]``)
has a working CLI without the cloud's dependencies.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from forgeline.cli_import import import_command
from forgeline.cli_spc import spc as spc_command
from forgeline.cli_trace import trace as trace_command
from forgeline.logs import configure_logging

_LOG_LEVEL = click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Least severe log level printed.",
)
_LOG_FORMAT = click.option(
    "--log-format",
    default="text",
    show_default=True,
    type=click.Choice(["text", "json"]),
    help="Log lines as key=value text or one JSON object per line.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="forgeline")
def main() -> None:
    """forgeline: PLCs → edge agent → MQTT → cloud MOM core, without losing a reading."""


@main.command()
@click.option(
    "--duration",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Run this long, then drain the edge's log and exit cleanly (default: until Ctrl-C).",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the end-of-run accounting (read/published/stored/pending/lost per machine) as JSON here.",
)
@click.option(
    "--mqtt-url",
    default=None,
    metavar="URL",
    help="Use this broker (mqtt://user:pass@host:port) instead of starting the embedded one.",
)
@click.option(
    "--db-url",
    default=None,
    metavar="URL",
    help="SQLAlchemy URL of the cloud database (default: a SQLite file in the data dir).",
)
@click.option(
    "--api-port",
    type=int,
    default=8000,
    show_default=True,
    help="Port of the cloud API and its OpenAPI page (/docs) on 127.0.0.1.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the run keeps its files (default: a fresh temporary directory per run).",
)
@click.option(
    "--scenario",
    default="demo",
    show_default=True,
    help="Simulated plant: a built-in scenario name or a scenario YAML file.",
)
@click.option("--no-live", is_flag=True, help="Print a progress line instead of the live table.")
@_LOG_LEVEL
def demo(
    duration: float | None,
    report: Path | None,
    mqtt_url: str | None,
    db_url: str | None,
    api_port: int,
    data_dir: Path | None,
    scenario: str,
    no_live: bool,
    log_level: str,
) -> None:
    """Run the whole plant on this machine: simulated PLCs, broker, edge agent, cloud and API."""
    from forgeline.demo import DemoOptions, run_demo

    configure_logging(log_level, process="demo")
    options = DemoOptions(
        duration_s=duration,
        report=report,
        mqtt_url=mqtt_url,
        db_url=db_url,
        api_port=api_port,
        data_dir=data_dir,
        scenario=scenario,
        live=not no_live and sys.stdout.isatty(),
        log_level=log_level,
    )
    sys.exit(run_demo(options))


@main.group(invoke_without_command=True, subcommand_metavar="[fault DEVICE KIND [OPTIONS]]")
@click.option(
    "--scenario",
    default=None,
    metavar="NAME|FILE",
    help="A built-in scenario (e.g. demo) or a scenario YAML file describing the plant (required to run one).",
)
@click.option(
    "--endpoints-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write every device's endpoint here (JSON, atomically) once all servers listen.",
)
@click.option(
    "--duration",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Stop after this long (default: until SIGTERM or Ctrl-C).",
)
@_LOG_LEVEL
@_LOG_FORMAT
@click.pass_context
def sim(ctx: click.Context, scenario: str | None, endpoints_file: Path | None,
        duration: float | None, log_level: str, log_format: str) -> None:  # fmt: skip
    """Serve a simulated plant: one Modbus TCP or OPC UA server per machine.

    `forgeline sim fault ...` injects a fault into a running one.
    """
    ctx.obj = {"endpoints_file": endpoints_file}
    if ctx.invoked_subcommand is not None:
        return
    if scenario is None:
        raise click.UsageError("Missing option '--scenario' (a built-in name such as demo, or a file).")  # fmt: skip
    from simulators.runner import run_scenario

    configure_logging(log_level, log_format, process="sim")
    asyncio.run(run_scenario(scenario, endpoints_file, duration))


@sim.command("fault")
@click.argument("device")
@click.argument("kind", metavar="stop|drop|bad|excursion",
                type=click.Choice(["stop", "drop", "bad", "excursion"]))  # fmt: skip
@click.option(
    "--for",
    "duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="How long stop, bad and excursion last before the device recovers (default 30 s). "
    "drop happens once and takes no duration.",
)
@click.option("--metric", "metrics", multiple=True, metavar="TAG",
              help="excursion: the analogue tag to hold (required). bad: tags to mark bad "
              "(repeatable; default every tag).")  # fmt: skip
@click.option("--value", type=float, default=None, help="excursion: the value to hold.")
@click.option(
    "--endpoints-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The running sim's endpoints file (default: the sim this user started last).",
)
@click.pass_context
def sim_fault(ctx: click.Context, device: str, kind: str, duration: float | None,
              metrics: tuple[str, ...], value: float | None,
              endpoints_file: Path | None) -> None:  # fmt: skip
    """Inject a fault into DEVICE of a running `forgeline sim`.

    \b
    stop       the device stops answering (Modbus: requests time out; OPC UA: listener down)
    drop       open connections are closed once; reconnecting works
    bad        Modbus reads answer exception 4; OPC UA values carry BadSensorFailure
    excursion  --metric TAG is held at --value
    """
    from simulators.control import ControlError, FaultRequest, inject_fault

    endpoints_file = endpoints_file or (ctx.obj or {}).get("endpoints_file")
    try:
        request = FaultRequest(device, kind, duration, tuple(metrics), value)  # type: ignore[arg-type]
        click.echo(inject_fault(request, endpoints_file))
    except ControlError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option(
    "--config",
    "config_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Edge YAML config (see deploy/edge.sample.yaml for every option and default).",
)
@_LOG_LEVEL
@_LOG_FORMAT
def edge(config_file: Path, log_level: str, log_format: str) -> None:
    """Run the edge agent: poll the configured PLCs and stream their readings over MQTT."""
    from edge.agent import run_edge
    from edge.config import EdgeConfigError, load_edge_config
    from protocols.errors import ProfileError

    configure_logging(log_level, log_format, process="edge")
    try:
        config = load_edge_config(config_file)
        code = asyncio.run(run_edge(config))
    except (ProfileError, EdgeConfigError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(code)


@main.command()
@click.option(
    "--config",
    "config_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Cloud YAML config (see deploy/cloud.sample.yaml); options below override it.",
)
@click.option(
    "--mqtt-url",
    default=None,
    metavar="URL",
    help="Broker to ingest from (mqtt://user:pass@host:port).",
)
@click.option(
    "--db-url",
    default=None,
    metavar="URL",
    help="SQLAlchemy database URL (sqlite:///path or postgresql+psycopg://...).",
)
@click.option("--api-port", type=int, default=None, help="Port of the REST API (default 8000).")
@_LOG_LEVEL
@_LOG_FORMAT
def cloud(config_file: Path | None, mqtt_url: str | None, db_url: str | None,
          api_port: int | None, log_level: str, log_format: str) -> None:  # fmt: skip
    """Run the cloud core: ingest worker (MQTT → database) and the REST API."""
    from cloud.config import CloudConfig, load_cloud_config
    from cloud.service import run_cloud
    from protocols.errors import ProfileError

    configure_logging(log_level, log_format, process="cloud")
    try:
        config = load_cloud_config(config_file) if config_file else CloudConfig()
    except ProfileError as exc:
        raise click.ClickException(str(exc)) from exc
    overrides = {
        k: v
        for k, v in {"mqtt_url": mqtt_url, "db_url": db_url, "api_port": api_port}.items()
        if v is not None
    }
    try:
        config = config.with_overrides(**overrides)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    run_cloud(config)


@main.group()
def profiles() -> None:
    """Device profiles: the tag maps of machine models."""


@profiles.command("validate")
@click.argument("files", nargs=-1, required=True)
def profiles_validate(files: tuple[str, ...]) -> None:
    """Check profile files (or built-in profile names); errors name file, line and field."""
    from device_profiles import profile_path
    from protocols.errors import ProfileError
    from protocols.profile import load_profile

    failed = 0
    for name in files:
        try:
            profile = load_profile(profile_path(name))
        except (ProfileError, FileNotFoundError) as exc:
            failed += 1
            click.echo(f"FAIL {name}\n{exc}", err=True)
            continue
        click.echo(f"ok   {name}: {profile.model} ({profile.protocol}, {len(profile.tags)} tags)")
    if failed:
        raise SystemExit(1)


@profiles.command("list")
def profiles_list() -> None:
    """List the built-in profiles."""
    from device_profiles import available, profile_path
    from protocols.profile import load_profile

    for name in available():
        profile = load_profile(profile_path(name))
        click.echo(
            f"{name:32} {profile.protocol:11} {len(profile.tags):3} tags  {profile.description or ''}"
        )


@profiles.command("browse")
@click.argument("endpoint_url", metavar="opc.tcp://HOST:PORT[/PATH]")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the draft profile here (default: print it).",
)
@click.option(
    "--namespace",
    "namespace_uri",
    default=None,
    metavar="URI",
    help="The profile's opcua.namespace_uri (default: the one most variables are in).",
)
@click.option(
    "--root",
    default=None,
    metavar="NODE",
    help="Start below this node, e.g. 'ns=2;s=Press', or 's=Press' with --namespace "
    "(default: the Objects folder).",
)
@click.option("--model", default=None, help="Profile model name (default: from the namespace URI).")
@click.option("--username", default=None, help="Log in as this user.")
@click.option("--password", default=None, help="Password of --username.")
@click.option(
    "--security",
    default="None",
    show_default=True,
    type=click.Choice(["None", "Basic256Sha256/Sign", "Basic256Sha256/SignAndEncrypt"]),
    help="Security policy/mode of the session.",
)
@click.option(
    "--pki-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Certificates for a secure session (own/, trusted/), e.g. the edge's data_dir/pki.",
)
def profiles_browse(endpoint_url: str, out: Path | None, namespace_uri: str | None,
                    root: str | None, model: str | None, username: str | None,
                    password: str | None, security: str, pki_dir: Path | None) -> None:  # fmt: skip
    """Walk an OPC UA server's address space and write a draft device profile."""
    from forgeline.browse import run_browse

    code = run_browse(
        endpoint_url, out, namespace_uri, root, model, username, password, security, pki_dir
    )
    sys.exit(code)


@main.group()
def mqtt() -> None:
    """MQTT tools."""


@mqtt.command("tail")
@click.option(
    "--mqtt-url",
    default="mqtt://127.0.0.1:1883",
    show_default=True,
    metavar="URL",
    help="Broker to listen to.",
)
@click.option(
    "--topic",
    "topics",
    multiple=True,
    default=["forgeline/#"],
    show_default=True,
    metavar="FILTER",
    help="Topic filter; repeat for several.",
)
@click.option("--count", type=int, default=None, help="Exit after this many messages.")
@click.option("--raw", is_flag=True, help="Print payloads as they are instead of decoding them.")
def mqtt_tail(mqtt_url: str, topics: tuple[str, ...], count: int | None, raw: bool) -> None:
    """Print wire messages as they arrive, decoded and checked against the wire contract."""
    from forgeline.tail import tail

    sys.exit(tail(mqtt_url, list(topics), count, raw))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=1883, show_default=True, help="Port to listen on.")
@_LOG_LEVEL
def broker(host: str, port: int, log_level: str) -> None:
    """Run the embedded MQTT broker (amqtt) used by the demo; use Mosquitto in production."""
    from forgeline.broker import run_broker

    configure_logging(log_level, process="broker")
    asyncio.run(run_broker(host, port))


main.add_command(import_command)
main.add_command(trace_command)
main.add_command(spc_command)
