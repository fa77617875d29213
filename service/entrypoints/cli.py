"""`amili-sync`: the command line of the service.

Subcommands (a contract: scripts and people drive the service through these names):
  run      the worker: consumes fetch requests and publishes change events
  request  send a fetch request for a client
  tail     print events from the event topics (read_committed)
  sync     one-shot run for a client, no request message needed (progress bar, summary)
  sandbox  the Amili ARM sandbox HTTP server (for trying and testing without Amili)
  config   print the effective settings, `.env.example` or the README table
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from service import tracing
from service.config import Settings, SettingsError, load_settings, render_env_example, render_markdown_table
from service.logs import configure_logging
from service.version import VERSION


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amili-sync",
        description="Sync Amili ARM customers to per-customer Kafka change events, exactly once.",
    )
    parser.add_argument("--version", action="version", version=f"amili-sync {VERSION}")
    sub = parser.add_subparsers(
        dest="command", metavar="{run,request,tail,sync,sandbox,config}", required=True
    )

    sub.add_parser("run", help="run the worker (consumes fetch requests, publishes change events)")

    req = sub.add_parser("request", help="send fetch requests, one per client")
    req.add_argument(
        "--client",
        type=int,
        action="append",
        default=[],
        help="Amili client number; repeatable (one request per client)",
    )
    req.add_argument(
        "--clients-file",
        type=Path,
        metavar="PATH",
        help="file of client numbers, one per line (blank lines and # comments skipped)",
    )
    req.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="K=V",
        help="filter (customerno, accountno, organizationno, name, customercategory); repeatable",
    )
    req.add_argument("--reason", help="free text carried into the run result")
    req.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to this long for the run results and print them",
    )

    tail = sub.add_parser("tail", help="print events (read_committed), one line each")
    tail.add_argument(
        "--topic",
        action="append",
        default=[],
        help="topic (full name or suffix such as balance-changed); default: every event topic",
    )
    tail.add_argument("--from-beginning", action="store_true", help="start at the earliest offset")
    tail.add_argument("--json", action="store_true", help="JSON lines instead of readable lines")
    tail.add_argument("--max", type=int, default=0, help="stop after this many events (0: never)")
    tail.add_argument(
        "--idle-timeout",
        type=float,
        default=0.0,
        help="stop after this many seconds without a new event (0: never)",
    )

    sync = sub.add_parser("sync", help="one-shot sync of a client (same engine, exactly-once), with progress")
    sync.add_argument("--client", type=int, required=True, help="Amili client number")
    sync.add_argument("--filter", action="append", default=[], metavar="K=V", help="filter; repeatable")
    sync.add_argument("--no-progress", action="store_true", help="no progress bar")

    sandbox = sub.add_parser(
        "sandbox", help="run the Amili ARM sandbox server (see `amili-sync sandbox --help`)", add_help=False
    )
    sandbox.add_argument("args", nargs=argparse.REMAINDER)

    cfg = sub.add_parser("config", help="print the effective settings (secrets masked) or generated docs")
    group = cfg.add_mutually_exclusive_group()
    group.add_argument("--env-example", action="store_true", help="print .env.example")
    group.add_argument("--markdown", action="store_true", help="print the README configuration table")
    return parser


def parse_filters(items: Sequence[str]) -> dict[str, str]:
    filters: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"amili-sync: --filter wants K=V, got {item!r}")
        filters[key.strip().lower()] = value
    return filters


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sandbox"]:  # its own parser (argparse's REMAINDER would not pass --options)
        from service.sandbox.__main__ import main as sandbox_main

        return sandbox_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "config" and (args.env_example or args.markdown):
        sys.stdout.write(render_env_example() if args.env_example else render_markdown_table())
        return 0
    try:
        settings = load_settings(require_api=args.command in ("run", "sync"))
    except SettingsError as exc:
        print(f"amili-sync: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format.value, settings.log_level)
    tracing.configure_tracing()  # only when OTEL_* variables ask for it
    try:
        return asyncio.run(_dispatch(args, settings))
    finally:
        tracing.shutdown_tracing()  # export the spans still buffered


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "config":
        import json

        print(json.dumps(settings.model_dump(mode="json"), indent=2))
        return 0
    if args.command == "run":
        from service.entrypoints.app import run_worker

        return await run_worker(settings)
    if args.command == "request":
        from service.entrypoints.request import ClientListError, read_clients_file, send_requests, unique

        try:
            clients = unique(
                [*args.client, *(read_clients_file(args.clients_file) if args.clients_file else [])]
            )
        except ClientListError as exc:
            print(f"amili-sync request: {exc}", file=sys.stderr)
            return 2
        if not clients:
            print(
                "amili-sync request: no client: give --client N (repeatable) or --clients-file",
                file=sys.stderr,
            )
            return 2
        return await send_requests(settings, clients, parse_filters(args.filter), args.reason, args.wait)
    if args.command == "tail":
        from service.entrypoints.tail import tail

        return await tail(settings, args.topic, args.from_beginning, args.json, args.max, args.idle_timeout)
    if args.command == "sync":
        from service.entrypoints.oneshot import sync_once

        return await sync_once(
            settings, args.client, parse_filters(args.filter), progress=not args.no_progress
        )
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
