#!/usr/bin/env python3
"""Driver of scripts/bench: measures the module against INCR, Lua baselines
and the module-API floor (FLOOR.HIT, scripts/bench.d/floor: only the work no
module command can avoid) on a running redis-server and prints one markdown
report.

Python 3.11 standard library only. Started by scripts/bench, which builds the
module and owns the server; this file only talks to it (RESP over a socket,
redis-benchmark and `redis-cli --pipe` as subprocesses).
"""

import argparse
import datetime
import os
import platform
import random
import re
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


# --------------------------------------------------------------------------
# A minimal RESP2 client.


class Redis:
    def __init__(self, port):
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.f = self.sock.makefile("rb")

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self.read() for _ in range(n)]
        raise RuntimeError(f"unexpected reply {line!r}")

    def call(self, *args):
        self.sock.sendall(self.encode(args))
        return self.read()

    def info(self, section):
        text = self.call("INFO", section).decode()
        out = {}
        for line in text.splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                out[k] = v
        return out


# --------------------------------------------------------------------------
# Measuring.


class Bench:
    def __init__(self, port, quick):
        self.port = port
        self.quick = quick
        self.r = Redis(port)
        self.sha = {}
        for name in ("fixed", "sliding", "log", "token", "gcra"):
            with open(os.path.join(HERE, name + ".lua"), "rb") as f:
                self.sha[name] = self.r.call("SCRIPT", "LOAD", f.read()).decode()

    def flush(self):
        self.r.call("FLUSHALL")

    def usec_per_call(self, cmdname):
        # Module commands keep their case (cmdstat_RL.FIXED), others are lower.
        stats = {k.lower(): v for k, v in self.r.info("commandstats").items()}
        row = stats.get("cmdstat_" + cmdname.lower())
        if row is None:
            return None
        m = re.search(r"usec_per_call=([0-9.]+)", row)
        return float(m.group(1))

    def main_thread_cpu_s(self):
        """CPU seconds the server's main thread (which runs every command) used."""
        cpu = self.r.info("cpu")
        return float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"])

    def benchmark(self, cmd, n, pipeline, keyspace=None, clients=50):
        """Runs redis-benchmark on `cmd` (a list); returns (ops/s, usec/call).
        Also sets `ceiling`: calls per CPU second of the server's main thread
        during the run, what one core the server had alone would decide
        (redis-benchmark's own CPU, on the same cores, is left out)."""
        self.r.call("CONFIG", "RESETSTAT")
        cpu_before = self.main_thread_cpu_s()
        argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(self.port),
                "-c", str(clients), "-P", str(pipeline), "-n", str(n), "--csv"]
        if keyspace:
            argv += ["-r", str(keyspace)]
        out = subprocess.run(argv + [str(a) for a in cmd], check=True,
                             capture_output=True, text=True).stdout
        rps = None
        for line in out.splitlines():
            fields = [x.strip('"') for x in line.split('","')]
            if len(fields) > 1 and fields[0] != "test":
                rps = float(fields[1])
        if rps is None:
            raise RuntimeError(f"no result from redis-benchmark: {out!r}")
        cpu_s = self.main_thread_cpu_s() - cpu_before
        self.ceiling = n / cpu_s if cpu_s > 0 else None
        return rps, self.usec_per_call(cmd[0])

    def pipe(self, commands):
        """Sends a list of commands through `redis-cli --pipe` (mass insertion)."""
        data = b"".join(Redis.encode(c) for c in commands)
        res = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "--pipe"],
                             input=data, capture_output=True, check=True)
        out = res.stdout.decode()
        m = re.search(r"errors: (\d+), replies: (\d+)", out)
        if not m or int(m.group(1)) != 0 or int(m.group(2)) != len(commands):
            raise RuntimeError(f"redis-cli --pipe: {out.strip()} {res.stderr.decode().strip()}")

    def pipe_gen(self, gen, total, batch=200_000):
        buf = []
        for c in gen:
            buf.append(c)
            if len(buf) >= batch:
                self.pipe(buf)
                buf = []
        if buf:
            self.pipe(buf)


# --------------------------------------------------------------------------
# What is measured. Parameters are chosen so every measured call is allowed
# (the path that writes, sets the expiry and replicates), like INCR.

BIG = 1_000_000_000


def rl(name, *params):
    return lambda key: [name, key, *params]


def lua(b, script, *params):
    return lambda key: ["EVALSHA", b.sha[script], 1, key, *params]


def commands(b):
    """(row name, make(key) for hot keys, make(key) for distinct keys, lua baseline)."""
    hot_log = ("10000", "10ms")  # ~1-3k entries live at full speed, never full
    # Distinct keys are each called again only after ~100,000 other calls, so
    # they get a refill of 1 per 60 s: at 1,000,000 per second a key would
    # expire within a millisecond of each call, and every call would delete
    # an expired key and create a new one, which the floor (and the fixed,
    # sliding and log rows, windows of 1h) do not. With 1 per 60 s each call
    # updates a live key, as the floor does (its keys live 60 s).
    slow = (1, "60s")
    return [
        ("INCR", rl("INCR"), rl("INCR"), None),
        # The module-API floor (scripts/bench.d/floor).
        ("floor", rl("FLOOR.HIT"), rl("FLOOR.HIT"), None),
        ("RL.FIXED", rl("RL.FIXED", BIG, "1h"), rl("RL.FIXED", BIG, "1h"), "Lua fixed"),
        ("RL.SLIDING", rl("RL.SLIDING", BIG, "1h"), rl("RL.SLIDING", BIG, "1h"), "Lua sliding"),
        ("RL.LOG", rl("RL.LOG", *hot_log), rl("RL.LOG", 1000, "1h"), "Lua log (ZSET)"),
        ("RL.TOKEN", rl("RL.TOKEN", BIG, 1_000_000, "1s"), rl("RL.TOKEN", BIG, *slow), "Lua token"),
        ("RL.LEAKY", rl("RL.LEAKY", BIG, 1_000_000, "1s"), rl("RL.LEAKY", BIG, *slow), "Lua token"),
        ("RL.GCRA", rl("RL.GCRA", BIG - 1, 1_000_000, "1s"), rl("RL.GCRA", BIG - 1, *slow), "Lua gcra"),
        ("Lua fixed", lua(b, "fixed", BIG, 3_600_000), lua(b, "fixed", BIG, 3_600_000), None),
        ("Lua sliding", lua(b, "sliding", BIG, 3_600_000), lua(b, "sliding", BIG, 3_600_000), None),
        ("Lua log (ZSET)", lua(b, "log", 10000, 10), lua(b, "log", 1000, 3_600_000), None),
        ("Lua token", lua(b, "token", BIG, 1_000_000, 1000), lua(b, "token", BIG, 1, 60_000), None),
        ("Lua gcra", lua(b, "gcra", BIG - 1, 1_000_000, 1000), lua(b, "gcra", BIG - 1, 1, 60_000), None),
    ]


ALL2 = ["TOKEN", BIG, 1_000_000, "1s", "FIXED", BIG, "1d"]
ALL4 = ALL2 + ["SLIDING", BIG, "1h", "GCRA", BIG - 1, 1_000_000, "1s"]
# On distinct keys, refills of 1 per 60 s, as the single-key rows (commands()).
ALL2_DISTINCT = ["TOKEN", BIG, 1, "60s", "FIXED", BIG, "1d"]
ALL4_DISTINCT = ALL2_DISTINCT + ["SLIDING", BIG, "1h", "GCRA", BIG - 1, 1, "60s"]


def all_cmd(keys, groups):
    return ["RL.ALL", len(keys), *keys, *groups]


def with_all(specs):
    """commands() with the RL.ALL rows right after the single-key ones,
    on keys named after the one given (each `__rand_int__` in a key name is
    drawn on its own by redis-benchmark)."""
    def all_keys(n, groups):
        return lambda k: all_cmd([f"{k}:{i}" for i in range(n)], groups)
    at = next(i for i, s in enumerate(specs) if s[0] == "RL.GCRA") + 1
    return specs[:at] + [
        ("RL.ALL (2 limits)", all_keys(2, ALL2), all_keys(2, ALL2_DISTINCT), None),
        ("RL.ALL (4 limits)", all_keys(4, ALL4), all_keys(4, ALL4_DISTINCT), None),
        ("RL.ALL (4) COMBINED", all_keys(4, ALL4 + ["COMBINED"]),
         all_keys(4, ALL4_DISTINCT + ["COMBINED"]), None),
    ] + specs[at:]


def same_length(name, make):
    """make(key) for a row, its keys named as long as an RL.ALL row's (which
    adds `:i` to the key given): a longer name costs every hash of it."""
    if name.startswith("RL.ALL"):
        return make
    return lambda k: make(k + ":0")


# The single-key commands, held to the floor.
SINGLE = ("RL.FIXED", "RL.SLIDING", "RL.LOG", "RL.TOKEN", "RL.LEAKY", "RL.GCRA")
# "One single-key call" for RL.ALL: the mean of the single-key commands of
# the limits it checks (ALL2, ALL4).
ALL_PARTS = {
    "RL.ALL (2 limits)": ("RL.TOKEN", "RL.FIXED"),
    "RL.ALL (4 limits)": ("RL.TOKEN", "RL.FIXED", "RL.SLIDING", "RL.GCRA"),
    "RL.ALL (4) COMBINED": ("RL.TOKEN", "RL.FIXED", "RL.SLIDING", "RL.GCRA"),
}


def all_vs_single(value, name):
    """RL.ALL's figure ÷ the mean of its parts' (value(row name) gives a figure)."""
    parts = [value(p) for p in ALL_PARTS[name]]
    mine = value(name)
    if mine is None or any(p is None for p in parts):
        return None
    return mine / (sum(parts) / len(parts))


# --------------------------------------------------------------------------
# The newer commands (refunds, the penalty box, leases), each on one hot key
# set up first, then in batches of up to 16 calls on one connection whose
# every reply is checked, so a measured call does what its row says. Not
# redis-benchmark: a lease pair is two commands, and a server-made lease id
# must be read back before it can be released.

LEASES_HELD = 1000  # the leases the O(n) row's key holds
MANY_LEASES = 10_000  # the leases the acquire-at-scale row's key holds


class Row:
    """`setup()`: commands run first (on an empty database); `batch(prev)`:
    the next batch of commands, given the previous batch's (commands,
    replies) or None; `ok(command, reply)`: whether a reply is the one the
    row measures. `base`: the row this one is compared with (÷ base)."""

    def __init__(self, name, how, batch, ok, setup=list, base=None):
        self.name, self.how, self.batch, self.ok = name, how, batch, ok
        self.setup, self.base = setup, base


def same(*cmds):
    """A batch of 16 calls: `cmds` over and over."""
    batch = list(cmds) * (16 // len(cmds))
    return lambda prev: batch


def is_allowed(_, reply):
    return isinstance(reply, list) and reply[0] == 1


def is_one(_, reply):
    return reply == 1


def lease_ok(cmd, reply):
    """An acquire granted under the id it was given (or a 32-character id
    the server made up), or a release of a held lease."""
    if cmd[0] == "RL.RELEASE":
        return reply == 1
    if not (isinstance(reply, list) and reply[0] == 1 and isinstance(reply[5], bytes)):
        return False
    return reply[5] == cmd[5].encode() if "ID" in cmd else len(reply[5]) == 32


def server_id_pairs(key, limit, ttl):
    """8 acquires under ids the server makes up, then, in the next batch,
    their 8 releases (ids read from the replies) before 8 more acquires."""
    acquire = ["RL.ACQUIRE", key, limit, ttl]

    def batch(prev):
        ids = [] if prev is None else [rep[5] for c, rep in zip(*prev) if c[0] == "RL.ACQUIRE"]
        return [["RL.RELEASE", key, i.decode()] for i in ids] + [acquire] * 8
    return batch


def scattered(n):
    """0 to n-1 over and over, in a scattered order (a prime stride, coprime
    with n), so each call finds its lease at another place in the key."""
    i = 0
    while True:
        yield (i * 7919) % n
        i += 1


def scattered_renews(key, n, ttl):
    """16 RL.RENEW of the key's held-<i> leases, in scattered order: each
    moves from where it is to the back, leaving a hole."""
    order = scattered(n)
    return lambda prev: [["RL.RENEW", key, f"held-{next(order)}", ttl] for _ in range(16)]


def scattered_pairs(key, n, limit, ttl):
    """8 pairs: RL.RELEASE of one of the key's held-<i> leases, in scattered
    order (from the middle, leaving a hole), then its RL.ACQUIRE again (at
    the back)."""
    order = scattered(n)

    def batch(prev):
        out = []
        for _ in range(8):
            lease = f"held-{next(order)}"
            out += [["RL.RELEASE", key, lease], ["RL.ACQUIRE", key, limit, ttl, "ID", lease]]
        return out
    return batch


def blocked_setup(key):
    """Puts `key` in the penalty box for an hour from 10 s ago: the first
    call takes the bucket's one token, the second is denied and blocks.
    By now the bucket has refilled, so only the block denies."""
    t0 = int(time.time() * 1000) - 10_000
    return [["RL.TOKEN", key, 1, 1, "1s", "PENALTY", "1h", "AT", t0]] * 2


def blocked_denial(_, reply):
    """Denied by the block: retry after most of the hour, not the bucket's 1 s."""
    return isinstance(reply, list) and reply[0] == 0 and reply[3] > 60_000


# Policies the RL.CHECK and RL.ALL ... POLICY rows decide with: the very
# parameters of the RL.TOKEN and RL.FIXED rows, so each RL.CHECK row is
# compared with its algorithm's own command doing the same work.
POLICY_TOKEN = ["bench-token", "TOKEN", BIG, 1_000_000, "1s"]
POLICY_FIXED = ["bench-fixed", "FIXED", BIG, "1h"]
# RL.ALL of two limits, by their parameters and by the policies above.
ALL_ALGO = ["TOKEN", BIG, 1_000_000, "1s", "FIXED", BIG, "1h"]
ALL_POLICY = ["POLICY", POLICY_TOKEN[0], "POLICY", POLICY_FIXED[0]]


def policies_setup():
    """Defines the two policies (FLUSHALL keeps them; a SET replaces)."""
    return [["RL.POLICY", "SET", *POLICY_TOKEN], ["RL.POLICY", "SET", *POLICY_FIXED]]


def denial(_, reply):
    """Denied for room: nothing left, a wait of most of the hour's refill."""
    return isinstance(reply, list) and reply[0] == 0 and reply[2] == 0 and reply[3] > 60_000


def shadow_denial(_, reply):
    """A denial answered allowed (SHADOW): allowed, but nothing left."""
    return isinstance(reply, list) and reply[0] == 1 and reply[2] == 0 and reply[3] == 0


def newer_rows():
    """The yardsticks (INCR, the floor, the base commands), then the rows of
    the newer commands. Keys `n:<row number>`."""
    k = [f"n:{i}" for i in range(22)]
    held = [["RL.ACQUIRE", k[10], 2 * LEASES_HELD, "1h", "ID", f"held-{i}"]
            for i in range(LEASES_HELD)]
    many = [["RL.ACQUIRE", k[19], 2 * MANY_LEASES, "1h", "ID", f"held-{i}"]
            for i in range(MANY_LEASES)]
    return [
        Row("INCR", "INCR on a counter above 10,000 (updated in place)",
            same(["INCR", k[0]]), lambda c, r: isinstance(r, int),
            setup=lambda: [["SET", k[0], 1_000_000]]),
        Row("floor", "FLOOR.HIT, the module-API floor", same(["FLOOR.HIT", k[1]]), is_allowed),
        Row("RL.FIXED", f"RL.FIXED key {BIG} 1h, as in the table above",
            same(["RL.FIXED", k[2], BIG, "1h"]), is_allowed),
        Row("RL.TOKEN", f"RL.TOKEN key {BIG} 1000000 1s, as in the table above",
            same(["RL.TOKEN", k[3], BIG, 1_000_000, "1s"]), is_allowed),
        Row("RL.REFUND", f"`RL.REFUND key 1` on an RL.FIXED key ({BIG} per 1h) that spent "
            f"{BIG // 2:,} units in one call first, so each call gives 1 unit back (every reply "
            "checked to be 1) into a window still open and far from empty",
            same(["RL.REFUND", k[4], 1]), is_one,
            setup=lambda: [["RL.FIXED", k[4], BIG, "1h", "COST", BIG // 2]], base="RL.FIXED"),
        Row("RL.TOKEN PENALTY, allowed", "RL.TOKEN as above with `PENALTY 1h`: every call "
            "allowed, the common path paying only the option's parsing",
            same(["RL.TOKEN", k[5], BIG, 1_000_000, "1s", "PENALTY", "1h"]), is_allowed,
            base="RL.TOKEN"),
        Row("RL.TOKEN PENALTY, blocked", "`RL.TOKEN key 1 1 1s PENALTY 1h` on a key in the "
            "penalty box for an hour (blocked 10 s earlier; the bucket has refilled, so only "
            "the block denies): every call denied with the block's retry-after (checked), "
            "nothing written or replicated", same(["RL.TOKEN", k[6], 1, 1, "1s", "PENALTY", "1h"]),
            blocked_denial, setup=lambda: blocked_setup(k[6]), base="RL.TOKEN"),
        Row("RL.ACQUIRE+RELEASE, ID given", "`RL.ACQUIRE key 10 1h ID lease-1` then "
            "`RL.RELEASE key lease-1`, 8 pairs a batch: each lease released right after its "
            "acquire, so the key is created by every acquire and deleted by every release",
            same(["RL.ACQUIRE", k[7], 10, "1h", "ID", "lease-1"], ["RL.RELEASE", k[7], "lease-1"]),
            lease_ok),
        Row("RL.ACQUIRE+RELEASE, server ids", "`RL.ACQUIRE key 10 1h` (the server makes the id "
            "up): 8 acquires a batch, released by the next batch (their ids read from the "
            "replies) before its 8 acquires, so the key holds 0 to 7 leases at an acquire",
            server_id_pairs(k[8], 10, "1h"), lease_ok, base="RL.ACQUIRE+RELEASE, ID given"),
        Row("RL.RENEW", "`RL.RENEW key held 1h` of a lease acquired first, the key's only one "
            "(every reply checked to be 1)", same(["RL.RENEW", k[9], "held", "1h"]), is_one,
            setup=lambda: [["RL.ACQUIRE", k[9], 10, "1h", "ID", "held"]]),
        Row(f"RL.ACQUIRE+RELEASE, {LEASES_HELD:,} leases", f"As the ID given pair, on a key "
            f"holding {LEASES_HELD:,} other leases (limit {2 * LEASES_HELD:,}, each 1h): each "
            "acquire places one more lease, each release removes it",
            same(["RL.ACQUIRE", k[10], 2 * LEASES_HELD, "1h", "ID", "probe"],
                 ["RL.RELEASE", k[10], "probe"]),
            lease_ok, setup=lambda: held, base="RL.ACQUIRE+RELEASE, ID given"),
        Row(f"RL.ACQUIRE+RELEASE, server ids, {MANY_LEASES:,} leases", f"As the server ids "
            f"pair, on a key holding {MANY_LEASES:,} other leases (limit {2 * MANY_LEASES:,}, "
            "each 1h): the acquire's line against the server ids row's is the cost of the "
            "leases held (the release finds its id by a binary search on its expiry)",
            server_id_pairs(k[19], 2 * MANY_LEASES, "1h"), lease_ok, setup=lambda: many,
            base="RL.ACQUIRE+RELEASE, server ids"),
        Row(f"RL.RELEASE+ACQUIRE, middle, {MANY_LEASES:,} leases", f"On a key holding "
            f"{MANY_LEASES:,} leases `held-<i>` (limit {2 * MANY_LEASES:,}, each 1h): "
            "`RL.RELEASE key held-<i>` then `RL.ACQUIRE key 20000 1h ID held-<i>`, 8 pairs a "
            "batch, the i in a scattered order, so each release takes a lease from the middle "
            "(leaving a hole) and each acquire puts it at the back",
            scattered_pairs(k[20], MANY_LEASES, 2 * MANY_LEASES, "1h"), lease_ok,
            setup=lambda: [[c[0], k[20], *c[2:]] for c in many],
            base="RL.ACQUIRE+RELEASE, ID given"),
        Row(f"RL.RENEW, {MANY_LEASES:,} leases", f"`RL.RENEW key held-<i> 1h` on a key holding "
            f"{MANY_LEASES:,} leases `held-<i>` (limit {2 * MANY_LEASES:,}, each 1h), the i in a "
            "scattered order, so each renewal finds its lease somewhere else and moves it to "
            "the back (every reply checked to be 1)",
            scattered_renews(k[21], MANY_LEASES, "1h"), is_one,
            setup=lambda: [[c[0], k[21], *c[2:]] for c in many], base="RL.RENEW"),
        Row("RL.CHECK, TOKEN policy", f"`RL.CHECK {POLICY_TOKEN[0]} key`, the policy "
            f"`{' '.join(map(str, POLICY_TOKEN[1:]))}`: the RL.TOKEN row's call by name",
            same(["RL.CHECK", POLICY_TOKEN[0], k[11]]), is_allowed, setup=policies_setup,
            base="RL.TOKEN"),
        Row("RL.CHECK, FIXED policy", f"`RL.CHECK {POLICY_FIXED[0]} key`, the policy "
            f"`{' '.join(map(str, POLICY_FIXED[1:]))}`: the RL.FIXED row's call by name",
            same(["RL.CHECK", POLICY_FIXED[0], k[12]]), is_allowed, setup=policies_setup,
            base="RL.FIXED"),
        Row("RL.ALL 2 limits, ALGO params", f"`RL.ALL 2 k1 k2 {' '.join(map(str, ALL_ALGO))}`: "
            "the RL.TOKEN and RL.FIXED rows' limits in one call",
            same(all_cmd([f"{k[13]}:a", f"{k[13]}:b"], ALL_ALGO)), is_allowed),
        Row("RL.ALL 2 limits, POLICY names", f"`RL.ALL 2 k1 k2 {' '.join(ALL_POLICY)}`: the "
            "same limits by the two policies", same(all_cmd([f"{k[14]}:a", f"{k[14]}:b"],
                                                            ALL_POLICY)),
            is_allowed, setup=policies_setup, base="RL.ALL 2 limits, ALGO params"),
        Row("RL.TOKEN, denied", "`RL.TOKEN key 1 1 1h` on a key whose one token the setup took: "
            "every call denied for room (checked: remaining 0, retry after most of the hour), "
            "nothing written or replicated", same(["RL.TOKEN", k[15], 1, 1, "1h"]), denial,
            setup=lambda: [["RL.TOKEN", k[15], 1, 1, "1h"]], base="RL.TOKEN"),
        Row("RL.TOKEN SHADOW, denied", "`RL.TOKEN key 1 1 1h SHADOW` on a key over its limit "
            "the same way: every call a denial answered allowed (checked: allowed, remaining 0), "
            "counted as shadow-denied and fired as `rl.shadow`, nothing written",
            same(["RL.TOKEN", k[16], 1, 1, "1h", "SHADOW"]), shadow_denial,
            setup=lambda: [["RL.TOKEN", k[16], 1, 1, "1h"]], base="RL.TOKEN, denied"),
        Row("RL.FIXED 1h ALIGN", f"`RL.FIXED key {BIG} 1h ALIGN OFFSET -05:00`: the RL.FIXED "
            "row's limit in windows on the clock (whole hours at UTC-5)",
            same(["RL.FIXED", k[17], BIG, "1h", "ALIGN", "OFFSET", "-05:00"]), is_allowed,
            base="RL.FIXED"),
        Row("RL.FIXED 1mo ALIGN", f"`RL.FIXED key {BIG} 1mo ALIGN OFFSET -05:00`: the same "
            "limit per calendar month (each call finds its month's start and end from the "
            "date)", same(["RL.FIXED", k[18], BIG, "1mo", "ALIGN", "OFFSET", "-05:00"]),
            is_allowed, base="RL.FIXED"),
    ]


# The yardsticks of newer_rows(), measured only to compare the rows with.
NEWER_YARDSTICKS = ("INCR", "floor", "RL.FIXED", "RL.TOKEN")


def drive(r, row, batches, prev=None):
    """Runs `batches` batches of `row` on connection `r`, checking every
    reply. Returns ({command: calls}, the last batch's (commands, replies))."""
    calls = {}
    for _ in range(batches):
        cmds = row.batch(prev)
        r.sock.sendall(b"".join(Redis.encode(c) for c in cmds))
        replies = [r.read() for _ in cmds]
        for c, rep in zip(cmds, replies):
            if not row.ok(c, rep):
                raise RuntimeError(f"{row.name}: {' '.join(map(str, c))} answered {rep!r}")
            calls[c[0]] = calls.get(c[0], 0) + 1
        prev = (cmds, replies)
    return dict(sorted(calls.items())), prev


def run_setup(r, cmds):
    """Sends `cmds` pipelined and reads (and so checks) every reply."""
    if cmds:
        r.sock.sendall(b"".join(Redis.encode(c) for c in cmds))
        for _ in cmds:
            r.read()


def fmt(x, digits=2):
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}x"


# --------------------------------------------------------------------------
# Sections.


def section_calls(b, out, cfg):
    """Per call cost and throughput, hot key and 100,000 distinct keys."""
    n16, n1, space = cfg["n16"], cfg["n1"], cfg["keyspace"]
    rows = []
    specs = with_all(commands(b))
    results = {}
    for name, hot, dist, base in specs:
        res = {}
        tag = re.sub(r"[^a-z0-9]", "", name.lower())
        for mode in ("hot", "dist"):
            b.flush()
            if mode == "hot":
                cmd = hot("hot:" + tag)
                space_arg = None
            else:
                cmd = dist(f"d:{tag}:__rand_int__")
                space_arg = space
            rps16, us16 = b.benchmark(cmd, n16, 16, space_arg)
            ceiling = b.ceiling
            b.flush()
            rps1, _ = b.benchmark(cmd, n1, 1, space_arg)
            res[mode] = (us16, rps16, rps1, ceiling)
            log(f"  {name:18} {mode:4}  {us16} µs/call  P16 {rps16:,.0f}/s  P1 {rps1:,.0f}/s  "
                f"ceiling {fmt(ceiling)}/s")
        results[name] = res
        rows.append((name, base))
    # The machine is shared: INCR and the floor again at the end show how
    # much the conditions drifted during the section.
    b.flush()
    again = b.benchmark(["INCR", "hot:incr"], n16, 16)
    log(f"  INCR again         hot   {again[1]} µs/call  P16 {again[0]:,.0f}/s")
    b.flush()
    floor_again = b.benchmark(["FLOOR.HIT", "hot:floor"], n16, 16)
    log(f"  floor again        hot   {floor_again[1]} µs/call  P16 {floor_again[0]:,.0f}/s")
    b.flush()

    out.append(f"### Per call: hot key and {space:,} distinct keys\n")
    out.append("Server-side `usec_per_call` from `INFO commandstats` (Lua: the `evalsha` row, "
               "which includes the commands the script calls), during the pipeline-16 run. "
               f"Distinct keys: `-r {space}` over {n16:,} calls, starting from an empty "
               "database, so the first calls create the keys; there RL.TOKEN, RL.LEAKY, RL.GCRA "
               "and their Lua baselines refill 1 per 60 s (not 1,000,000 per s), so a key is "
               "still there when it is called again.\n")
    out.append("×INCR: this ÷ INCR; ×floor: this ÷ `FLOOR.HIT`, the module-API floor "
               "(a module command doing only what no module command can avoid: open the key, "
               "create or update a 32-byte value of its own type, set the expiry, signal, "
               "replicate, reply five integers; `scripts/bench.d/floor`), so what the module's "
               "own code adds (lower is better for both); Lua ÷: the Lua baseline's cost ÷ this "
               "(how many times cheaper than Lua; higher is better).\n")
    out.append("| command | µs/call hot | ×INCR | ×floor | Lua ÷ | µs/call distinct | ×INCR | ×floor | Lua ÷ |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    incr, floor = results["INCR"], results["floor"]
    for name, base in rows:
        r = results[name]
        bl = results.get(base) if base else None
        cells = [name]
        for mode in ("hot", "dist"):
            us = r[mode][0]
            cells += [fmt(us), ratio(us, incr[mode][0]),
                      ratio(us, floor[mode][0]) if name != "INCR" else "—",
                      ratio(bl[mode][0], us) if bl else "—"]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append("RL.ALL ÷ one single-key call, where one single-key call is the mean of the "
               "single-key commands of the limits it checks (2 limits: RL.TOKEN, RL.FIXED; "
               "4 limits: RL.TOKEN, RL.FIXED, RL.SLIDING, RL.GCRA), each on its own key:\n")
    out.append("| | µs/call hot | ÷ one single-key call | µs/call distinct | ÷ one single-key call |")
    out.append("|---|---:|---:|---:|---:|")
    for name in ALL_PARTS:
        cells = [name]
        for mode in ("hot", "dist"):
            x = all_vs_single(lambda n, mode=mode: results[n][mode][0], name)
            cells += [fmt(results[name][mode][0]), f"{x:.2f}x" if x is not None else "—"]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append(f"### Throughput: `redis-benchmark -c 50`, pipeline 16 ({n16:,} calls) and 1 ({n1:,})\n")
    out.append("Requests per second seen by the client (redis-benchmark shares the 2 cores "
               "with the server). ×INCR, ×floor and ×Lua are throughput ratios (higher is "
               "better).\n")
    out.append("| command | P16 hot | ×INCR | ×floor | ×Lua | P16 distinct | ×INCR | ×floor | ×Lua "
               "| P1 hot | ×INCR | P1 distinct | ×INCR |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, base in rows:
        r = results[name]
        bl = results.get(base) if base else None
        cells = [name]
        for mode in ("hot", "dist"):
            cells += [fmt(r[mode][1]), ratio(r[mode][1], incr[mode][1]),
                      ratio(r[mode][1], floor[mode][1]) if name != "INCR" else "—",
                      ratio(r[mode][1], bl[mode][1]) if bl else "—"]
        for mode in ("hot", "dist"):
            cells += [fmt(r[mode][2]), ratio(r[mode][2], incr[mode][2])]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append("### Ceiling: decisions per second on one server core, pipeline 16\n")
    out.append("The calls of each pipeline-16 run above ÷ the CPU time of the server's main "
               "thread during it (`used_cpu_user_main_thread` + `used_cpu_sys_main_thread` of "
               "`INFO cpu`): reading, parsing, the command, replying and replicating, so what "
               "one core given to the server alone would decide. redis-benchmark's own CPU is "
               "left out, which the client-side rates above are not. Higher is better.\n")
    out.append("| command | hot /s | ×INCR | ×floor | distinct /s | ×INCR | ×floor |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for name, _ in rows:
        r = results[name]
        cells = [name]
        for mode in ("hot", "dist"):
            c = r[mode][3]
            cells += [fmt(c), ratio(c, incr[mode][3]),
                      ratio(c, floor[mode][3]) if name != "INCR" else "—"]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    first_us, first_rps = incr["hot"][0], incr["hot"][1]
    f_us, f_rps = floor["hot"][0], floor["hot"][1]
    out.append(f"Noise: `INCR` on a hot key measured again after all the rows above: "
               f"{fmt(again[1])} µs/call ({pct(again[1], first_us)} from the first "
               f"measurement) and {fmt(again[0])} ops/s at P16 ({pct(again[0], first_rps)}); "
               f"the floor: {fmt(floor_again[1])} µs/call ({pct(floor_again[1], f_us)}) and "
               f"{fmt(floor_again[0])} ops/s ({pct(floor_again[0], f_rps)}).\n")
    results["INCR again"] = {"hot": (again[1], again[0], None)}
    results["floor again"] = {"hot": (floor_again[1], floor_again[0], None)}
    return results


def cmdstat(b, cmdname):
    """(calls, usec) of a command since the last CONFIG RESETSTAT."""
    stats = {k.lower(): v for k, v in b.r.info("commandstats").items()}
    row = stats.get("cmdstat_" + cmdname.lower(), "")
    calls = re.search(r"calls=(\d+)", row)
    usec = re.search(r"usec=(\d+)", row)
    return (int(calls.group(1)), int(usec.group(1))) if calls and usec else (0, 0)


def by_command(calls, per):
    """Lines of one row: one per command ({command: figure}), then the mean
    per call (weighted by calls) when the row runs more than one command."""
    lines = [(c, per[c]) for c in calls]
    if len(calls) > 1:
        total = sum(calls.values())
        lines.append(("per call", sum(per[c] * calls[c] for c in calls) / total))
    return lines


def describe_newer(out, rows):
    out.append("How each row of the newer commands is set up and measured:\n")
    for row in rows:
        if row.name not in NEWER_YARDSTICKS:
            out.append(f"- {row.name}: {row.how}.")
    out.append("")


def base_figure(base, c):
    """The figure of command `c` (or "per call") in a base row's lines: the
    same command's, or the only command's of a one-command row."""
    if c in base:
        return base[c]
    return next(iter(base.values())) if len(base) == 1 else None


def section_newer(b, out, cfg):
    """µs per call of the newer commands on hot keys (newer_rows()), each
    against INCR, the floor and its base, all measured the same way here."""
    n = cfg["n_newer"]
    rows = newer_rows()
    results = {}
    for row in rows + [r for r in rows if r.name in ("INCR", "floor")]:
        b.flush()
        run_setup(b.r, row.setup())
        _, prev = drive(b.r, row, cfg["warm_newer"])
        b.r.call("CONFIG", "RESETSTAT")
        calls, _ = drive(b.r, row, n // 16, prev)
        per = {}
        for c, k in calls.items():
            seen, usec = cmdstat(b, c)
            if seen != k:
                raise RuntimeError(f"{row.name}: {k} calls of {c} sent, {seen} in commandstats")
            per[c] = usec / k
        name = row.name + (" again" if row.name in results else "")
        results[name] = (calls, per, dict(by_command(calls, per)))
        log(f"  {name:34} " + "  ".join(f"{c} {u:.3f} µs" for c, u in by_command(calls, per)))
    b.flush()
    out.append("### Newer commands on a hot key: refunds, the penalty box, leases\n")
    out.append(f"Each row on a key of its own, set up first; then {n:,} calls in batches of 16 on "
               "one connection (pipeline 16) from the driver, which checks every reply (so each "
               "measured call does what the row says), after a warm-up. µs per call of each "
               "command from `INFO commandstats`; a row of two commands also per call, the mean "
               "of both. The driver is slower than redis-benchmark (the server waits between "
               "batches), so INCR, the floor and the base rows are measured here the same way, "
               "and the ratios are to them: ×INCR, ×floor, and ÷ base, this ÷ the same command "
               "(or the mean per call) of the row named.\n")
    out.append("| row | command | µs/call | ×INCR | ×floor | base | ÷ base |")
    out.append("|---|---|---:|---:|---:|---|---:|")
    incr, floor = results["INCR"][2]["INCR"], results["floor"][2]["FLOOR.HIT"]
    for row in rows:
        base = results[row.base][2] if row.base else {}
        for i, (c, us) in enumerate(results[row.name][2].items()):
            cells = [row.name if i == 0 else "", c, fmt(us, 3), ratio(us, incr),
                     ratio(us, floor) if row.name != "INCR" else "—",
                     (row.base or "—") if i == 0 else "", ratio(us, base_figure(base, c))]
            out.append("| " + " | ".join(cells) + " |")
    out.append("")
    describe_newer(out, rows)
    i_again, f_again = results["INCR again"][2]["INCR"], results["floor again"][2]["FLOOR.HIT"]
    out.append(f"Noise: INCR measured again after the rows: {fmt(i_again, 3)} µs/call "
               f"({pct(i_again, incr)}); the floor {fmt(f_again, 3)} µs/call "
               f"({pct(f_again, floor)}).\n")
    return results


def pct(a, b):
    if a is None or not b:
        return "—"
    return f"{(a / b - 1) * 100:+.0f}%"


def used_memory(b):
    return int(b.r.info("memory")["used_memory"])


def section_memory(b, out, cfg):
    n = cfg["mem_keys"]
    sha = b.sha
    now_ms = int(time.time() * 1000)
    # (name, command for limiter i, lua baseline name); every key lives >= 1h.
    specs = [
        ("INCR (a plain counter)", lambda i: ["INCR", f"m:{i}"], None),
        ("RL.FIXED", lambda i: ["RL.FIXED", f"m:{i}", 100, "1h"], "Lua fixed"),
        ("RL.SLIDING", lambda i: ["RL.SLIDING", f"m:{i}", 100, "1h"], "Lua sliding"),
        ("RL.LOG (1 entry)", lambda i: ["RL.LOG", f"m:{i}", 100, "1h"], "Lua log (ZSET, 1 entry)"),
        ("RL.TOKEN", lambda i: ["RL.TOKEN", f"m:{i}", 100, 1, "1h"], "Lua token"),
        ("RL.LEAKY", lambda i: ["RL.LEAKY", f"m:{i}", 100, 1, "1h"], "Lua token"),
        ("RL.GCRA", lambda i: ["RL.GCRA", f"m:{i}", 99, 1, "1h"], "Lua gcra"),
        ("Lua fixed", lambda i: ["EVALSHA", sha["fixed"], 1, f"m:{i}", 100, 3_600_000], None),
        # Both windows' keys exist, as in steady state: a call in the previous
        # window and one in the current one.
        ("Lua sliding", None, None),
        ("Lua log (ZSET, 1 entry)", lambda i: ["EVALSHA", sha["log"], 1, f"m:{i}", 100, 3_600_000], None),
        ("Lua token", lambda i: ["EVALSHA", sha["token"], 1, f"m:{i}", 100, 1, 3_600_000], None),
        ("Lua gcra", lambda i: ["EVALSHA", sha["gcra"], 1, f"m:{i}", 99, 1, 3_600_000], None),
    ]
    results = {}
    for name, make, _ in specs:
        b.flush()
        if make is None:  # Lua sliding: two calls per limiter
            w = 3_600_000

            def gen(w=w):
                for i in range(n):
                    yield ["EVALSHA", sha["sliding"], 1, f"m:{i}", 100, w, 1, now_ms - w]
                    yield ["EVALSHA", sha["sliding"], 1, f"m:{i}", 100, w, 1, now_ms]
            one = [["EVALSHA", sha["sliding"], 1, "one", 100, w, 1, now_ms - w],
                   ["EVALSHA", sha["sliding"], 1, "one", 100, w, 1, now_ms]]
        else:
            def gen(make=make):
                for i in range(n):
                    yield make(i)
            one = [make("one")]
        # MEMORY USAGE of one key (all keys of one limiter for Lua sliding).
        b.pipe(one)
        keys = [k.decode() for k in b.r.call("KEYS", "*")]
        usage = sum(b.r.call("MEMORY", "USAGE", k, "SAMPLES", "0") for k in keys)
        b.flush()
        before = used_memory(b)
        b.pipe_gen(gen(), n)
        after = used_memory(b)
        dbsize = b.r.call("DBSIZE")
        per = (after - before) / n
        results[name] = (usage, per, dbsize)
        log(f"  {name:26} MEMORY USAGE {usage}  used_memory/limiter {per:.1f}  keys {dbsize}")
    b.flush()

    out.append(f"### Memory per limiter ({n:,} limiters)\n")
    out.append("`MEMORY USAGE` of one limiter's key(s), and the growth of `used_memory` "
               f"divided by the number of limiters after creating {n:,} of them with one call each "
               "(key name `m:<i>`, expiry set; includes Redis' per-key overhead: dict entry, key, "
               "expiry entry). The sliding-window Lua baseline holds two keys per limiter (previous "
               "and current window), as in steady state.\n")
    out.append("| limiter | MEMORY USAGE (B) | used_memory / limiter (B) | Lua baseline (B / limiter) | Lua ÷ native |")
    out.append("|---|---:|---:|---:|---:|")
    for name, _, base in specs:
        if name.startswith("Lua"):
            continue
        usage, per, _ = results[name]
        bl = results.get(base) if base else None
        out.append(f"| {name} | {usage} | {per:.1f} | {fmt(bl[1], 1) if bl else '—'} | "
                   f"{ratio(bl[1], per) if bl else '—'} |")
    for name, _, _ in specs:
        if name.startswith("Lua"):
            usage, per, _ = results[name]
            out.append(f"| {name} | {usage} | {per:.1f} | | |")
    out.append("")
    return results


def section_log_memory(b, out, cfg):
    """RL.LOG against a ZSET log, both full, at limits 10, 100, 1000."""
    sha = b.sha
    rows = []
    for limit in (10, 100, 1000):
        n = cfg["log_keys"][limit]
        res = {}
        for kind in ("RL.LOG", "ZSET"):
            def make(i, kind=kind, limit=limit):
                if kind == "RL.LOG":
                    return ["RL.LOG", f"l:{i}", limit, "1h", "COST", limit]
                return ["EVALSHA", sha["log"], 1, f"l:{i}", limit, 3_600_000, limit]
            b.flush()
            b.pipe([make("one")])
            usage = b.r.call("MEMORY", "USAGE", "l:one", "SAMPLES", "0")
            b.flush()
            before = used_memory(b)
            b.pipe_gen((make(i) for i in range(n)), n, batch=max(1000, 200_000 // limit))
            per = (used_memory(b) - before) / n
            res[kind] = (usage, per)
            log(f"  log {limit:5} {kind:6} MEMORY USAGE {usage}  per key {per:.1f}")
        rows.append((limit, n, res))
    b.flush()
    out.append("### Full sliding logs: RL.LOG against a sorted set\n")
    out.append("Each log filled to its limit (one call of `COST limit`, window 1h). Per unit = "
               "(bytes per key) ÷ limit. Redis keeps a sorted set of up to 128 members as a "
               "listpack (compact), above that as a skiplist plus a dict.\n")
    out.append("| limit | keys | RL.LOG MEMORY USAGE | RL.LOG B/key | RL.LOG B/unit | ZSET MEMORY USAGE | ZSET B/key | ZSET B/unit | ZSET ÷ RL.LOG |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for limit, n, res in rows:
        (ru, rp), (zu, zp) = res["RL.LOG"], res["ZSET"]
        out.append(f"| {limit} | {n:,} | {ru} | {rp:.0f} | {rp / limit:.1f} | {zu} | {zp:.0f} | "
                   f"{zp / limit:.1f} | {ratio(zp, rp)} |")
    out.append("")
    return rows


def section_log_scaling(b, out, cfg, incr_us):
    """RL.LOG's cost per call on a full log as the limit grows."""
    sha = b.sha
    m = cfg["log_calls"]
    rows = []
    for limit in (10, 100, 1000, 10000):
        res = {}
        # Allowed on a full log: window = limit ms and AT advancing 1 ms per
        # call, so once full each call expires exactly one entry and adds one.
        t0 = int(time.time() * 1000)
        for kind in ("RL.LOG", "ZSET"):
            b.flush()

            def make(t, kind=kind, limit=limit):
                if kind == "RL.LOG":
                    return ["RL.LOG", "lg", limit, f"{limit}ms", "AT", t]
                return ["EVALSHA", sha["log"], 1, "lg", limit, limit, 1, t]
            b.pipe_gen((make(t0 + i) for i in range(limit)), limit)
            b.r.call("CONFIG", "RESETSTAT")
            b.pipe_gen((make(t0 + limit + i) for i in range(m)), m)
            us = b.usec_per_call("rl.log" if kind == "RL.LOG" else "evalsha")
            check = b.r.call(*make(t0 + limit + m))
            if check[0] != 1 or check[2] != 0:
                raise RuntimeError(f"log {kind} {limit}: not a full log being allowed: {check}")
            # Denied on a full log (window 1h), hot key, redis-benchmark.
            b.flush()
            if kind == "RL.LOG":
                fill = ["RL.LOG", "ld", limit, "1h", "COST", limit]
                cmd = ["RL.LOG", "ld", limit, "1h"]
            else:
                fill = ["EVALSHA", sha["log"], 1, "ld", limit, 3_600_000, limit]
                cmd = ["EVALSHA", sha["log"], 1, "ld", limit, 3_600_000]
            b.r.call(*fill)
            _, den = b.benchmark(cmd, cfg["n_denied"], 16)
            res[kind] = (us, den)
            log(f"  log {limit:5} {kind:6} allowed-full {us} µs  denied-full {den} µs")
        rows.append((limit, res))
    b.flush()
    out.append("### RL.LOG as the limit grows (full log)\n")
    out.append(f"Allowed on a full log: window = limit ms and `AT` advancing 1 ms per call, so each "
               f"of {m:,} calls drops the oldest entry and adds one. Denied on a full log: a hot key "
               f"filled to its limit, window 1h. µs per call from `INFO commandstats`; ×INCR against "
               f"INCR on a hot key ({fmt(incr_us)} µs) in this run.\n")
    out.append("| limit | RL.LOG allowed µs | ×INCR | ZSET allowed µs | ZSET ÷ RL.LOG | RL.LOG denied µs | ×INCR | ZSET denied µs | ZSET ÷ RL.LOG |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for limit, res in rows:
        (ra, rd), (za, zd) = res["RL.LOG"], res["ZSET"]
        out.append(f"| {limit:,} | {fmt(ra)} | {ratio(ra, incr_us)} | {fmt(za)} | {ratio(za, ra)} | "
                   f"{fmt(rd)} | {ratio(rd, incr_us)} | {fmt(zd)} | {ratio(zd, rd)} |")
    out.append("")
    return rows


def section_keyspace(b, out, cfg):
    """Every command's cost per call as the number of keys grows."""
    sizes = cfg["sizes"]
    specs = [
        ("INCR", ["INCR"]),
        ("RL.FIXED", ["RL.FIXED", BIG, "1h"]),
        ("RL.SLIDING", ["RL.SLIDING", BIG, "1h"]),
        ("RL.LOG", ["RL.LOG", 1000, "1h"]),
        ("RL.TOKEN", ["RL.TOKEN", BIG, 1_000_000, "1s"]),
        ("RL.LEAKY", ["RL.LEAKY", BIG, 1_000_000, "1s"]),
        ("RL.GCRA", ["RL.GCRA", BIG - 1, 1_000_000, "1s"]),
    ]
    results = {}
    for name, tail in specs:
        b.flush()
        have = 0
        res = []
        for size in sizes:
            # Pre-create keys 0..size-1 with redis-benchmark's key names.
            b.pipe_gen(([tail[0], f"s:{i:012d}", *tail[1:]] for i in range(have, size)), size - have)
            have = size
            _, us = b.benchmark([tail[0], "s:__rand_int__", *tail[1:]], cfg["n_keys"], 16, size)
            res.append(us)
        results[name] = res
        log(f"  {name:10} " + "  ".join(f"{s}:{u}" for s, u in zip(sizes, res)))
    b.flush()
    out.append("### Cost per call as the number of keys grows\n")
    out.append(f"Keys created first, then {cfg['n_keys']:,} calls at pipeline 16 spread at random "
               "over them; µs per call from `INFO commandstats`.\n")
    out.append("| command | " + " | ".join(f"{s:,} keys" for s in sizes) + " | last ÷ first |")
    out.append("|---|" + "---:|" * (len(sizes) + 1))
    for name, _ in specs:
        res = results[name]
        out.append(f"| {name} | " + " | ".join(fmt(u) for u in res) + f" | {ratio(res[-1], res[0])} |")
    out.append("")
    return results


class Callgrind:
    """A second redis-server running under valgrind's callgrind (started by
    scripts/bench with instrumentation off): counts the instructions the
    server runs for a batch of calls, which unlike timings is repeatable on a
    shared machine."""

    def __init__(self, port, pid, outdir, quick):
        self.b = Bench(port, quick)
        self.pid = pid
        self.dir = outdir
        self.seen = set(os.listdir(outdir))

    def ctl(self, *args):
        subprocess.run(["callgrind_control", *args, str(self.pid)], check=True,
                       capture_output=True)

    def run(self, batches):
        """Sends each batch (16 encoded commands) and reads its 16 replies."""
        r = self.b.r
        reply = None
        for blob in batches:
            r.sock.sendall(blob)
            for _ in range(16):
                reply = r.read()  # raises on an error reply
        return reply

    def measure(self, tag, cmd, n, setup=(), flush=True, warm=256, allowed=True):
        """Instructions per call of `cmd` (pipeline 16, one connection):
        (whole server, inside call(), {function: inclusive}). `warm` batches
        of 16 first (keys, allocator, script cache); `allowed`: check that
        the last call was allowed."""
        r = self.b.r
        if flush:
            r.call("FLUSHALL")
        for c in setup:
            r.call(*c)
        blob = Redis.encode(cmd) * 16
        return self.count(tag, [blob] * warm, [blob] * (n // 16), allowed)

    def measure_keys(self, tag, make, keys, n, setup=()):
        """As measure(), the 16 calls of each batch on the 16 `keys` in turn
        (make(key) each): every lookup pays the collisions of a table of 16
        keys (or an RL.ALL's 64), on average, where one key alone would pay
        none, and four a share that moves with the server's hash seed."""
        r = self.b.r
        r.call("FLUSHALL")
        for c in setup:
            r.call(*c)
        blob = b"".join(Redis.encode(make(k)) for k in keys)
        return self.count(tag, [blob] * 256, [blob] * (n // 16), True)

    def measure_distinct(self, tag, make, n, keys):
        """As measure(), each call on one of `keys` keys created first (one
        call of `make` each), picked at random."""
        r = self.b.r
        r.call("FLUSHALL")
        self.b.pipe_gen((make(f"d:{tag}:{i}") for i in range(keys)), keys)
        rng = random.Random(tag)

        def batches(count):
            return [b"".join(Redis.encode(make(f"d:{tag}:{rng.randrange(keys)}")) for _ in range(16))
                    for _ in range(count)]
        return self.count(tag + "-distinct", batches(256), batches(n // 16), True)

    def measure_row(self, tag, row, n):
        """As measure(), for a Row of newer_rows() (every reply checked):
        (whole server, inside call(), {function: inclusive}, {command: calls})."""
        r = self.b.r
        r.call("FLUSHALL")
        run_setup(r, row.setup())
        _, prev = drive(r, row, 256)
        self.ctl("-i", "on")
        calls, _ = drive(r, row, n // 16, prev)
        self.ctl("-i", "off")
        return (*self.collect(tag, sum(calls.values())), calls)

    def count(self, tag, warm, measured, allowed):
        self.run(warm)
        self.ctl("-i", "on")
        last = self.run(measured)
        self.ctl("-i", "off")
        if allowed and isinstance(last, list) and last[0] != 1:
            raise RuntimeError(f"{tag}: the measured calls were not allowed: {last}")
        return self.collect(tag, 16 * len(measured))

    def collect(self, tag, n):
        """Dumps the counts since the last dump: per call of `n` calls."""
        self.ctl("-d", tag)
        new = [f for f in os.listdir(self.dir) if f not in self.seen]
        self.seen.update(new)
        dumps = [f for f in new if re.search(r"\.out\.\d+$", f)]
        if len(dumps) != 1:
            raise RuntimeError(f"{tag}: expected one callgrind dump, found {new}")
        path = os.path.join(self.dir, dumps[0])
        total = None
        with open(path) as f:
            for line in f:
                if line.startswith(("totals:", "summary:")):
                    total = int(line.split()[1]) or total
        fns = {}
        text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                              check=True, capture_output=True, text=True).stdout
        for line in text.splitlines():
            m = re.match(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+\S*?:(.+?) \[.*\]$", line)
            if m:
                name = m.group(2)
                fns[name] = max(fns.get(name, 0), int(m.group(1).replace(",", "")))
        os.remove(path)
        return total / n, fns.get("call", 0) / n, {k: v / n for k, v in fns.items()}


# Where the instructions of a module command go: (column, functions summed).
BREAKDOWN = [
    ("RM_Replicate", ["RM_Replicate"]),
    ("reply", ["RM_ReplyWithArray", "RM_ReplyWithLongLong", "RM_ReplyWithMap",
               "RM_ReplyWithBool", "RM_ReplyWithSimpleString", "RM_ReplyWithStringBuffer",
               "RM_ReplyWithNull"]),
    ("open + close key", ["RM_OpenKey", "RM_CloseKey"]),
    ("parse", ["ratelimit::args::decide::request", "ratelimit::args::decide::all_request_into",
               "ratelimit::args::decide::refund_request", "ratelimit::args::lease::acquire_request",
               "ratelimit::args::lease::renew_request", "ratelimit::args::lease::release_request",
               # (RL.CHECK's policy name is read on its own, and in RL.ALL's
               # request, where it would count twice: it is in the rest.)
               "ratelimit::args::policy::check_options"]),
    # The limiter's evaluation (also a refund's, for the key's new expiry),
    # a refund, a lease operation: an acquire's decision and every lease
    # change's install (a release's or a renewal's decision, a lookup, is
    # inlined into its handler and counted in the rest).
    ("decide", ["ratelimit::algo::value::evaluate", "ratelimit::algo::limiter::Limiter::refund",
                "ratelimit::algo::lease::LeaseState::evaluate_acquire",
                "ratelimit::algo::lease::LeaseState::apply"]),
    ("set expiry", ["RM_SetAbsExpire", "RM_SetExpire"]),
]


# A command's own function in the module (what Redis' dispatcher calls).
HANDLER = "ratelimit::module::rl_"


def instr_by_command(res, calls):
    """Instructions inside call() per call of each command of a row
    ({command: instructions}, then "per call" for a row of several): the
    command's own handler (rl_acquire, ...) per call of it, plus the rest of
    call() (Redis' dispatch, the module context), the same for each."""
    _, inside, fns = res
    total = sum(calls.values())
    if len(calls) == 1:
        return {next(iter(calls)): inside}
    own = {c: fns.get(HANDLER + c.split(".", 1)[1].lower()) for c in calls}
    if any(v is None for v in own.values()):
        return {"per call": inside}
    shared = inside - sum(own.values())
    lines = {c: shared + own[c] * total / k for c, k in calls.items()}
    lines["per call"] = inside
    return lines


def section_newer_instructions(out, results, newer, newer_calls, described):
    """The newer commands' rows of the hot table by command, against the
    floor, INCR and their base rows."""
    incr, floor = results["INCR"][1], results["floor"][1]
    out.append("The newer commands by command: instructions inside `call()` per call of each (a "
               "lease pair split by the module's handler of each command, `rl_acquire` and "
               "`rl_release`, the rest of `call()` shared evenly), against INCR, the floor and "
               "the row named as base (its same command, or its only one):\n")
    out.append("| row | command | command instr/call | ×INCR | ×floor | base | ÷ base |")
    out.append("|---|---|---:|---:|---:|---|---:|")

    def lines_of(name):
        if name in newer_calls:
            return instr_by_command(results[name], newer_calls[name])
        return {name: results[name][1]}
    for row in newer:
        base = lines_of(row.base) if row.base else {}
        for i, (c, v) in enumerate(lines_of(row.name).items()):
            cells = [row.name if i == 0 else "", c, fmt(v, 0), ratio(v, incr), ratio(v, floor),
                     (row.base or "—") if i == 0 else "", ratio(v, base_figure(base, c))]
            out.append("| " + " | ".join(cells) + " |")
    out.append("")
    if not described:
        describe_newer(out, newer)


def section_instructions(cg, out, cfg, described):
    """Instructions per call by callgrind; `described`: the newer commands'
    rows were described by the timed section already."""
    n, keys = cfg["n_instr"], cfg["instr_keys"]
    specs = with_all(commands(cg.b))
    results = {}
    for idx, (name, hot, dist, base) in enumerate(specs):
        tag = re.sub(r"[^a-z0-9]", "", name.lower())
        # Each of the 16 keys is called again only after the other 15, which
        # under callgrind is milliseconds: the buckets get the distinct
        # rows' slow refill (a full bucket's key expires within a
        # millisecond, and every call would recreate it); the logs keep
        # their hot window, short enough to stay small.
        make = same_length(name, hot if "log" in tag else dist)
        hot_keys = [f"h{idx:02d}:{j:x}" for j in range(16)]
        # INCR from a large value: the in-place update, as in the timed runs.
        setup = [["SET", make(k)[1], 1_000_000] for k in hot_keys] if name == "INCR" else []
        results[name] = cg.measure_keys(tag, make, hot_keys, n, setup)
        log(f"  {name:18} {results[name][0]:,.0f} instructions/call, {results[name][1]:,.0f} in call()")
    # The newer commands (their yardsticks are rows above, measured alike).
    newer = [row for row in newer_rows() if row.name not in NEWER_YARDSTICKS]
    newer_calls = {}
    for i, row in enumerate(newer):
        server, inside, fns, newer_calls[row.name] = cg.measure_row(f"newer{i}", row, n)
        results[row.name] = (server, inside, fns)
        log(f"  {row.name:18} {results[row.name][0]:,.0f} instructions/call, "
            f"{results[row.name][1]:,.0f} in call()")
    # The table's rows: the newer ones before the Lua baselines.
    at = next(i for i, s in enumerate(specs) if s[0].startswith("Lua"))
    rows = [(s[0], s[3]) for s in specs[:at]] + [(r.name, None) for r in newer] \
        + [(s[0], s[3]) for s in specs[at:]]
    # Distinct keys: the rows the targets need, each call on one of `keys`
    # existing keys (the timed runs' distinct commands).
    distinct = {}
    for idx, (name, _, dist, _) in enumerate(specs):
        if name not in ("INCR", "floor", *SINGLE, "RL.ALL (4 limits)", "RL.ALL (4) COMBINED"):
            continue
        # Named by the row's place, so every row's names are as long.
        tag = f"d{idx:02d}"
        distinct[name] = cg.measure_distinct(tag, same_length(name, dist), n, keys)
        log(f"  {name:18} distinct {distinct[name][0]:,.0f} instructions/call, "
            f"{distinct[name][1]:,.0f} in call()")
    cg.b.flush()
    incr, floor = results["INCR"], results["floor"]
    out.append("### Instructions per call (callgrind)\n")
    out.append(f"Counted by valgrind's callgrind on a second redis-server: {n:,} calls per row on 16 hot "
               "keys in turn (RL.ALL: 16 sets of keys; every key named as long as an RL.ALL's, "
               "so that each row's lookups pay a share of hash collisions, not one lone key's "
               "none), pipeline 16 on one connection, every call allowed (INCR on a counter above "
               "10,000, updated in place) but in the rows of the newer commands, set up and "
               "checked as described with the newer commands' tables (a row of a lease pair "
               "counts per call, the mean of its two commands). *Server*: every instruction the "
               "server ran during the batch ÷ calls (reading, parsing, dispatching, the command, writing the reply; what "
               "bounds throughput). *Command*: inside Redis' `call()` (what `usec_per_call` times). "
               "Repeatable to about 1% between runs, so this is the figure to compare two builds "
               "with; it ignores cache misses, so it is not a time. ×floor: this ÷ `FLOOR.HIT`, "
               "the module-API floor.\n")
    out.append("| command | server instr/call | ×INCR | ×floor | Lua ÷ | command instr/call | ×INCR | ×floor | Lua ÷ |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, base in rows:
        r = results[name]
        bl = results.get(base) if base else None
        cells = [name]
        for i in (0, 1):
            cells += [fmt(r[i], 0), ratio(r[i], incr[i]),
                      ratio(r[i], floor[i]) if name != "INCR" else "—",
                      ratio(bl[i], r[i]) if bl else "—"]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append(f"The same over {keys:,} distinct keys: the keys created first with one call each, "
               f"then {n:,} calls each on one of them picked at random (INCR: counters below "
               "10,000, Redis' shared integers, so the key's value is replaced rather than "
               "updated in place, as in the timed distinct runs). Cache misses, the difference "
               "in time, do not show in instructions.\n")
    out.append("| command | server instr/call | ×INCR | ×floor | command instr/call | ×INCR | ×floor |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in distinct.items():
        cells = [name]
        for i in (0, 1):
            cells += [fmt(r[i], 0), ratio(r[i], distinct["INCR"][i]),
                      ratio(r[i], distinct["floor"][i]) if name != "INCR" else "—"]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append("RL.ALL ÷ one single-key call (the mean of the single-key commands of the limits it "
               "checks, as above), in instructions per call:\n")
    out.append("| | server, hot | command, hot | server, distinct | command, distinct |")
    out.append("|---|---:|---:|---:|---:|")
    for name in ALL_PARTS:
        cells = [name]
        for table in (results, distinct):
            for i in (0, 1):
                x = all_vs_single(lambda k, t=table, i=i: t[k][i] if k in t else None, name)
                cells.append(f"{x:.2f}x" if x is not None else "—")
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    section_newer_instructions(out, results, newer, newer_calls, described)
    out.append("Where the instructions of a command go, per call (inclusive counts). *Redis "
               "around it*: `call()` minus the command's own function (`incrCommand`, or "
               "`RedisModuleCommandDispatcher` for a module command); *rest*: the module's "
               "context, clock, counters, storing, signalling, and anything inlined.\n")
    out.append("| command | command | Redis around it | " + " | ".join(c for c, _ in BREAKDOWN)
               + " | rest |")
    out.append("|---|---:|---:|" + "---:|" * (len(BREAKDOWN) + 1))
    for name, _ in rows:
        if name not in ("INCR", "floor") and not name.startswith("RL."):
            continue
        _, inside, fns = results[name]
        own = fns.get("incrCommand" if name == "INCR" else "RedisModuleCommandDispatcher", 0)
        cells, rest = [], own
        for _, names in BREAKDOWN:
            v = sum(fns.get(f, 0) for f in names)
            rest -= v
            cells.append(fmt(v, 0) if v else "—")
        if name == "INCR":
            cells = ["—"] * len(BREAKDOWN)
        out.append(f"| {name} | {fmt(inside, 0)} | {fmt(inside - own, 0)} | " + " | ".join(cells)
                   + f" | {fmt(rest, 0)} |")
    out.append("")
    return {"hot": results, "dist": distinct}


# The big log: one RL.LOG key holding 100,000 entries (scripts/bench loads
# the module with log-max 100000), read whole by RL.INFO and RL.ALL.
BIG_LOG = 100_000
# (row name, command); the first row is the yardstick: a peek on a small key
# that exists (1h rather than 1s, so the key made once outlives every run).
BIG_ROWS = [
    ("peek: RL.TOKEN small 10 1 1h COST 0", ["RL.TOKEN", "small", 10, 1, "1h", "COST", 0]),
    ("RL.INFO big", ["RL.INFO", "big"]),
    (f"RL.ALL 1 big LOG {BIG_LOG} 1d COST 0", ["RL.ALL", 1, "big", "LOG", BIG_LOG, "1d", "COST", 0]),
    (f"RL.LOG big {BIG_LOG} 1d COST 0", ["RL.LOG", "big", BIG_LOG, "1d", "COST", 0]),
]


def build_big_log(b):
    """From an empty database: `big`, a full RL.LOG of 100,000 entries one
    millisecond apart (the last 100 s, each call allowed), and `small`, a
    token bucket with one call in it. Checks that the log is full."""
    b.flush()
    t0 = int(time.time() * 1000) - BIG_LOG - 1000
    b.pipe_gen((["RL.LOG", "big", BIG_LOG, "1d", "AT", t0 + i] for i in range(BIG_LOG)), BIG_LOG)
    b.r.call("RL.TOKEN", "small", 10, 1, "1h")
    if big_log_entries(b) != BIG_LOG:
        raise RuntimeError(f"the big log is not full: {b.r.call('RL.INFO', 'big')}")


def big_log_entries(b):
    info = b.r.call("RL.INFO", "big")  # a flat array of names and values (RESP2)
    return dict(zip(info[::2], info[1::2])).get(b"entries") if isinstance(info, list) else None


def section_big_log(b, cg, out, cfg):
    """RL.INFO and RL.ALL on a full 100,000-entry RL.LOG, against a peek on a
    small key: µs per call, and instructions when the callgrind server runs."""
    build_big_log(b)
    timed = {}
    for name, cmd in BIG_ROWS:
        # A first estimate, so a slow row gets fewer calls (about
        # cfg["big_seconds"] of server time, within [1,000, n_big]).
        b.r.call("CONFIG", "RESETSTAT")
        b.r.sock.sendall(Redis.encode(cmd) * 100)
        for _ in range(100):
            b.r.read()
        estimate = b.usec_per_call(cmd[0]) or 1.0
        n = min(cfg["n_big"], max(1000, int(cfg["big_seconds"] * 1e6 / max(estimate, 0.01))))
        n -= n % 16
        _, us = b.benchmark(cmd, n, 16)
        timed[name] = (us, n)
        log(f"  {name:40} {us} µs/call ({n:,} calls)")
    if not b.r.call("EXISTS", "small") or big_log_entries(b) != BIG_LOG:
        raise RuntimeError("the keys of the big-log section changed while measured")
    b.flush()
    counted = {}
    if cg:
        build_big_log(cg.b)
        for i, (name, cmd) in enumerate(BIG_ROWS):
            tag = f"biglog{i}"
            if i == 0:
                counted[name] = cg.measure(tag, cmd, cfg["n_instr"], flush=False, allowed=False)
            else:
                counted[name] = cg.measure(tag, cmd, cfg["n_instr_big"], flush=False, warm=2,
                                           allowed=False)
            log(f"  {name:40} {counted[name][0]:,.0f} instructions/call, "
                f"{counted[name][1]:,.0f} in call()")
        cg.b.flush()
    peek = BIG_ROWS[0][0]
    out.append(f"### A full {BIG_LOG:,}-entry log: RL.INFO and RL.ALL against a peek\n")
    out.append(f"One RL.LOG key `big`, limit {BIG_LOG:,} and window 1d, filled by {BIG_LOG:,} calls "
               "(`AT` one millisecond apart, over the last 100 s), so the log holds "
               f"{BIG_LOG:,} entries; `small` a token bucket with one call in it. µs per call from "
               "`INFO commandstats` under `redis-benchmark -c 50 -P 16` on the same key "
               f"({cfg['n_big']:,} calls a row, fewer for a slow command: about "
               f"{cfg['big_seconds']} s of server time)"
               + (f"; instructions by callgrind as above ({cfg['n_instr_big']:,} calls on the big "
                  f"log, {cfg['n_instr']:,} for the peek)" if cg else "")
               + ". ÷ peek: this ÷ the peek on the small key.\n")
    head = "| command | calls | µs/call | ÷ peek |"
    rule = "|---|---:|---:|---:|"
    if cg:
        head += " command instr/call | ÷ peek | server instr/call | ÷ peek |"
        rule += "---:|---:|---:|---:|"
    out.append(head)
    out.append(rule)
    for name, _ in BIG_ROWS:
        us, n = timed[name]
        cells = [name, f"{n:,}", fmt(us), ratio(us, timed[peek][0])]
        if cg:
            c = counted[name]
            cells += [fmt(c[1], 0), ratio(c[1], counted[peek][1]),
                      fmt(c[0], 0), ratio(c[0], counted[peek][0])]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    return {"peek": peek, "us": {k: v[0] for k, v in timed.items()},
            "instr": {k: (v[0], v[1]) for k, v in counted.items()}}


# --------------------------------------------------------------------------


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, ValueError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Linux {platform.release()}"


FLOOR_TARGET = 1.15  # every single-key RL.* ≤ this × the floor
ALL_TARGET = 2.5  # RL.ALL of 4 limits ≤ this × one single-key call
BIG_TARGET = 2.0  # RL.INFO / RL.ALL on a full 100,000-entry log ≤ this × a peek
CHECK_TARGET = 1.1  # RL.CHECK ≤ this × the policy's algorithm's own command
# The RL.CHECK rows of newer_rows(), each against its base (the own command).
CHECK_ROWS = ("RL.CHECK, TOKEN policy", "RL.CHECK, FIXED policy")


def targets(out, calls, mem, logmem, logscale, instr, big, newer=None):
    """Met or missed, with the numbers, for what this run measured. The
    module's own targets are against the module-API floor (INCR pays none of
    the module API, so INCR and Lua ratios are information only)."""
    lines = []
    skipped = []

    def check(ok, text):
        lines.append(f"- {'met' if ok else '**missed**'}: {text}")

    def x(v):
        return f"{v:.2f}x"

    if calls:
        floor = calls["floor"]
        for name in SINGLE:
            hot, dist = (calls[name][m][0] / floor[m][0] for m in ("hot", "dist"))
            check(max(hot, dist) <= FLOOR_TARGET,
                  f"{name} µs/call ≤ {FLOOR_TARGET}x floor (hot {x(hot)}, distinct {x(dist)})")
    else:
        skipped.append("RL.* ÷ floor in µs (calls)")
    if instr:
        hot_i, dist_i = instr["hot"], instr["dist"]
        for name in SINGLE:
            ch, cd = (t[name][1] / t["floor"][1] for t in (hot_i, dist_i))
            sh, sd = (t[name][0] / t["floor"][0] for t in (hot_i, dist_i))
            check(max(ch, cd) <= FLOOR_TARGET,
                  f"{name} instructions in the command ≤ {FLOOR_TARGET}x floor (hot {x(ch)}, "
                  f"distinct {x(cd)}; whole server hot {x(sh)}, distinct {x(sd)})")
    else:
        skipped.append("RL.* ÷ floor in instructions (instr)")
    for name in ("RL.ALL (4 limits)", "RL.ALL (4) COMBINED"):
        parts = ", ".join(ALL_PARTS[name])
        if calls:
            hot, dist = (all_vs_single(lambda k, m=m: calls[k][m][0], name) for m in ("hot", "dist"))
            check(max(hot, dist) <= ALL_TARGET,
                  f"{name} µs/call ≤ {ALL_TARGET}x one single-key call, the mean of {parts} "
                  f"(hot {x(hot)}, distinct {x(dist)})")
        if instr:
            ch, cd = (all_vs_single(lambda k, t=t: t[k][1], name) for t in (instr["hot"], instr["dist"]))
            sh, sd = (all_vs_single(lambda k, t=t: t[k][0], name) for t in (instr["hot"], instr["dist"]))
            check(max(ch, cd) <= ALL_TARGET,
                  f"{name} instructions in the command ≤ {ALL_TARGET}x one single-key call, the mean "
                  f"of {parts} (hot {x(ch)}, distinct {x(cd)}; whole server hot {x(sh)}, "
                  f"distinct {x(sd)})")
    if big:
        peek = big["peek"]
        for name, _ in BIG_ROWS[1:3]:
            us = big["us"][name] / big["us"][peek]
            text = (f"{name} on a full {BIG_LOG:,}-entry log ≤ {BIG_TARGET}x a peek on a small key: "
                    f"µs {big['us'][name]:.2f} vs {big['us'][peek]:.2f} = {x(us)}")
            worst = us
            if big["instr"]:
                ci = big["instr"][name][1] / big["instr"][peek][1]
                si = big["instr"][name][0] / big["instr"][peek][0]
                text += f"; instructions in the command {x(ci)}, whole server {x(si)}"
                worst = max(worst, ci)
            check(worst <= BIG_TARGET, text)
    else:
        skipped.append(f"RL.INFO / RL.ALL on a {BIG_LOG:,}-entry log (biglog)")
    rows = {r.name: r for r in newer_rows()}
    for name in CHECK_ROWS:
        base = rows[name].base
        figures = []
        if newer:
            figures.append(("µs", newer[name][2]["RL.CHECK"] / base_figure(newer[base][2], "RL.CHECK")))
        if instr:
            figures.append(("instructions in the command",
                            instr["hot"][name][1] / instr["hot"][base][1]))
            figures.append(("whole server", instr["hot"][name][0] / instr["hot"][base][0]))
        if figures:
            # Timings on a shared machine move by more than the target's
            # margin: when instructions are counted, they decide.
            decisive = dict(figures).get("instructions in the command", figures[0][1])
            check(decisive <= CHECK_TARGET, f"{name} ≤ {CHECK_TARGET}x {base} on a hot key ("
                  + ", ".join(f"{what} {x(v)}" for what, v in figures) + ")")
        else:
            skipped.append(f"{name} ÷ {base} (calls, instr)")
    if logscale:
        first = logscale[0][1]["RL.LOG"][0]
        last = logscale[-1][1]["RL.LOG"][0]
        check(last <= 1.5 * first,
              f"RL.LOG flat as the limit grows 10→10,000 (allowed on a full log "
              f"{first:.2f}→{last:.2f} µs)")
    else:
        skipped.append("RL.LOG flat as the limit grows (log)")
    if calls:
        base = {"RL.FIXED": "Lua fixed", "RL.SLIDING": "Lua sliding", "RL.LOG": "Lua log (ZSET)",
                "RL.TOKEN": "Lua token", "RL.LEAKY": "Lua token", "RL.GCRA": "Lua gcra"}
        for name, bl in base.items():
            worst = min(calls[bl][m][0] / calls[name][m][0] for m in ("hot", "dist"))
            check(worst >= 5, f"{name} ≥ 5x cheaper per call than {bl} (worst {worst:.2f}x)")
    if mem:
        for name in ("RL.FIXED", "RL.SLIDING", "RL.TOKEN", "RL.LEAKY", "RL.GCRA"):
            usage, per = mem[name][0], mem[name][1]
            check(usage <= 96, f"{name} ≤ 96 B per key by MEMORY USAGE ({usage} B; used_memory "
                               f"grows {per:.0f} B per limiter, INCR with an expiry "
                               f"{mem['Lua fixed'][1]:.0f} B)")
    else:
        skipped.append("memory")
    for limit, _, res in logmem or ():
        (ru, rp), zp = res["RL.LOG"], res["ZSET"][1]
        check(ru - 8 * limit <= 128,
              f"RL.LOG at limit {limit}: ≤ 8 B per unit + small constant (MEMORY USAGE "
              f"{ru} B = 8 × {limit} + {ru - 8 * limit} B)")
        check(zp >= 3 * rp, f"RL.LOG at limit {limit}: several times under the ZSET log "
                            f"(ZSET {zp / rp:.1f}x larger by used_memory)")
    out.append("### Targets\n")
    out.extend(lines)
    if skipped:
        out.append(f"- not measured in this run: {'; '.join(skipped)}")
    out.append("")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="",
                    help="comma list of sections (calls,memory,log,keys,instr,biglog)")
    ap.add_argument("--cg-port", type=int, help="a redis-server running under callgrind")
    ap.add_argument("--cg-pid", type=int)
    ap.add_argument("--cg-dir")
    a = ap.parse_args()
    if a.quick:
        cfg = {"n16": 50_000, "n1": 10_000, "keyspace": 100_000, "mem_keys": 20_000,
               "log_keys": {10: 2000, 100: 2000, 1000: 200}, "log_calls": 10_000,
               "n_denied": 20_000, "sizes": [1000, 10_000, 100_000], "n_keys": 30_000,
               "n_instr": 1600, "instr_keys": 20_000, "n_big": 20_000, "big_seconds": 0.5,
               "n_instr_big": 64, "n_newer": 50_000, "warm_newer": 64}
    else:
        cfg = {"n16": 500_000, "n1": 100_000, "keyspace": 100_000, "mem_keys": 1_000_000,
               "log_keys": {10: 100_000, 100: 20_000, 1000: 2000}, "log_calls": 100_000,
               "n_denied": 200_000, "sizes": [1000, 10_000, 100_000, 1_000_000],
               "n_keys": 300_000, "n_instr": 9600, "instr_keys": 100_000, "n_big": 200_000,
               "big_seconds": 2, "n_instr_big": 320, "n_newer": 400_000, "warm_newer": 256}
    b = Bench(a.port, a.quick)
    only = set(filter(None, a.only.split(",")))
    start = time.time()
    info = b.r.info("server")
    out = []
    out.append(f"## Benchmark {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC"
               f"{' (quick)' if a.quick else ''}\n")
    out.append(f"Machine: {machine()}; Redis {info.get('redis_version')}, "
               f"module built with `cargo build --release` and loaded with `log-max {BIG_LOG}`, "
               "beside the floor module (`scripts/bench.d/floor`); redis-benchmark on the same "
               "machine.\n")
    calls = mem = logmem = logscale = big = newer = None
    if not only or "calls" in only:
        log(f"==> [{time.time() - start:.0f} s] per call and throughput")
        calls = section_calls(b, out, cfg)
        log(f"==> [{time.time() - start:.0f} s] the newer commands per call")
        newer = section_newer(b, out, cfg)
    if not only or "memory" in only:
        log(f"==> [{time.time() - start:.0f} s] memory per limiter")
        mem = section_memory(b, out, cfg)
        logmem = section_log_memory(b, out, cfg)
    if not only or "log" in only:
        log(f"==> [{time.time() - start:.0f} s] RL.LOG scaling with the limit")
        incr_hot = calls["INCR"]["hot"][0] if calls else None
        logscale = section_log_scaling(b, out, cfg, incr_hot)
    if not only or "keys" in only:
        log(f"==> [{time.time() - start:.0f} s] scaling with the number of keys")
        section_keyspace(b, out, cfg)
    instr = None
    cg = Callgrind(a.cg_port, a.cg_pid, a.cg_dir, a.quick) if a.cg_port else None
    if (not only or "instr" in only) and cg:
        log(f"==> [{time.time() - start:.0f} s] instructions per call (callgrind)")
        instr = section_instructions(cg, out, cfg, described=calls is not None)
    if not only or "biglog" in only:
        log(f"==> [{time.time() - start:.0f} s] RL.INFO and RL.ALL on a full {BIG_LOG:,}-entry log")
        big = section_big_log(b, cg, out, cfg)
    targets(out, calls, mem, logmem, logscale, instr, big, newer)
    log(f"==> [{time.time() - start:.0f} s] done")
    out.append(f"_Run took {time.time() - start:.0f} s._\n")
    text = "\n".join(out)
    with open(a.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
