"""redis-py's RedisCluster routes every keyed RL.* command by itself against
the cluster `scripts/cluster` starts (README, "Redis Cluster from clients"):
it reads COMMAND at start-up, so it knows RL.CHECK's key is the 2nd argument
and asks COMMAND GETKEYS for RL.ALL's. RL.POLICY has no key: it must be sent
to every primary, which redis-py does when told to.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from conftest import Cluster, assert_all_on_their_node, check_replies, keyed_calls


@pytest.fixture(scope="module")
def rc(cluster: Cluster) -> Iterator[RedisCluster]:
    client = RedisCluster(host="127.0.0.1", port=cluster.base, socket_timeout=10)
    yield client
    client.close()


def test_every_keyed_command_goes_to_its_keys_master(cluster: Cluster, rc: RedisCluster) -> None:
    owners = cluster.spread_keys("py")
    cluster.reset_stats()
    for k in owners:
        check_replies(k, [rc.execute_command(name, *args) for name, _, args in keyed_calls(k)])
    assert_all_on_their_node(cluster, owners)


def test_rl_all_keys_in_different_slots_are_refused_client_side(
    cluster: Cluster, rc: RedisCluster
) -> None:
    cluster.reset_stats()
    with pytest.raises(redis.exceptions.RedisClusterException):
        # No common hash tag: the client itself sees two slots.
        rc.execute_command("RL.ALL", 2, "a", "b", "FIXED", 1, "1s", "FIXED", 1, "1s")
    assert all(calls.get("rl.all", 0) == 0 for _, calls in cluster.stats().values())


def test_rl_policy_goes_nowhere_unless_sent_to_every_primary(
    cluster: Cluster, rc: RedisCluster
) -> None:
    with pytest.raises(redis.exceptions.RedisClusterException, match="Missing key"):
        rc.execute_command("RL.POLICY", "SET", "py-one", "FIXED", 5, "1m")
    assert cluster.masters_holding("py-one") == []

    replies = rc.execute_command(
        "RL.POLICY", "SET", "py-all", "FIXED", 5, "1m", target_nodes=RedisCluster.PRIMARIES
    )
    assert sorted(replies) == cluster.masters and set(replies.values()) == {b"OK"}
    assert cluster.masters_holding("py-all") == cluster.masters
    rc.execute_command("RL.POLICY", "DEL", "py-all", target_nodes=RedisCluster.PRIMARIES)
    assert cluster.masters_holding("py-all") == []
