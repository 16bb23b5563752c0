"""Real redis-server processes with the module loaded, on free loopback ports
(never 6379), always stopped: one standalone server, and a 3+3 cluster
started by scripts/cluster."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster

ROOT = pathlib.Path(__file__).resolve().parents[3]
MODULE = os.environ.get("RL_MODULE") or str(ROOT / "target/debug/libratelimit.so")
REDIS_SERVER = os.environ.get("REDIS_SERVER", "redis-server")


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port != 6379:
            return port


class Server:
    """redis-server with the module (module=False: without it, as a new
    node or a typo in loadmodule leaves one), on a free port (or `port`)."""

    def __init__(
        self,
        workdir: pathlib.Path,
        *,
        module: bool = True,
        port: int | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        if module and not os.path.isfile(MODULE):
            raise RuntimeError(f"module not found at {MODULE}: run 'cargo build' or set RL_MODULE")
        self.module = module
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        for attempt in range(5):  # the port can be taken before the server binds it
            self.port = port or free_port()
            self.log = workdir / f"redis-{self.port}.log"
            try:
                self._start(workdir)
                return
            except RuntimeError:
                self.stop()
                if attempt == 4 or port is not None:
                    raise

    def _start(self, workdir: pathlib.Path) -> None:
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(workdir),
                *(("--loadmodule", MODULE) if self.module else ()), *self.extra]  # fmt: skip
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        with redis.Redis(port=self.port, socket_timeout=2) as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited:\n{self.log.read_text()}")
                try:  # this process's answer, not another server's on the port
                    if c.info("server")["process_id"] == self.proc.pid:
                        return
                except redis.RedisError:
                    pass
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("redis"))
    yield s
    s.stop()


@pytest.fixture(scope="session")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A redis-server without the module."""
    s = Server(tmp_path_factory.mktemp("plain"), module=False)
    yield s
    s.stop()


@pytest.fixture
def sync_redis(server: Server) -> Iterator[redis.Redis]:
    """The standalone server, emptied (its "free" policy too), its command
    counts reset."""
    c = redis.Redis(port=server.port, socket_timeout=5)
    c.flushall()
    c.execute_command("RL.POLICY", "DEL", "free")
    c.config_resetstat()
    yield c
    c.close()


def calls(r: redis.Redis, command: str = "") -> int:
    """RL.* commands the server has run (INFO commandstats): all of them, or
    one ("all" for RL.ALL)."""
    stats = r.info("commandstats")
    return sum(
        int(v["calls"])
        for k, v in stats.items()
        if k.lower().startswith("cmdstat_rl.")
        and (not command or k.lower() == f"cmdstat_rl.{command}")
    )


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def protocol(request: pytest.FixtureRequest) -> int:
    p: int = request.param
    return p


@pytest.fixture(params=[False, True], ids=["bytes", "decoded"])
def decode(request: pytest.FixtureRequest) -> bool:
    d: bool = request.param
    return d


@pytest.fixture
def client(server: Server, protocol: int, decode: bool) -> Iterator[redis.Redis]:
    c = redis.Redis(port=server.port, protocol=protocol, decode_responses=decode,
                    socket_timeout=5)  # fmt: skip
    c.flushall()
    c.execute_command("RL.POLICY", "DEL", "free")
    yield c
    c.close()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_base() -> int:
    # Six nodes, each also needing its cluster bus port (+10000); another
    # range than tests/clients uses.
    for base in range(13000, 20000, 13):
        if all(_port_free(p) and _port_free(p + 10000) for p in range(base, base + 6)):
            return base
    raise RuntimeError("no six free ports")


@pytest.fixture(scope="session")
def cluster_port() -> Iterator[int]:
    """A 3-master, 3-replica cluster (scripts/cluster), always stopped."""
    base = _free_base()
    env = {**os.environ, "BASE_PORT": str(base), "RL_MODULE": MODULE}
    script = str(ROOT / "scripts/cluster")
    try:
        subprocess.run(["bash", script], env=env, check=True, timeout=180,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        yield base
    finally:
        subprocess.run(["bash", script, "stop"], env=env, timeout=120,
                       stdout=subprocess.DEVNULL)  # fmt: skip


@pytest.fixture
def cluster(cluster_port: int, protocol: int) -> Iterator[RedisCluster]:
    rc = RedisCluster(host="127.0.0.1", port=cluster_port, protocol=protocol, socket_timeout=10)
    yield rc
    rc.close()


@pytest.fixture(scope="session")
def partial_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    """A cluster of 3 masters, no replicas, the module loaded on the first
    only (a node added without it): its servers, the first one's port
    the one to connect to."""
    servers: list[Server] = []
    try:
        for attempt in range(5):  # ports below the ephemeral range, bus ports (+10000) too
            base = next(b for b in range(20000 + 97 * attempt, 22700, 11)
                        if all(_port_free(p) and _port_free(p + 10000)
                               for p in range(b, b + 3)))  # fmt: skip
            try:
                for i in range(3):
                    d = tmp_path_factory.mktemp(f"partial{i}")
                    servers.append(Server(d, module=i == 0, port=base + i, extra=(
                        "--cluster-enabled", "yes", "--cluster-node-timeout", "3000",
                        "--cluster-config-file", str(d / "nodes.conf"))))  # fmt: skip
                break
            except RuntimeError:
                for s in servers:
                    s.stop()
                servers.clear()
                if attempt == 4:
                    raise
        subprocess.run(["redis-cli", "--cluster", "create",
                        *(f"127.0.0.1:{s.port}" for s in servers),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, timeout=60, stdout=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = []
            for s in servers:
                with redis.Redis(port=s.port, socket_timeout=2) as c:
                    states.append(c.cluster("info")["cluster_state"])
            if states == ["ok"] * 3:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("the partial cluster did not become ready")
        yield servers
    finally:
        for s in servers:
            s.stop()
