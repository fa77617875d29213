"""`amili-sync sandbox ...` (or `python -m service.sandbox ...`): run the Amili ARM sandbox server.

Example:
    amili-sync sandbox --port 8700 --clients 2218=50000,3000=500 --seed 7
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from service.sandbox.data import MAX_CUSTOMERS_PER_CLIENT
from service.sandbox.faults import FaultSpecError


def parse_clients(text: str) -> dict[int, int]:
    """ "2218=50000,3000=500" -> {2218: 50000, 3000: 500}."""
    clients: dict[int, int] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        no, sep, count = item.partition("=")
        if not sep or not no.strip().isdigit() or not count.strip().isdigit():
            raise argparse.ArgumentTypeError(f"want CLIENTNO=COUNT[,CLIENTNO=COUNT...], got {item!r}")
        n = int(count)
        if n > MAX_CUSTOMERS_PER_CLIENT:
            raise argparse.ArgumentTypeError(
                f"at most {MAX_CUSTOMERS_PER_CLIENT} customers per client, got {n}"
            )
        clients[int(no)] = n
    if not clients:
        raise argparse.ArgumentTypeError("at least one client is needed")
    return clients


def parse_name_mix(text: str) -> tuple[str, dict[int, str]]:
    """ "dense" -> every client; "2218=dense,3000=stuck" -> per client (others classic)."""
    from service.sandbox.names import NAME_MIXES

    default, per_client = "classic", {}
    for item in (s.strip() for s in text.split(",")):
        no, sep, mix = item.rpartition("=")
        if mix not in NAME_MIXES or (sep and not no.strip().isdigit()):
            raise argparse.ArgumentTypeError(f"want MIX or CLIENTNO=MIX[,...] with MIX one of {NAME_MIXES}")
        if sep:
            per_client[int(no)] = mix
        else:
            default = mix
    return default, per_client


def parse_client_list(text: str) -> tuple[int, ...]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not all(s.isdigit() for s in items):
        raise argparse.ArgumentTypeError(f"want CLIENTNO[,CLIENTNO...], got {text!r}")
    return tuple(int(s) for s in items)


def parse_faults(text: str) -> Any:
    """A fault spec as JSON, or @path to a JSON file."""
    raw = Path(text[1:]).read_text() if text.startswith("@") else text
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--faults is not valid JSON: {exc}") from None


# One flat add_argument per flag (alike in shape, kept so): --help and this list read the same.
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="amili-sync sandbox",
        description="Run the Amili ARM sandbox: customer endpoints with generated data, a token endpoint, "
        "test controls under /_sandbox and switchable faults. See service/sandbox/README.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    p.add_argument("--port", type=int, default=8700, help="port to listen on (0: any free port)")
    p.add_argument(
        "--clients", type=parse_clients, default="2218=1000", help="CLIENTNO=COUNT,... customers per client"
    )
    p.add_argument("--seed", type=int, default=7, help="data seed: same seed, same customers")
    p.add_argument("--base-path", default="/arm/v1", help="path prefix of the ARM endpoints")
    p.add_argument("--token-path", default="/token", help="path of the token endpoint")
    p.add_argument(
        "--public-url",
        default=None,
        help="scheme://host:port used in nextPage/lastPage; None: the request's own",
    )
    p.add_argument("--client-id", default="sandbox-client", help="accepted client_id")
    p.add_argument("--client-secret", default="sandbox-secret", help="accepted client_secret")
    p.add_argument(
        "--static-token",
        action="append",
        default=[],
        help="a bearer token accepted for every client (repeatable)",
    )
    p.add_argument("--token-ttl", type=int, default=3600, help="lifetime of issued tokens, seconds")
    p.add_argument(
        "--token-clients",
        type=parse_client_list,
        default=None,
        help="client numbers issued tokens may access; None: every configured client",
    )
    p.add_argument("--jwt-secret", default=None, help="HS256 signing key; None: random per start")
    p.add_argument(
        "--token-numbers",
        choices=("int", "string"),
        default="int",
        help="expires_in/expires_on/not_before as JSON numbers or as strings",
    )
    p.add_argument(
        "--query-ttl", type=float, default=900.0, help="seconds a queryId lives after it was created"
    )
    p.add_argument(
        "--max-open-queries", type=int, default=10_000, help="oldest queries expire beyond this many"
    )
    p.add_argument(
        "--total-count",
        choices=("true", "capped"),
        default="true",
        help="summary.totalCount: every match, or capped at maximumCount",
    )
    p.add_argument(
        "--next-page-on-last",
        choices=("null", "absent"),
        default="null",
        help="summary.nextPage on the last page: null, or left out",
    )
    p.add_argument(
        "--over-cap",
        choices=("clamp", "error"),
        default="clamp",
        help="pagesize/maximumcount above the cap: clamp to the cap, or 400",
    )
    p.add_argument(
        "--list-order",
        choices=("key", "name"),
        default="key",
        help="order of every listing: customerNo (key) order, or by name (first pages are then not a sample)",
    )
    p.add_argument(
        "--customerno-filter",
        choices=("exact", "prefix"),
        default="exact",
        help="the customerno list filter: exact match, or prefix match",
    )
    p.add_argument(
        "--name-mix",
        type=parse_name_mix,
        default=("classic", {}),
        help="generated names: classic, dense (dense families beyond the cap) or stuck (names a prefix "
        "cannot separate); MIX for every client or CLIENTNO=MIX,...",
    )
    p.add_argument("--page-size-default", type=int, default=100, help="pagesize when not given")
    p.add_argument("--page-size-cap", type=int, default=1000, help="largest pagesize")
    p.add_argument("--maximum-count-cap", type=int, default=10_000, help="default and largest maximumcount")
    p.add_argument(
        "--no-prefetch",
        action="store_true",
        help="do not render page n+1 of a query in advance after serving page n",
    )
    p.add_argument(
        "--faults", type=parse_faults, default=None, help="fault spec JSON (or @file) active from the start"
    )
    p.add_argument(
        "--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug")
    )
    p.add_argument("--access-log", action="store_true", help="log every request")
    return p


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when proto is TCP, and
    # without it every keep-alive response waits ~40 ms (Nagle + delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(argv) if argv is not None else sys.argv[1:]
    if arguments[:1] == ["--"]:
        arguments = arguments[
            1:
        ]  # `amili-sync sandbox -- --port ...`: service/entrypoints/cli.py forwards the "--"
    args = build_parser().parse_args(arguments)
    started = time.perf_counter()
    import uvicorn

    from service.sandbox.app import SandboxConfig, create_app

    config = SandboxConfig(
        clients=args.clients,
        seed=args.seed,
        base_path=args.base_path,
        token_path=args.token_path,
        client_id=args.client_id,
        client_secret=args.client_secret,
        static_tokens=tuple(args.static_token),
        token_ttl=args.token_ttl,
        token_clients=args.token_clients,
        jwt_secret=args.jwt_secret,
        token_numbers_as_strings=args.token_numbers == "string",  # noqa: S105 - not a secret
        query_ttl=args.query_ttl,
        max_open_queries=args.max_open_queries,
        total_count=args.total_count,
        next_page_on_last=args.next_page_on_last,
        over_cap=args.over_cap,
        page_size_default=args.page_size_default,
        page_size_cap=args.page_size_cap,
        maximum_count_cap=args.maximum_count_cap,
        public_url=args.public_url,
        faults=args.faults,
        prefetch=not args.no_prefetch,
        list_order=args.list_order,
        customer_no_filter=args.customerno_filter,
        name_mix=args.name_mix[0],
        client_name_mix=args.name_mix[1],
    )
    try:
        app = create_app(config)
    except FaultSpecError as exc:
        print(f"amili-sync sandbox: --faults: {exc}", file=sys.stderr)
        return 2
    try:
        sock = _bind(args.host, args.port)
    except OSError as exc:
        print(f"amili-sync sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    host, port = sock.getsockname()[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
    state = app.state
    clients = ", ".join(f"{no}={n}" for no, n in config.clients.items())
    print(
        f"amili sandbox base URL:  http://{shown}:{port}{state.base_path}  (clients {clients}, seed {config.seed})"
    )
    print(f"amili sandbox token URL: http://{shown}:{port}{state.token_path}")
    statics = f", or a static bearer token ({len(config.static_tokens)})" if config.static_tokens else ""
    print(
        f"amili sandbox credentials: client_id={config.client_id} client_secret={config.client_secret}"
        f" (grant_type=client_credentials){statics}; controls: http://{shown}:{port}/_sandbox"
    )
    print(f"amili sandbox ready in {time.perf_counter() - started:.2f}s", flush=True)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=args.log_level,
            access_log=args.access_log,
            http="h11",
            lifespan="off",
            timeout_keep_alive=30,
        )
    )
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
