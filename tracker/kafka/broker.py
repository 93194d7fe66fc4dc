"""Provision and run a local single-node Apache Kafka broker (KRaft, no Docker).

The jars come from Maven Central through ``deploy/kafka/pom.xml`` into a cache outside
the repository; state, configuration, logs and pid file live in one data directory.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import DEVNULL
from typing import TYPE_CHECKING

from tracker.errors import BrokerError

if TYPE_CHECKING:
    from tracker.settings import Settings

__all__ = ["DEFAULT_KAFKA_VERSION", "BrokerStatus", "LocalBroker", "default_cache_dir"]

DEFAULT_KAFKA_VERSION = "4.1.1"
HOST = "127.0.0.1"
POM = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml"
JVM_OPTIONS = ("-Xms256m", "-Xmx512m", "-XX:+UseG1GC")
_COMPLETE = ".complete"

# Brokers this process launched, kept so that they are reaped when they exit.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def default_cache_dir() -> Path:
    """Return the directory that holds one jar set per Kafka version."""
    return Path.home() / ".cache" / "tracker"


@dataclass(frozen=True)
class BrokerStatus:
    """Whether the broker process of a data directory is alive."""

    running: bool
    pid: int | None = None
    port: int | None = None


@dataclass(frozen=True)
class LocalBroker:
    """One single-node KRaft broker (combined broker and controller) on 127.0.0.1."""

    data_dir: Path
    port: int = 9092
    controller_port: int | None = None  # None: port + 1
    cache_dir: Path = field(default_factory=default_cache_dir)
    kafka_version: str = DEFAULT_KAFKA_VERSION
    java: str | None = None  # None: the `java` on PATH
    mvn: str | None = None  # None: the `mvn` on PATH
    pom: Path = POM

    @classmethod
    def configured(cls, settings: Settings) -> LocalBroker:
        """Return the local broker ``settings`` describe (its data under ``<data dir>/kafka``)."""
        return cls(
            data_dir=settings.data_dir / "kafka",
            port=settings.kafka_port,
            cache_dir=settings.cache_dir,
            kafka_version=settings.kafka_version,
        )

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def quorum_port(self) -> int:
        return self.port + 1 if self.controller_port is None else self.controller_port

    @property
    def home(self) -> Path:
        return self.data_dir.resolve()

    @property
    def libs_dir(self) -> Path:
        return self.cache_dir.expanduser().resolve() / f"kafka-{self.kafka_version}" / "libs"

    @property
    def log_dirs(self) -> Path:
        return self.home / "kafka-logs"

    @property
    def log_path(self) -> Path:
        return self.home / "server.log"

    @property
    def console_path(self) -> Path:
        return self.home / "console.log"

    @property
    def properties_path(self) -> Path:
        return self.home / "server.properties"

    @property
    def pid_path(self) -> Path:
        return self.home / "broker.pid"

    def server_properties(self) -> str:
        """Render the broker's server.properties."""
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self.quorum_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.quorum_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.log_dirs),
            "num.partitions": "4",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def log4j2_properties(self) -> str:
        """Render a Log4j 2 configuration that writes only to the data directory's log."""
        return (
            "status = warn\n"
            "shutdownHook = disable\n"
            "appender.file.type = File\n"
            "appender.file.name = file\n"
            f"appender.file.fileName = {self.log_path}\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = info\n"
            "rootLogger.appenderRef.file.ref = file\n"
        )

    def provision(self) -> Path:
        """Fetch the broker's jars into the cache unless a complete set is there."""
        libs = self.libs_dir
        if (libs / _COMPLETE).exists():
            return libs
        if not self.pom.is_file():
            raise BrokerError(f"{self.pom} not found: run from a source checkout or pass pom=")
        mvn = self.mvn or shutil.which("mvn")
        if mvn is None:
            raise BrokerError("mvn not found: install Maven (apt-get install maven)")
        libs.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(libs, ignore_errors=True)  # a set without its marker is incomplete
        staging = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
        try:
            version = f"-Dkafka.version={self.kafka_version}"
            goal = ["dependency:copy-dependencies", f"-DoutputDirectory={staging}"]
            _run([mvn, "-q", "-B", "-f", str(self.pom), version, *goal], "mvn", timeout=900)
            if not (staging / f"kafka_2.13-{self.kafka_version}.jar").exists():
                raise BrokerError(f"mvn copied no kafka_2.13-{self.kafka_version}.jar to {staging}")
            (staging / _COMPLETE).write_text(self.kafka_version + "\n")
            staging.chmod(0o755)
            try:
                staging.rename(libs)  # atomic publish: a reader never sees half a jar set
            except OSError:
                if not (libs / _COMPLETE).exists():  # not a concurrent provision that won
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return libs

    def status(self) -> BrokerStatus:
        """Report whether this data directory's broker process is alive."""
        pid = self._read_pid()
        if pid is None or not self._alive(pid):
            return BrokerStatus(running=False)
        return BrokerStatus(running=True, pid=pid, port=self.port)

    def start(self, timeout: float = 60.0) -> BrokerStatus:
        """Start the broker unless it runs, and wait until it answers Kafka requests."""
        deadline = time.monotonic() + timeout
        current = self.status()
        if current.running and current.pid is not None:
            self._wait_ready(current.pid, deadline, timeout)
            return current
        for port in (self.port, self.quorum_port):
            with socket.socket() as probe:
                if probe.connect_ex((HOST, port)) == 0:
                    raise BrokerError(f"{HOST}:{port} is already in use by another process")
        jvm = self._configure()
        argv = [jvm[0], *JVM_OPTIONS, *jvm[1:], "kafka.Kafka", str(self.properties_path)]
        with self.console_path.open("ab") as out:
            # A session of its own: the broker outlives the caller and its terminal's Ctrl-C.
            child = subprocess.Popen(argv, cwd=self.home, stdin=DEVNULL, stdout=out, stderr=out, start_new_session=True)
        _CHILDREN[child.pid] = child
        self.pid_path.write_text(f"{child.pid}\n")
        try:
            self._wait_ready(child.pid, deadline, timeout)
        except BrokerError:
            self.stop()
            raise
        return BrokerStatus(running=True, pid=child.pid, port=self.port)

    def _configure(self) -> list[str]:
        libs = self.provision()
        java = self.java or shutil.which("java")
        if java is None:
            raise BrokerError("java not found: install a JDK 17+ (apt-get install openjdk-17-jre)")
        self.home.mkdir(parents=True, exist_ok=True)
        self.properties_path.write_text(self.server_properties())
        log4j = self.home / "log4j2.properties"
        log4j.write_text(self.log4j2_properties())
        jvm = [java, f"-Dlog4j2.configurationFile={log4j}", "-cp", str(libs / "*")]
        if not (self.log_dirs / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            tool = ["kafka.tools.StorageTool", "format", "--ignore-formatted", "-t", cluster_id]
            _run([*jvm, *tool, "-c", str(self.properties_path)], "storage format", timeout=120)
        return jvm

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after timeout seconds."""
        pid = self._read_pid()
        if pid is not None and self._alive(pid):
            os.kill(pid, signal.SIGTERM)
            if not self._wait_exit(pid, timeout):
                os.kill(pid, signal.SIGKILL)
                if not self._wait_exit(pid, 10.0):
                    raise BrokerError(f"broker pid {pid} survived SIGKILL")
        self.pid_path.unlink(missing_ok=True)

    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _alive(self, pid: int) -> bool:
        child = _CHILDREN.get(pid)
        if child is not None:
            return child.poll() is None  # also reaps it, so no zombie lingers
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # alive, owned by another user; the command line below decides
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return True  # no /proc (macOS): trust the signal check
        # A stale pid file may name a pid that now belongs to another program.
        return b"kafka.Kafka" in cmdline and str(self.properties_path).encode() in cmdline

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def _wait_ready(self, pid: int, deadline: float, timeout: float) -> None:
        see = f"see {self.log_path} and {self.console_path}"
        while not _answers_api_versions(self.port):
            if not self._alive(pid):
                raise BrokerError(f"broker exited during startup; {see}")
            if time.monotonic() > deadline:
                where = f"{self.bootstrap_servers} within {timeout:g}s"
                raise BrokerError(f"broker did not become ready on {where}; {see}")
            time.sleep(0.2)


def _run(command: list[str], what: str, timeout: float) -> None:
    try:
        done = subprocess.run(command, input="", capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise BrokerError(f"{what} timed out after {timeout:g}s") from error
    except OSError as error:
        raise BrokerError(f"{what} could not run {command[0]}: {error}") from error
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise BrokerError(f"{what} failed (exit {done.returncode}) {tail}".rstrip())


def _answers_api_versions(port: int) -> bool:
    """Tell whether a Kafka broker on 127.0.0.1:port answers an ApiVersions v0 request."""
    # Every Kafka version answers ApiVersions v0. Kafka 4.x opens its client listener only
    # once the broker is caught up and unfenced: an answer means clients can bootstrap.
    client_id = b"tracker-probe"
    correlation_id = 1
    header = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((HOST, port), timeout=2.0) as sock:
            sock.sendall(struct.pack(">i", len(header)) + header)
            reply = b""
            while len(reply) < 10:  # size, correlation id, error code
                chunk = sock.recv(64)
                if not chunk:
                    return False
                reply += chunk
    except OSError:
        return False
    answered_id, error_code = struct.unpack(">ih", reply[4:10])
    return bool(answered_id == correlation_id and error_code == 0)
