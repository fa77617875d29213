"""Start the sandbox as a real subprocess for tests: `with running_sandbox({2218: 500}) as sb: ...`.

The server runs as `python -m service sandbox --host 127.0.0.1 --port <free port> ...`, so tests
talk to it over real sockets, exactly as the worker talks to Amili.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

DEFAULT_CLIENT_ID = "sandbox-client"
DEFAULT_CLIENT_SECRET = "sandbox-secret"  # noqa: S105 - the sandbox's documented default
START_TIMEOUT = 20.0


@dataclass
class SandboxHandle:
    base_url: str  # e.g. http://127.0.0.1:PORT/arm/v1
    token_url: str  # e.g. http://127.0.0.1:PORT/token
    control_url: str  # e.g. http://127.0.0.1:PORT/_sandbox
    client_id: str
    client_secret: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """SIGTERM, then kill after 5 s. Safe to call twice."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _option(args: Sequence[str], name: str, default: str) -> str:
    value = default
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def _read(f: IO[bytes]) -> str:
    f.flush()
    f.seek(0)
    return f.read().decode("utf-8", "replace")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - http://127.0.0.1 only
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running_sandbox(
    clients: dict[int, int], seed: int = 7, extra_args: Sequence[str] = ()
) -> Iterator[SandboxHandle]:
    """Run a sandbox subprocess on a free port until the block ends."""
    host = "127.0.0.1"
    spec = ",".join(f"{no}={n}" for no, n in clients.items())
    base_path = "/" + _option(extra_args, "--base-path", "/arm/v1").strip("/")
    token_path = "/" + _option(extra_args, "--token-path", "/token").strip("/")
    client_id = _option(extra_args, "--client-id", DEFAULT_CLIENT_ID)
    client_secret = _option(extra_args, "--client-secret", DEFAULT_CLIENT_SECRET)
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    last_error = ""
    for _attempt in range(3):
        port = free_port(host)
        out = tempfile.TemporaryFile()  # noqa: SIM115 - kept open while the server runs, closed below
        err = tempfile.TemporaryFile()  # noqa: SIM115
        # "--" lets service/entrypoints/cli.py's REMAINDER argument take options; the sandbox's main() drops it.
        cmd = [
            sys.executable,
            "-m",
            "service",
            "sandbox",
            "--",
            "--host",
            host,
            "--port",
            str(port),
            "--clients",
            spec,
            "--seed",
            str(seed),
            *extra_args,
        ]
        process = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=root)
        origin = f"http://{host}:{port}"
        handle = SandboxHandle(
            base_url=origin + (base_path if base_path != "/" else ""),
            token_url=origin + token_path,
            control_url=origin + "/_sandbox",
            client_id=client_id,
            client_secret=client_secret,
            process=process,
        )
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while True:
                if process.poll() is not None:
                    last_error = _read(err)
                    break
                if _healthy(origin + "/health"):
                    break
                if time.monotonic() > deadline:
                    handle.stop()
                    raise RuntimeError(
                        f"sandbox did not answer /health within {START_TIMEOUT:.0f}s:\n{_read(err)}"
                    )
                time.sleep(0.05)
            if process.poll() is not None:
                if "cannot listen" in last_error:
                    continue  # the free port was taken meanwhile: try another
                raise RuntimeError(f"sandbox exited with {process.returncode}:\n{last_error}")
            try:
                yield handle
            finally:
                handle.stop()
            return
        finally:
            out.close()
            err.close()
    raise RuntimeError(f"sandbox could not start:\n{last_error}")
