#!/usr/bin/env python3
"""A real single-node Apache Kafka broker (KRaft) from the Maven Central jars, no Docker.

    scripts/kafka-local start [--data-dir DIR] [--scram user:password ...]
    scripts/kafka-local status [--data-dir DIR]
    scripts/kafka-local stop   [--data-dir DIR]
    scripts/kafka-local restart [--data-dir DIR]   # same ports, data kept (fault tests)

`start` resolves the jars (dev/kafka/pom.xml → .cache/kafka/libs), formats a KRaft directory,
starts the broker on 127.0.0.1 on free ports and returns once a Metadata request succeeds. It
prints `KAFKA_BOOTSTRAP_SERVERS=host:port` (and `KAFKA_SASL_BOOTSTRAP_SERVERS=host:port` with
--scram). It is idempotent: a running broker of the same data dir is reused. `stop` sends SIGTERM,
waits, then SIGKILL, and leaves no java process of its own. Standard library only: it runs before
the project's virtualenv exists.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POM = ROOT / "dev" / "kafka" / "pom.xml"
LIBS = Path(os.environ.get("KAFKA_LIBS_DIR", ROOT / ".cache" / "kafka" / "libs"))
DEFAULT_DATA = Path(os.environ.get("KAFKA_LOCAL_DIR", ROOT / ".cache" / "kafka" / "run"))
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")

LOG4J2 = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        Pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka
        level: WARN
      - name: org.apache.kafka
        level: WARN
      - name: kafka.server.KafkaServer
        level: INFO
      - name: kafka.server.KafkaRaftServer
        level: INFO
"""


def log(msg: str) -> None:
    print(f"kafka-local: {msg}", file=sys.stderr, flush=True)


def ensure_jars() -> None:
    if LIBS.is_dir() and any(LIBS.glob("kafka_2.13-*.jar")) and any(LIBS.glob("log4j-core-*.jar")):
        return
    if not shutil.which("mvn"):
        sys.exit(
            "kafka-local: Maven (mvn) is required to resolve the Kafka jars; install it (apt-get install maven)"
        )
    if not shutil.which("java"):
        sys.exit(
            "kafka-local: a JDK 17+ (java) is required to run the broker; install it (apt-get install openjdk-17-jre-headless)"
        )
    log(f"resolving Kafka jars into {LIBS} (first time only)")
    LIBS.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "mvn",
            "-B",
            "-q",
            "-Dstyle.color=never",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={LIBS}",
            "-DincludeScope=runtime",
        ],
        check=True,
        stdout=sys.stderr,  # stdout carries only the KEY=VALUE lines that callers eval
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def metadata_ok(host: str, port: int, timeout: float = 2.0) -> bool:
    """Send a Kafka Metadata v1 request (all topics) and check that a broker list comes back."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            client = b"kafka-local"
            # header: api_key=3 (Metadata), api_version=1, correlation_id, client_id; body: topics = null (-1)
            body = struct.pack(">hhih", 3, 1, 42, len(client)) + client + struct.pack(">i", -1)
            s.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", _recv(s, 4))[0]
            data = _recv(s, size)
            corr, n_brokers = struct.unpack(">ii", data[:8])
            return corr == 42 and n_brokers >= 1
    except (OSError, struct.error):
        return False


def _recv(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def read_state(data_dir: Path) -> dict[str, object] | None:
    f = data_dir / "state.json"
    if not f.exists():
        return None
    try:
        return dict(json.loads(f.read_text()))
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.split(")")[-1].split()[0] == "Z":
            return False
    return True


def print_endpoints(state: dict[str, object]) -> None:
    print(f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{state['port']}")
    if state.get("sasl_port"):
        print(f"KAFKA_SASL_BOOTSTRAP_SERVERS=127.0.0.1:{state['sasl_port']}")
    sys.stdout.flush()


def start(data_dir: Path, scram: list[str], heap: str, timeout: float) -> int:
    state = read_state(data_dir)
    if state and pid_alive(int(str(state["pid"]))) and metadata_ok("127.0.0.1", int(str(state["port"]))):
        wanted = sorted(u.partition(":")[0] for u in scram)
        if wanted and sorted(list(state.get("scram") or [])) != wanted:  # type: ignore[call-overload]
            log("running broker was started with other SCRAM users; stop it first")
            return 1
        log(f"already running (pid {state['pid']})")
        print_endpoints(state)
        return 0
    if state:
        stop(data_dir, quiet=True)
    ensure_jars()
    t0 = time.monotonic()
    shutil.rmtree(data_dir, ignore_errors=True)
    (data_dir / "data").mkdir(parents=True)
    port, ctrl, sasl_port = free_port(), free_port(), (free_port() if scram else 0)
    listeners = [f"PLAINTEXT://127.0.0.1:{port}", f"CONTROLLER://127.0.0.1:{ctrl}"]
    advertised = [f"PLAINTEXT://127.0.0.1:{port}"]
    protocol_map = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
    props = [
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.bootstrap.servers=127.0.0.1:{ctrl}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        f"log.dirs={data_dir / 'data'}",
        "num.partitions=3",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=10",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "transaction.state.log.num.partitions=10",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=false",
        "log.cleaner.backoff.ms=1000",
        "transaction.remove.expired.transaction.cleanup.interval.ms=60000",
    ]
    if scram:
        listeners.append(f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}")
        advertised.append(f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}")
        protocol_map.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
        props.append("sasl.enabled.mechanisms=" + ",".join(SCRAM_MECHANISMS))
        for mech in SCRAM_MECHANISMS:
            props.append(
                f"listener.name.sasl_plaintext.{mech.lower()}.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
    props += [
        "listeners=" + ",".join(listeners),
        "advertised.listeners=" + ",".join(advertised),
        "listener.security.protocol.map=" + ",".join(protocol_map),
    ]
    (data_dir / "server.properties").write_text("\n".join(props) + "\n")
    (data_dir / "log4j2.yaml").write_text(LOG4J2)
    cp = f"{LIBS}/*"
    cluster_id = subprocess.run(
        ["java", "-cp", cp, "kafka.tools.StorageTool", "random-uuid"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    fmt = [
        "java",
        "-cp",
        cp,
        "kafka.tools.StorageTool",
        "format",
        "-c",
        str(data_dir / "server.properties"),
        "-t",
        cluster_id,
        "--standalone",
    ]
    for user in scram:
        name, _, password = user.partition(":")
        for mech in SCRAM_MECHANISMS:
            fmt += ["--add-scram", f"{mech}=[name={name},password={password}]"]
    subprocess.run(fmt, check=True, capture_output=True)
    state: dict[str, object] = {
        "port": port,
        "controller_port": ctrl,
        "sasl_port": sasl_port,
        "scram": sorted(u.partition(":")[0] for u in scram),
        "heap": heap,
    }
    return launch(data_dir, state, timeout, t0)


def launch(data_dir: Path, state: dict[str, object], timeout: float, t0: float) -> int:
    """Run the broker of a formatted data dir and wait for a metadata answer."""
    heap = str(state.get("heap", "512m"))
    logf = (data_dir / "broker.log").open("ab")
    proc = subprocess.Popen(
        [
            "java",
            f"-Xmx{heap}",
            f"-Xms{heap}",
            "-XX:+UseG1GC",
            "-XX:TieredStopAtLevel=1",
            f"-Dlog4j2.configurationFile={data_dir / 'log4j2.yaml'}",
            "-cp",
            f"{LIBS}/*",
            "kafka.Kafka",
            str(data_dir / "server.properties"),
        ],
        stdout=logf,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    state["pid"] = proc.pid
    port = int(str(state["port"]))
    (data_dir / "state.json").write_text(json.dumps(state))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (data_dir / "broker.log").read_text(errors="replace")[-3000:]
            log(f"broker exited with {proc.returncode}; last log lines:\n{tail}")
            return 1
        if metadata_ok("127.0.0.1", port):
            log(f"broker ready in {time.monotonic() - t0:.1f}s (pid {proc.pid}, data {data_dir})")
            print_endpoints(state)
            return 0
        time.sleep(0.2)
    log(f"broker not ready after {timeout}s; see {data_dir / 'broker.log'}")
    stop(data_dir, quiet=True)
    return 1


def restart(data_dir: Path, timeout: float) -> int:
    """Stop the broker and start it again on the same ports with its data kept (fault tests)."""
    state = read_state(data_dir)
    if not state:
        log("not running: nothing to restart (use start)")
        return 1
    stop(data_dir, quiet=True, keep_state=True)
    return launch(data_dir, state, timeout, time.monotonic())


def stop(data_dir: Path, quiet: bool = False, keep_state: bool = False) -> int:
    state = read_state(data_dir)
    if not state:
        if not quiet:
            log("not running")
        return 0
    pid = int(str(state["pid"]))
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        if not quiet:
            log(f"stopped (pid {pid})")
    if not keep_state:
        (data_dir / "state.json").unlink(missing_ok=True)
    return 0


def status(data_dir: Path) -> int:
    state = read_state(data_dir)
    if state and pid_alive(int(str(state["pid"]))):
        ok = metadata_ok("127.0.0.1", int(str(state["port"])))
        log(f"running (pid {state['pid']}, {'answering' if ok else 'NOT answering'} metadata requests)")
        print_endpoints(state)
        return 0 if ok else 1
    log("not running")
    return 3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kafka-local", description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["start", "stop", "status", "restart"])
    p.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA, help="broker folder (config, data, log, pid)"
    )
    p.add_argument(
        "--scram",
        action="append",
        default=[],
        metavar="USER:PASSWORD",
        help="add a SASL_PLAINTEXT listener (SCRAM-SHA-256/512) with this user; repeatable",
    )
    p.add_argument("--heap", default="512m", help="JVM heap of the broker")
    p.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for the broker to be ready")
    a = p.parse_args(argv)
    data_dir = a.data_dir.resolve()
    for user in a.scram:
        if ":" not in user or not user.split(":", 1)[0]:
            p.error(f"--scram wants USER:PASSWORD, got {user!r}")
    if a.command == "start":
        return start(data_dir, a.scram, a.heap, a.timeout)
    if a.command == "stop":
        return stop(data_dir)
    if a.command == "restart":
        return restart(data_dir, a.timeout)
    return status(data_dir)


if __name__ == "__main__":
    sys.exit(main())
