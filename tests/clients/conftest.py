"""The Redis Cluster the Python client tests run against, and what each of
its nodes ran.

run.sh starts one cluster with scripts/cluster for every client test and
passes its first port in RL_CLUSTER_PORT; without it (pytest run alone) the
fixture starts its own on free loopback ports and always stops it.

A call that reached the wrong node is counted by that node as a MOVED error
(INFO errorstats), one that reached the right node as a call of its command
(INFO commandstats): each test resets every node's statistics first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

import pyserver  # tests/pyserver.py, on pytest's pythonpath (pytest.ini)


@dataclass
class Cluster:
    base: int
    masters: list[str]  # "127.0.0.1:port", sorted
    nodes: list[str]  # masters and replicas
    ranges: dict[str, list[tuple[int, int]]]

    def node(self, addr: str) -> redis.Redis:
        host, port = addr.split(":")
        return redis.Redis(host=host, port=int(port), socket_timeout=10, decode_responses=True)

    def owner(self, key: str) -> str:
        slot = int(self.node(self.masters[0]).execute_command("CLUSTER KEYSLOT", key))
        for addr, ranges in self.ranges.items():
            if any(a <= slot <= b for a, b in ranges):
                return addr
        raise AssertionError(f"no master serves slot {slot}")

    def reset_stats(self) -> None:
        for addr in self.nodes:
            assert self.node(addr).config_resetstat()

    def stats(self) -> dict[str, tuple[int, dict[str, int]]]:
        """{addr: (MOVED errors, {command: calls})} for every node."""
        out = {}
        for addr in self.nodes:
            r = self.node(addr)
            moved = r.info("errorstats").get("errorstat_MOVED", {}).get("count", 0)
            calls = {
                k.removeprefix("cmdstat_").lower(): v["calls"]
                for k, v in r.info("commandstats").items()
            }
            out[addr] = (moved, calls)
        return out

    def moved(self) -> int:
        return sum(moved for moved, _ in self.stats().values())

    def masters_holding(self, policy: str) -> list[str]:
        return [
            a for a in self.masters if policy in self.node(a).execute_command("RL.POLICY", "LIST")
        ]

    def drop_policy(self, policy: str) -> None:
        for addr in self.masters:
            self.node(addr).execute_command("RL.POLICY", "DEL", policy)

    def spread_keys(self, prefix: str, per_master: int = 4) -> dict[str, str]:
        """{key: its master}, per_master keys of each master, named after
        prefix and this process (a test run again on the same cluster
        starts from fresh keys)."""
        owners: dict[str, str] = {}
        for i in range(1000):
            key = f"{prefix}-{os.getpid()}:{i}"
            owner = self.owner(key)
            if sum(1 for o in owners.values() if o == owner) < per_master:
                owners[key] = owner
            if len(owners) == 3 * per_master:
                return owners
        raise AssertionError(f"keys {prefix}-...:0..999 do not spread over the masters")


def keyed_calls(k: str) -> list[tuple[str, int, list[str]]]:
    """Every keyed RL.* command of user k, on keys of k's slot, as (name,
    index of the key among the arguments, arguments); the same list as
    cluster_lib.mjs' keyedCalls."""
    t = f"{{{k}}}"
    return [
        ("RL.TOKEN", 0, [f"{t}:t", "10", "5", "1h"]),
        ("RL.FIXED", 0, [f"{t}:f", "3", "1h"]),
        ("RL.SLIDING", 0, [f"{t}:s", "3", "1h"]),
        ("RL.LOG", 0, [f"{t}:l", "3", "1h"]),
        ("RL.LEAKY", 0, [f"{t}:k", "3", "1", "1h"]),
        ("RL.GCRA", 0, [f"{t}:g", "3", "1", "1h"]),
        ("RL.PEEK", 0, [f"{t}:t", "TOKEN", "10", "5", "1h"]),
        ("RL.INFO", 0, [f"{t}:t"]),
        ("RL.REFUND", 0, [f"{t}:f", "1"]),
        ("RL.ACQUIRE", 0, [f"{t}:c", "2", "30s", "ID", "lease-1"]),
        ("RL.RENEW", 0, [f"{t}:c", "lease-1", "30s"]),
        ("RL.RELEASE", 0, [f"{t}:c", "lease-1"]),
        ("RL.CHECK", 1, ["free", f"{t}:p"]),
        ("RL.ALL", 1, ["2", f"{t}:a", f"{t}:b", "TOKEN", "10", "10", "1s", "FIXED", "1000", "1d"]),
    ]


def check_replies(k: str, replies: list[Any]) -> None:
    token, fixed, sliding, log, leaky, gcra, peek, info = replies[:8]
    refund, acquire, renew, release, check, rl_all = replies[8:]
    assert token[:3] == [1, 10, 9], (k, token)
    for r in (fixed, sliding, log):
        assert r[:3] == [1, 3, 2], (k, r)
    assert leaky[0] == 1 and gcra[0] == 1, (k, leaky, gcra)
    assert peek[:3] == [1, 10, 8], (k, peek)
    assert info is not None
    assert refund == 1, (k, refund)
    assert acquire[:3] == [1, 2, 1] and acquire[5] in (b"lease-1", "lease-1"), (k, acquire)
    assert (renew, release) == (1, 1), (k, renew, release)
    assert check[:3] == [1, 10, 9], (k, check)
    assert rl_all[:5] == [1, 10, 9, 0, 100], (k, rl_all)


def assert_all_on_their_node(cluster: Cluster, owners: dict[str, str]) -> None:
    """Each master ran each command once per key it owns; no node refused any."""
    stats = cluster.stats()
    assert sum(moved for moved, _ in stats.values()) == 0, stats
    for addr in cluster.masters:
        mine = sum(1 for o in owners.values() if o == addr)
        for name, _, _ in keyed_calls("x"):
            assert stats[addr][1].get(name.lower(), 0) == mine, (addr, name, stats[addr])


def _topology(base: int) -> Cluster:
    # "CLUSTER", "NODES" apart: redis-py would parse "CLUSTER NODES" into a dict.
    text = redis.Redis(port=base, decode_responses=True).execute_command("CLUSTER", "NODES")
    masters: dict[str, list[tuple[int, int]]] = {}
    nodes = []
    for line in str(text).strip().splitlines():
        f = line.split()
        addr = f[1].split("@")[0]
        nodes.append(addr)
        if "master" in f[2]:
            masters[addr] = [
                (int(r.split("-")[0]), int(r.split("-")[-1]))
                for r in f[8:]
                if re.fullmatch(r"\d+(-\d+)?", r)
            ]
    assert len(masters) == 3 and len(nodes) == 6, text
    return Cluster(base, sorted(masters), sorted(nodes), masters)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if os.environ.get("RL_CLUSTER_PORT"):
        yield _topology(int(os.environ["RL_CLUSTER_PORT"]))
        return
    with pyserver.cluster(pyserver.free_base(*pyserver.CLIENTS_PORTS)) as base:
        yield _topology(base)
