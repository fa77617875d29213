"""What one sandbox process holds: the clients' data, open queries, rendered pages, faults, counters."""

from __future__ import annotations

from collections import Counter

from service.sandbox.config import SWITCHES, SandboxConfig
from service.sandbox.faults import FaultEngine
from service.sandbox.queries import PageCache, QueryStore
from service.sandbox.store import ClientData
from service.sandbox.tokens import TokenIssuer


class Stats:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.by_route: dict[str, Counter[str]] = {}
        self.tokens_issued = 0

    def record(self, route: str, status: int | str) -> None:
        key = str(status)
        self.requests[key] += 1
        self.by_route.setdefault(route, Counter())[key] += 1


class SandboxState:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.base_path = "/" + config.base_path.strip("/") if config.base_path.strip("/") else ""
        self.token_path = "/" + config.token_path.strip("/")
        self.clients = {
            no: ClientData(no, n, config.seed, config.client_name_mix.get(no, config.name_mix))
            for no, n in config.clients.items()
        }
        self.initial_switches = config.switches()
        self.queries = QueryStore(config.query_ttl, config.max_open_queries)
        self.pages = PageCache(config.page_cache_bytes)
        self.faults = FaultEngine()
        self.stats = Stats()
        token_clients = config.token_clients if config.token_clients is not None else tuple(config.clients)
        self.tokens = TokenIssuer(
            secret=config.jwt_secret,
            ttl=config.token_ttl,
            client_id=config.client_id,
            client_secret=config.client_secret,
            clients=token_clients,
            static_tokens=config.static_tokens,
            numbers_as_strings=config.token_numbers_as_strings,
        )
        if config.faults is not None:
            self.faults.set(config.faults, config.seed)

    def reset(self) -> None:
        for client in self.clients.values():
            client.overlay.clear()
            client.by_no.clear()
            client.next_key = client.n
            client.count = client.n
        self.queries.clear()
        self.pages.clear()
        self.faults.clear()
        self.faults.reset_counters()
        self.stats = Stats()
        for key, value in self.initial_switches.items():
            setattr(self.config, SWITCHES[key][0], value)

    def classify(self, method: str, path: str) -> tuple[str | None, int | None]:
        """(route, client number) of an API request; route None for health, controls and unknown paths."""
        if path == self.token_path:
            return ("token" if method == "POST" else "other"), None
        prefix = self.base_path + "/clients/"
        if not path.startswith(prefix):
            return None, None
        parts = path[len(prefix) :].split("/")
        client_no = int(parts[0]) if parts[0].isdigit() else None
        if len(parts) in (2, 3) and parts[1] == "customers":
            if method == "GET":
                return ("list" if len(parts) == 2 else "one"), client_no
            return "write", client_no
        return "other", client_no
