"""Side-by-side benchmark: redis-ratelimit vs slowapi vs fastapi-limiter on
the same machine and the same Redis (see README.md, "Benchmark"). Run by
bench/run.sh, which makes the venv and builds nothing else.

For every variant (apps.py), a fresh uvicorn process (one worker):

  exact    limit N per minute, C concurrent requests (one connection each,
           all sent at once by an asyncio client in this process): how many
           got 200 (must be N), 429, something else
  redis    Redis round trips, commands and Redis CPU (us) per allowed
           request: INFO commandstats deltas, and the round trips counted
           by a pass-through proxy between the app and Redis (a round trip
           = the client writing after it has read a reply, so a pipeline
           is one), over sequential requests
  load     wrk (one thread, keep-alive connections) for a fixed time on the
           allowed path (the limit far above what the run reaches):
           requests/s and p99, as ratios to the unlimited endpoint

The redis-server (with the module) runs on a free loopback port (never
6379) and is always stopped. Prints a Markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import redis

HERE = pathlib.Path(__file__).resolve().parent
# Variants without a limit (apps.py): baselines, never checked for commands.
UNLIMITED = ("unlimited", "noop-dep", "yield-0", "ping")
VARIANTS = [
    "unlimited",
    "yield-0",
    "noop-dep",
    "ours",
    "ours-deco",
    "ours-mw",
    "ours-redispy",
    "slowapi",
    "fastapi-limiter",
]


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port != 6379:
            return port


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def taskset(cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu] if cpu and shutil.which("taskset") else []


class RedisServer:
    def __init__(self, module: str, workdir: pathlib.Path, cpu: str | None) -> None:
        self.port = free_port()
        self.log = open(workdir / "redis.log", "wb")  # noqa: SIM115
        args = [*taskset(cpu), "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(workdir),
                "--loadmodule", module]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc, "redis-server")
        self.client = redis.Redis(port=self.port, socket_timeout=10)

    def stop(self) -> None:
        self.client.close()
        stop(self.proc)
        self.log.close()


class App:
    """uvicorn serving apps:app for one variant."""

    def __init__(self, variant: str, redis_url: str, limit: int, args: argparse.Namespace,
                 parser: str = "python", profile: str | None = None) -> None:  # fmt: skip
        self.port = free_port()
        env = {**os.environ, "BENCH_VARIANT": variant, "BENCH_REDIS_URL": redis_url,
               "BENCH_LIMIT": str(limit), "BENCH_PARSER": parser}  # fmt: skip
        cmd = [sys.executable, "-m", "uvicorn", "apps:app", "--app-dir", str(HERE),
               "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
               "--log-level", "warning", "--no-access-log"]  # fmt: skip
        if profile:  # py-spy records the server for the whole run
            cmd = [str(pathlib.Path(sys.executable).parent / "py-spy"), "record", "-o", profile,
                   "-f", "raw" if profile.endswith(".txt") else "flamegraph",
                   "-r", "500", "--", *cmd]  # fmt: skip
        self.proc = subprocess.Popen([*taskset(args.app_cpu), *cmd], env=env)
        wait_port(self.port, self.proc, f"uvicorn ({variant})")

    def cpu_seconds(self) -> float:
        """The server's CPU time so far (user and system; py-spy's, when
        profiling)."""
        fields = pathlib.Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------- the asyncio client

REQUEST = b"GET /limited HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"


async def one_request(port: int, start: asyncio.Event) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await start.wait()
        writer.write(REQUEST)
        await writer.drain()
        line = await reader.readline()
        await reader.read()  # the rest, until the server closes
        return int(line.split()[1]) if line else -1
    except OSError:
        return -1
    finally:
        writer.close()


async def burst(port: int, n: int) -> dict[int, int]:
    """n requests, each on its own connection, all connected before any is
    sent; the count of each status."""
    start = asyncio.Event()
    tasks = [asyncio.ensure_future(one_request(port, start)) for _ in range(n)]
    await asyncio.sleep(0.5)  # let the connections open
    start.set()
    counts: dict[int, int] = {}
    for status in await asyncio.gather(*tasks):
        counts[status] = counts.get(status, 0) + 1
    return counts


async def sequential(port: int, n: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    req = b"GET /limited HTTP/1.1\r\nHost: bench\r\n\r\n"
    for _ in range(n):
        writer.write(req)
        line = await reader.readline()
        length = 0
        while (h := await reader.readline()) not in (b"\r\n", b""):
            if h.lower().startswith(b"content-length:"):
                length = int(h.split(b":")[1])
        await reader.readexactly(length)
        if int(line.split()[1]) != 200:
            raise RuntimeError(f"expected 200, got {line!r}")
    writer.close()


# ---------------------------------------------------------------- round trip counting proxy


class CountingProxy:
    """Forwards a port to Redis and counts round trips: client data arriving
    after the last reply (or first) starts one."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.round_trips = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port)
        )
        ready.set()
        self.loop.run_forever()
        server.close()

    async def _serve(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream)
        waiting = [False]  # a request sent, its reply not yet seen

        async def up() -> None:
            while data := await cr.read(65536):
                if not waiting[0]:
                    self.round_trips += 1
                    waiting[0] = True
                uw.write(data)
            uw.close()

        async def down() -> None:
            while data := await ur.read(65536):
                waiting[0] = False
                cw.write(data)
            cw.close()

        await asyncio.gather(up(), down(), return_exceptions=True)


# ---------------------------------------------------------------- phases


def stats(r: redis.Redis) -> tuple[int, int]:
    """(calls, usec) over every command but INFO and CONFIG."""
    calls = usec = 0
    for name, v in r.info("commandstats").items():
        if name.lower() in ("cmdstat_info", "cmdstat_config"):
            continue
        calls += int(v["calls"])
        usec += int(v["usec"])
    return calls, usec


def phase_exact(variant: str, server: RedisServer, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in args.concurrency:
        server.client.flushall()
        app = App(variant, f"redis://127.0.0.1:{server.port}", args.limit, args)
        try:
            t0 = time.monotonic()
            counts = asyncio.run(burst(app.port, n))
            out[str(n)] = {"statuses": {str(k): v for k, v in sorted(counts.items())},
                           "seconds": round(time.monotonic() - t0, 2)}  # fmt: skip
        finally:
            app.stop()
        print(f"  exact {variant} C={n}: {counts}", flush=True)
    return out


def phase_redis(variant: str, server: RedisServer, args: argparse.Namespace) -> dict[str, Any]:
    proxy = CountingProxy(server.port)
    server.client.flushall()
    app = App(variant, f"redis://127.0.0.1:{proxy.port}", 10**12, args)
    try:
        asyncio.run(sequential(app.port, 100))  # warm up: connections, scripts
        server.client.config_resetstat()
        proxy.round_trips = 0
        n = args.sequential
        asyncio.run(sequential(app.port, n))
        calls, usec = stats(server.client)
        trips = proxy.round_trips
    finally:
        app.stop()
        proxy.loop.call_soon_threadsafe(proxy.loop.stop)
    out = {"round_trips": trips / n, "commands": calls / n, "redis_us": usec / n}
    print(f"  redis {variant}: {out}", flush=True)
    return out


WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_P99 = re.compile(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", re.M)
WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
WRK_TOTAL = re.compile(r"(\d+) requests in")


def wrk(port: int, args: argparse.Namespace, seconds: int) -> dict[str, float]:
    cmd = [*taskset(args.load_cpu), "wrk", "-t1", f"-c{args.connections}", f"-d{seconds}s",
           "--latency", f"http://127.0.0.1:{port}/limited"]  # fmt: skip
    text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rps = WRK_RPS.search(text)
    p99 = WRK_P99.search(text)
    if not rps or not p99:
        raise RuntimeError(f"cannot read wrk's output:\n{text}")
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99[2]]
    non2xx = WRK_NON2XX.search(text)
    total = WRK_TOTAL.search(text)
    return {"rps": float(rps[1]), "p99_ms": float(p99[1]) * scale,
            "non_2xx": int(non2xx[1]) if non2xx else 0,
            "requests": int(total[1]) if total else 0}  # fmt: skip


def phase_load(server: RedisServer, args: argparse.Namespace) -> dict[str, Any]:
    """wrk against every variant, round after round, each variant's run
    between two runs of the unlimited endpoint: a variant's ratios are to
    the mean of those two, and the table shows their median over the
    rounds (and the median requests/s, p99 and CPU)."""
    names = list(args.variants)
    if args.hiredis:
        names += [f"{v}+hiredis" for v in args.variants if v.startswith("ours")]
    apps: dict[str, App] = {}
    out: dict[str, Any] = {}
    try:
        for name in names:
            variant, _, parser = name.partition("+")
            profile = None
            if variant in args.profile and not parser:
                ext = ".txt" if args.profile_format == "raw" else ".svg"
                profile = str(pathlib.Path(args.out).with_name(f"profile-{variant}{ext}"))
            apps[name] = App(variant, f"redis://127.0.0.1:{server.port}", 10**12, args,
                             parser or "python", profile)  # fmt: skip
        for app in apps.values():
            wrk(app.port, args, 2)  # warm up
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        # Each variant's run is compared with the unlimited runs just before
        # and just after it (their mean): the machine's speed drifts by a
        # third over a minute here, less over a few seconds.
        bases: dict[str, list[dict[str, float]]] = {name: [] for name in names}

        def measure(name: str) -> dict[str, Any]:
            app = apps[name]
            server.client.config_resetstat()
            reads0 = int(server.client.info("stats")["total_reads_processed"])
            cpu0 = app.cpu_seconds()
            run = wrk(app.port, args, args.seconds)
            run["cpu_us"] = (app.cpu_seconds() - cpu0) / max(run["requests"], 1) * 1e6
            run["redis_reads"] = int(server.client.info("stats")["total_reads_processed"]) - reads0
            run["redis_calls"], run["redis_usec"] = stats(server.client)
            if name not in UNLIMITED and run["redis_calls"] < run["requests"]:
                raise RuntimeError(f"{name}: {run['redis_calls']} Redis commands for "
                                   f"{run['requests']} requests: not limited")  # fmt: skip
            runs[name].append(run)
            print(f"  load {name}: {run}", flush=True)
            return run

        paired = "unlimited" in apps
        others = [n for n in names if n != "unlimited"] if paired else names
        for _ in range(args.repeat):
            before = measure("unlimited") if paired else None
            for name in others:
                measure(name)
                if before is not None:
                    after = measure("unlimited")
                    bases[name].append({k: (before[k] + after[k]) / 2
                                        for k in ("rps", "p99_ms", "cpu_us")})  # fmt: skip
                    before = after
    finally:
        for app in apps.values():
            app.stop()
    for name, rs in runs.items():
        n = sum(r["requests"] for r in rs) or 1
        res: dict[str, Any] = {
            "rps": median([r["rps"] for r in rs]),
            "p99_ms": median([r["p99_ms"] for r in rs]),
            "cpu_us": median([r["cpu_us"] for r in rs]),
            "redis_reads": sum(r["redis_reads"] for r in rs) / n,
            "redis_us": sum(r["redis_usec"] for r in rs) / n,
            "runs": rs,
        }
        base = bases.get(name)
        if name == "unlimited":
            res.update(rps_ratio=1.0, p99_ratio=1.0, cpu_ratio=1.0)
        elif base:
            pairs = list(zip(rs, base, strict=True))
            res["rps_ratio"] = median([r["rps"] / b["rps"] for r, b in pairs])
            res["p99_ratio"] = median([r["p99_ms"] / b["p99_ms"] for r, b in pairs])
            res["cpu_ratio"] = median([r["cpu_us"] / b["cpu_us"] for r, b in pairs])
        out[name] = res
    return out


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--module", required=True, help="libratelimit.so")
    p.add_argument("--variants", nargs="+", default=VARIANTS)
    p.add_argument("--phases", nargs="+", default=["exact", "redis", "load"])
    p.add_argument("--limit", type=int, default=100, help="N of the exactness test")
    p.add_argument("--concurrency", type=int, nargs="+", default=[300, 1000])
    p.add_argument("--sequential", type=int, default=2000, help="requests of the redis phase")
    p.add_argument("--connections", type=int, default=50, help="wrk's connections")
    p.add_argument("--seconds", type=int, default=10, help="each wrk run")
    p.add_argument("--repeat", type=int, default=3, help="wrk runs per variant (the median)")
    p.add_argument("--hiredis", action="store_true", help="also load-test ours with hiredis")
    p.add_argument("--profile", nargs="*", default=[], help="variants to record with py-spy")
    p.add_argument(
        "--profile-format",
        choices=["svg", "raw"],
        default="svg",
        help="a flame graph, or collapsed stacks (text)",
    )
    p.add_argument("--app-cpu", default=None, help="taskset CPU list for uvicorn")
    p.add_argument("--load-cpu", default=None, help="taskset CPU list for wrk")
    p.add_argument("--redis-cpu", default=None, help="taskset CPU list for redis-server")
    p.add_argument("--out", default="bench.json")
    args = p.parse_args()

    workdir = pathlib.Path(args.out).resolve().parent
    workdir.mkdir(parents=True, exist_ok=True)
    server = RedisServer(args.module, workdir, args.redis_cpu)
    results: dict[str, Any] = {"args": vars(args), "variants": {}}
    try:
        for variant in args.variants:
            res: dict[str, Any] = {}
            if "exact" in args.phases and variant not in UNLIMITED:
                res["exact"] = phase_exact(variant, server, args)
            if "redis" in args.phases and variant not in UNLIMITED:
                res["redis"] = phase_redis(variant, server, args)
            results["variants"][variant] = res
            pathlib.Path(args.out).write_text(json.dumps(results, indent=2))
        if "load" in args.phases:
            for name, load in phase_load(server, args).items():
                results["variants"].setdefault(name, {})["load"] = load
            pathlib.Path(args.out).write_text(json.dumps(results, indent=2))
    finally:
        server.stop()
    print(table(results))


def table(results: dict[str, Any]) -> str:
    v = results["variants"]
    conc = results["args"]["concurrency"]
    n = results["args"]["limit"]
    head = ["variant", *(f"200s of {c} (N={n})" for c in conc), "round trips/req",
            "commands/req", "Redis us/req", "Redis reads/req under load", "req/s",
            "x unlimited", "p99 ms", "x unlimited", "app CPU us/req", "x unlimited"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, res in v.items():
        cells = [name]
        for c in conc:
            e = res.get("exact", {}).get(str(c))
            if e is None:
                cells.append("")
                continue
            st = e["statuses"]
            other = "" if set(st) <= {"200", "429"} else f" ({st})"
            cells.append(f"{st.get('200', 0)}{other}")
        r = res.get("redis")
        cells += ["" if r is None else f"{r['round_trips']:.2f}",
                  "" if r is None else f"{r['commands']:.2f}",
                  "" if r is None else f"{r['redis_us']:.1f}"]  # fmt: skip
        load = res.get("load")
        if load:
            cells += [f"{load['redis_reads']:.2f}" if name not in UNLIMITED else "",
                      f"{load['rps']:.0f}", f"{load.get('rps_ratio', 0):.2f}",
                      f"{load['p99_ms']:.1f}", f"{load.get('p99_ratio', 0):.2f}",
                      f"{load['cpu_us']:.0f}", f"{load.get('cpu_ratio', 0):.2f}"]  # fmt: skip
        else:
            cells += [""] * 7
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
