"""valkey-glide for Python (valkey-glide on PyPI) against the cluster
`scripts/cluster` starts (README, "Redis Cluster from clients"):
custom_command of a command glide does not know routes by the command's first
argument, right for the single-key commands, wrong for RL.CHECK (the policy
name) and RL.ALL (numkeys), unless given a route: SlotKeyRoute to the key's
primary, AllPrimaries for RL.POLICY.
"""

from __future__ import annotations

import asyncio

from glide import (
    AllPrimaries,
    GlideClusterClient,
    GlideClusterClientConfiguration,
    NodeAddress,
    SlotKeyRoute,
    SlotType,
)

from conftest import Cluster, assert_all_on_their_node, check_replies, keyed_calls


async def _client(cluster: Cluster) -> GlideClusterClient:
    config = GlideClusterClientConfiguration(
        [NodeAddress("127.0.0.1", cluster.base)], request_timeout=5000
    )
    return await GlideClusterClient.create(config)


def _plain(reply: object) -> object:
    if isinstance(reply, list):
        return [_plain(r) for r in reply]
    return reply


def test_a_slot_key_route_sends_every_call_to_its_keys_master(cluster: Cluster) -> None:
    owners = cluster.spread_keys("gpy-fix")

    async def run() -> None:
        client = await _client(cluster)
        try:
            cluster.reset_stats()
            for k in owners:
                replies = []
                for name, at, args in keyed_calls(k):
                    route = SlotKeyRoute(SlotType.PRIMARY, args[at])
                    replies.append(_plain(await client.custom_command([name, *args], route=route)))
                check_replies(k, replies)
        finally:
            await client.close()

    asyncio.run(run())
    assert_all_on_their_node(cluster, owners)


def test_without_a_route_rl_check_and_rl_all_go_by_their_first_argument(cluster: Cluster) -> None:
    owners = cluster.spread_keys("gpy-naive")
    by_policy, by_numkeys = cluster.owner("free"), cluster.owner("2")

    async def run() -> None:
        client = await _client(cluster)
        try:
            cluster.reset_stats()
            for k in owners:
                check_replies(
                    k, [_plain(await client.custom_command([n, *a])) for n, _, a in keyed_calls(k)]
                )
        finally:
            await client.close()

    asyncio.run(run())
    # Each RL.CHECK went first to the master of "free", each RL.ALL to that
    # of "2"; they answered MOVED for the keys they do not own, and only
    # those: the single-key commands all went right.
    moved_checks = sum(1 for o in owners.values() if o != by_policy)
    moved_alls = sum(1 for o in owners.values() if o != by_numkeys)
    assert moved_checks > 0 and moved_alls > 0
    assert cluster.moved() == moved_checks + moved_alls


def test_rl_policy_reaches_one_master_unless_routed_to_all_primaries(cluster: Cluster) -> None:
    async def run() -> None:
        client = await _client(cluster)
        try:
            assert (
                await client.custom_command(["RL.POLICY", "SET", "gpy-one", "FIXED", "5", "1m"])
                == "OK"
            )
            assert cluster.masters_holding("gpy-one") == [cluster.owner("SET")]
            cluster.drop_policy("gpy-one")

            set_all = ["RL.POLICY", "SET", "gpy-all", "FIXED", "5", "1m"]
            replies = await client.custom_command(set_all, route=AllPrimaries())
            assert isinstance(replies, dict) and sorted(replies.values()) == ["OK"] * 3, replies
            assert cluster.masters_holding("gpy-all") == cluster.masters
            await client.custom_command(["RL.POLICY", "DEL", "gpy-all"], route=AllPrimaries())
            assert cluster.masters_holding("gpy-all") == []
        finally:
            await client.close()

    asyncio.run(run())
