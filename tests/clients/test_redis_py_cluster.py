"""redis-py's RedisCluster routes every RL.* command by itself against the
cluster `scripts/cluster` starts (README, "Redis Cluster from clients").

Run by scripts/test with the FastAPI example's virtualenv (it has redis-py);
the cluster is started on free loopback ports and always stopped.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODULE = os.environ.get("RL_MODULE", str(ROOT / "target/debug/libratelimit.so"))


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_base() -> int:
    # Six nodes, each also needing its cluster bus port (+10000).
    for base in range(21000, 29000, 17):
        if all(_free(p) and _free(p + 10000) for p in range(base, base + 6)):
            return base
    raise RuntimeError("no six free ports")


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    base = _free_base()
    env = {**os.environ, "BASE_PORT": str(base), "RL_MODULE": MODULE}
    script = str(ROOT / "scripts/cluster")
    try:
        subprocess.run(["bash", script], env=env, check=True, timeout=180,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        rc = RedisCluster(host="127.0.0.1", port=base, socket_timeout=10)
        yield rc
        rc.close()
    finally:
        subprocess.run(["bash", script, "stop"], env=env, timeout=120,
                       stdout=subprocess.DEVNULL)  # fmt: skip


def _node_of(rc: RedisCluster, key: str) -> str:
    node = rc.get_node_from_key(key)
    return f"{node.host}:{node.port}"


def test_single_key_commands_route_by_their_key(cluster: RedisCluster) -> None:
    keys = [f"user:{i}" for i in range(30)]
    nodes = {_node_of(cluster, k) for k in keys}
    assert len(nodes) == 3, nodes  # the keys do spread over the masters
    for k in keys:
        assert cluster.execute_command("RL.TOKEN", k, 10, 5, "1h") == [1, 10, 9, 0, 200 * 3600]
        assert cluster.execute_command("RL.FIXED", f"{{{k}}}:f", 3, "1h")[0] == 1
        info = cluster.execute_command("RL.INFO", k)
        assert info is not None
        peek = cluster.execute_command("RL.PEEK", k, "TOKEN", 10, 5, "1h")
        assert peek[:3] == [1, 10, 8]


def test_rl_all_routes_by_its_hash_tag_and_refuses_crossslot(cluster: RedisCluster) -> None:
    reply = cluster.execute_command(
        "RL.ALL", 2, "{u42}:s", "{u42}:d", "TOKEN", 10, 10, "1s", "FIXED", 1000, "1d"
    )
    assert reply[:5] == [1, 10, 9, 0, 100]
    with pytest.raises(redis.exceptions.RedisClusterException):
        # No common hash tag: the client itself sees two slots.
        cluster.execute_command("RL.ALL", 2, "a", "b", "FIXED", 1, "1s", "FIXED", 1, "1s")
