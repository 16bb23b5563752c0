"""Real redis-server processes for the Python tests and scripts: on free
loopback ports (never 6379), with the module loaded (or not), always
stopped, and the FastAPI example under uvicorn beside them. One copy for
the four places that start servers:
clients/python/tests (its conftest), tests/clients (its conftest and
run.sh), examples/fastapi/tests (its conftest) and scripts/docs.d/docs.py.
They import it by its directory (pytest's `pythonpath`, mypy's
`mypy_path`, a conftest's or docs.py's own path), not as a package: it
needs only the standard library and redis-py."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import redis

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULE = os.environ.get("RL_MODULE") or str(ROOT / "target/debug/libratelimit.so")
REDIS_SERVER = os.environ.get("REDIS_SERVER", "redis-server")


# Where each suite looks for a cluster's six ports (range() arguments),
# apart from each other's so that they can run side by side.
PACKAGE_PORTS = (13000, 20000, 13)  # clients/python/tests
CLIENTS_PORTS = (21000, 29000, 17)  # tests/clients (run.sh, its conftest)


def free_port() -> int:
    """A loopback port free now (never 6379); it may be taken before use."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port != 6379:
            return port


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base(start: int, stop: int, step: int, nodes: int = 6) -> int:
    """The first of `nodes` consecutive free ports from range(start, stop,
    step), each with its cluster bus port (+10000) free too."""
    for base in range(start, stop, step):
        if all(port_free(p) and port_free(p + 10000) for p in range(base, base + nodes)):
            return base
    raise RuntimeError(f"no {nodes} free ports")


class Server:
    """redis-server with the module (module=False: without it, as a new
    node or a typo in loadmodule leaves one), on a free port (or `port`).
    Raises RuntimeError when it does not start."""

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
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        for attempt in range(5):  # the port can be taken before the server binds it
            self.port = port or free_port()
            self.log = workdir / f"redis-{self.port}.log"
            try:
                self._start()
                break
            except RuntimeError:
                self.stop()
                if attempt == 4 or port is not None:
                    raise
        self.client = redis.Redis(port=self.port, socket_timeout=10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Starts the server again after stop(): on the same port, empty."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"redis-server on port {self.port} is running")
        self._start()
        self.client = redis.Redis(port=self.port, socket_timeout=10)

    def _start(self) -> None:
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
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

    def reset(self) -> None:
        """An empty server: no keys, no policies, default settings, no counters."""
        c = self.client
        c.flushall()
        for name in c.execute_command("RL.POLICY", "LIST"):  # type: ignore[no-untyped-call]
            c.execute_command("RL.POLICY", "DEL", name)  # type: ignore[no-untyped-call]
        c.config_set("ratelimit.log-max", 10000)
        c.config_set("ratelimit.lease-max", 10000)
        # RL.TOP's summaries are server state FLUSHALL leaves: a size of 0
        # empties them.
        c.config_set("ratelimit.top-size", 0)
        c.config_set("ratelimit.top-size", 1000)
        c.config_set("notify-keyspace-events", "")
        c.config_resetstat()

    def stop(self) -> None:
        client = self.__dict__.pop("client", None)
        if client is not None:
            client.close()
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """Ends a process started for a test (SIGTERM, then SIGKILL after 10 s)."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class App:
    """An ASGI app (by default examples/fastapi's `app:create_app`
    factory) under uvicorn on a free loopback port, run by this Python:
    configured by `REDIS_URL` and the settings given only (no `RL_*` or
    `OPS_*` variable of the environment the tests run in), with
    `pythonpath` prepended to its import path when given. Ready when
    `/openapi.json` answers; raises RuntimeError when it exits or does not
    answer within 60 s. `address` is host:port, `base_url` its URL."""

    def __init__(
        self,
        workdir: pathlib.Path,
        redis_url: str,
        *,
        folder: pathlib.Path = ROOT / "examples/fastapi",
        factory: str = "app:create_app",
        pythonpath: pathlib.Path | None = None,
        **settings: str,
    ) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.base_url = f"http://{self.address}"
        self.log = workdir / f"app-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RL_", "OPS_"))}
        env.update(REDIS_URL=redis_url, PYTHONUNBUFFERED="1", **settings)
        if pythonpath is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(pythonpath), env.get("PYTHONPATH")) if p
            )
        args = [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1",
                "--port", str(self.port), "--no-access-log", "--no-proxy-headers"]  # fmt: skip
        with open(self.log, "ab") as out:
            self.proc: subprocess.Popen[bytes] = subprocess.Popen(
                args, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60  # a safety limit, for a loaded machine
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the app did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/openapi.json", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:  # urllib's URLError is one
            return False

    def stop(self) -> None:
        stop_process(self.proc)


@contextmanager
def cluster(base: int) -> Iterator[int]:
    """A 3-master, 3-replica cluster (scripts/cluster) on ports base to
    base+5: its first port; always stopped."""
    env = {**os.environ, "BASE_PORT": str(base), "RL_MODULE": MODULE}
    script = str(ROOT / "scripts/cluster")
    try:
        subprocess.run(["bash", script], env=env, check=True, timeout=180,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        yield base
    finally:
        subprocess.run(["bash", script, "stop"], env=env, timeout=120,
                       stdout=subprocess.DEVNULL)  # fmt: skip
