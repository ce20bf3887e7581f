"""Command line of the local stack: run, up, down and status."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from covid_common import names

from local import run as run_command
from local.config import (
    DEFAULT_PORTS,
    DEFAULT_STATE_DIR,
    PORTS_ENV,
    ConfigError,
    from_environment,
    parse_ports,
)
from local.health import StackConflict, StackError
from local.stack import LocalStack
from local.supervisor import SupervisorError

log = logging.getLogger("local")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local",
        description="Run the COVID-19 ingestion pipeline on this machine.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="directory for configuration, logs and data (default: %(default)s)",
    )
    common.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="NAME=PORT",
        help="listen port override, repeatable; NAME is one of "
        + ", ".join(DEFAULT_PORTS)
        + f" (also settable as {PORTS_ENV}=NAME=PORT,...)",
    )
    common.add_argument(
        "--timeout",
        type=float,
        default=120,
        help="seconds to wait for the stack to become healthy (default: %(default)s)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run",
        parents=[common],
        help="start the stack, run Locust through nginx, print a summary, stop",
    )
    run.add_argument(
        "--duration",
        type=_positive_int,
        default=60,
        help="seconds of load (default: %(default)s)",
    )
    run.add_argument(
        "--users",
        type=_positive_int,
        default=run_command.DEFAULT_USERS,
        help="concurrent Locust users (default: %(default)s)",
    )
    run.add_argument(
        "--spawn-rate",
        type=float,
        default=run_command.DEFAULT_SPAWN_RATE,
        help="users started per second (default: %(default)s)",
    )
    run.add_argument(
        "--traffic-file",
        type=Path,
        help="JSON array of records to replay in a loop instead of random records",
    )
    run.add_argument(
        "--output",
        type=Path,
        default=run_command.DEFAULT_OUTPUT,
        help="where to write the summary JSON (default: %(default)s)",
    )
    run.add_argument(
        "--drain-timeout",
        type=float,
        default=run_command.DEFAULT_DRAIN_TIMEOUT_S,
        help="seconds to wait after the load for accepted records to be stored "
        "(default: %(default)s)",
    )

    commands.add_parser(
        "up", parents=[common], help="start the stack, print its URLs, leave it running"
    )
    commands.add_parser("down", parents=[common], help="stop a stack started by up")
    commands.add_parser("status", parents=[common], help="list the stack's processes")
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _print_urls(urls: dict[str, str]) -> None:
    # The two URLs a user opens first get their purpose next to the name.
    purposes = {"ingress": f"POST {names.CASES_ROUTE} here"}
    for name, url in urls.items():
        purpose = f"  ({purposes[name]})" if name in purposes else ""
        print(f"  {name:<12} {url}{purpose}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s local: %(message)s", datefmt="%H:%M:%S"
    )
    try:
        overrides = parse_ports(",".join(args.port), "--port")
        config = from_environment(state_dir=args.state_dir, port_overrides=overrides)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stack = LocalStack(config)

    try:
        if args.command == "run":
            options = run_command.RunOptions(
                duration_s=args.duration,
                users=args.users,
                spawn_rate=args.spawn_rate,
                traffic_file=args.traffic_file,
                output=args.output,
                drain_timeout_s=args.drain_timeout,
                start_timeout_s=args.timeout,
            )
            return run_command.run(stack, options)
        if args.command == "up":
            stack.start(timeout_s=args.timeout)
            print("The local stack is up:")
            _print_urls(stack.describe()["urls"])
            print(f"Stop it with {stack.down_command()}.")
            return 0
        if args.command == "down":
            report = stack.stop()
            if not report.stopped:
                print(f"No local stack runs from {stack.paths.root}.")
            return 1 if report.killed else 0
        for state in stack.status():
            print(f"  {state.name:<12} {state.state:<9} {state.description}")
        # The running stack's ports may differ from this shell's settings.
        print("URLs:")
        _print_urls(json.loads(stack.paths.stack_file.read_text())["urls"])
        return 0
    except StackConflict as error:
        # Nothing was started or stopped; the other stack keeps running.
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (StackError, SupervisorError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
