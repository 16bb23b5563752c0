"""The dashboard's data.json against known traffic (standalone, and merged
over the 3 masters of a cluster), its merging of replies, and its page."""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

import pytest
import redis
import redis.asyncio
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from redis.cluster import RedisCluster

from redis_ratelimit.fastapi import Limiter, token_check
from redis_ratelimit.fastapi.dashboard import dashboard, merge_info, merge_top, sample

from .conftest import Server


def test_merge_info_sums_algorithms_policies_and_fields() -> None:
    a = {"ratelimit_version": "0.3.0", "ratelimit_keys": 2, "ratelimit_fixed_calls": 5,
         "ratelimit_fixed_allowed": 3, "ratelimit_fixed_denied": 1,
         "ratelimit_fixed_shadow_denied": 1, "ratelimit_leases_denied": 4,
         "ratelimit_policy_0": {"name": "free", "calls": 2, "allowed": 1, "denied": 1,
                                "shadow_denied": 0}}  # fmt: skip
    b = {"ratelimit_version": "0.3.0", "ratelimit_keys": 1, "ratelimit_fixed_calls": 1,
         "ratelimit_fixed_allowed": 1, "ratelimit_fixed_denied": 0,
         "ratelimit_fixed_shadow_denied": 0, "ratelimit_all_calls": 7,
         "ratelimit_policy_0": "name=a,b=c,calls=3,allowed=1,denied=2,shadow_denied=0",
         "ratelimit_policy_1": "name=free,calls=1,allowed=0,denied=0,shadow_denied=1"}  # fmt: skip
    m = merge_info([a, b])
    assert m["algorithms"]["fixed"] == {"calls": 6, "allowed": 4, "denied": 1, "shadow_denied": 1}
    assert m["algorithms"]["all"]["calls"] == 7
    assert "leases" not in m["algorithms"]
    assert m["policies"] == {
        "free": {"calls": 3, "allowed": 1, "denied": 1, "shadow_denied": 1},
        "a,b=c": {"calls": 3, "allowed": 1, "denied": 2, "shadow_denied": 0},
    }
    assert m["fields"]["keys"] == 3 and m["fields"]["version"] == "0.3.0"
    assert m["fields"]["leases_denied"] == 4


def test_merge_top_resp2_and_resp3() -> None:
    def entry(key: str, count: int, policy: str | None = None) -> list[Any]:
        return [b"key", key.encode(), b"policy", policy, b"count", count, b"error", 0,
                b"denials", count, b"last_denied_ms", 5, b"truncated", 0]  # fmt: skip

    resp2 = [b"role", b"master", b"at_ms", 10, b"halflife_ms", 60000, b"size", 1000,
             b"tracked", 2, b"bound", 0, b"hidden", 1,
             b"keys", [entry("a", 7), entry("b", 2, "free")]]  # fmt: skip
    resp3 = {"role": "master", "at_ms": 12, "halflife_ms": 60000, "size": 1000, "tracked": 1,
             "bound": 3, "hidden": 0,
             "keys": [{"key": "c", "policy": None, "count": 5, "error": 1, "denials": 9,
                       "last_denied_ms": 11, "truncated": 0}]}  # fmt: skip
    top = merge_top([resp2, resp3], 2)
    assert [(e["key"], e["policy"], e["count"]) for e in top["keys"]] == [
        ("a", None, 7), ("c", None, 5)]  # fmt: skip
    assert top["keys"][1]["error"] == 1 and top["keys"][1]["denials"] == 9
    assert (top["tracked"], top["hidden"], top["bound"], top["at_ms"]) == (3, 1, 3, 12)


def app_with(server: Server, registry: CollectorRegistry) -> tuple[FastAPI, Limiter]:
    app = FastAPI()
    limiter = Limiter(redis.asyncio.Redis(port=server.port, socket_timeout=5), deny_cache=0,
                      metrics=registry)  # fmt: skip
    limiter.init_app(app)
    app.mount("/ratelimit", dashboard(limiter, authorize=None, top=1000))
    return app, limiter


def test_data_json_against_known_traffic(server: Server, sync_redis: redis.Redis) -> None:
    app, limiter = app_with(server, CollectorRegistry())
    sync_redis.execute_command("RL.POLICY", "SET", "dash-free", "FIXED", 2, "1h")
    real = limiter.limit("3/minute", algorithm="fixed", scope="dash-real")
    trial = limiter.limit("1/minute", algorithm="fixed", scope="dash-trial", shadow=True)
    pol = limiter.limit("policy:dash-free", scope="dash-policy")

    @app.get("/real", dependencies=[Depends(real)])
    async def r() -> str:
        return "ok"

    @app.get("/trial", dependencies=[Depends(trial)])
    async def t() -> str:
        return "ok"

    @app.get("/policy", dependencies=[Depends(pol)])
    async def p() -> str:
        return "ok"

    with TestClient(app) as c:
        before = c.get("/ratelimit/data.json").json()
        assert [c.get("/real").status_code for _ in range(23)] == [200] * 3 + [429] * 20
        assert [c.get("/trial").status_code for _ in range(6)] == [200] * 6
        assert [c.get("/policy").status_code for _ in range(5)] == [200] * 2 + [429] * 3
        after = c.get("/ratelimit/data.json").json()
        page = c.get("/ratelimit/")
    assert after["servers"] == [f"localhost:{server.port}"] and after["errors"] == []

    def delta(group: str, name: str) -> dict[str, int]:
        was = before["info"][group].get(name, {})
        return {k: v - was.get(k, 0) for k, v in after["info"][group][name].items()}

    # Every call is RL.FIXED (the policy's count under its algorithm too); a
    # shadow denial is neither allowed nor denied.
    assert delta("algorithms", "fixed") == {"calls": 34, "allowed": 3 + 1 + 2, "denied": 20 + 3,
                                            "shadow_denied": 5}  # fmt: skip
    assert delta("policies", "dash-free") == {"calls": 5, "allowed": 2, "denied": 3,
                                              "shadow_denied": 0}  # fmt: skip
    top = {e["key"]: e for e in after["top"]["keys"]}
    (real_key,) = [k for k in top if "dash-real" in k]
    assert top[real_key]["denials"] == 20 and top[real_key]["policy"] is None
    (policy_key,) = [k for k in top if "dash-policy" in k]
    assert top[policy_key]["denials"] == 3 and top[policy_key]["policy"] == "dash-free"
    (shadow_key,) = [e for e in after["shadow_top"]["keys"] if "dash-trial" in e["key"]]
    assert shadow_key["denials"] == 5
    lim = after["limiter"]
    assert lim["breaker"] == "closed" and lim["deny_cache"] == {"entries": 0, "hits": 0,
                                                                "top": []}  # fmt: skip
    assert lim["decisions"]["dash-real"]["allowed"] == 3
    assert lim["decisions"]["dash-real"]["denied"] == 20
    assert lim["decisions"]["dash-trial"]["shadow"] == 6
    # Every Redis call between the samples timed (the policy's reads too).
    assert lim["latency"]["count"] - before["limiter"]["latency"]["count"] >= 34
    assert lim["latency"]["buckets"][-1][0] is None
    # One page, nothing fetched from elsewhere (the SVG namespace is a name).
    assert page.status_code == 200 and "<svg" not in page.text and "data.json" in page.text
    assert re.findall(r"https?://[^\s\"'`]+", page.text) == ["http://www.w3.org/2000/svg"]
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page.text)
    limiter.close()
    sync_redis.execute_command("RL.POLICY", "DEL", "dash-free")  # the other tests list policies


def test_sample_merges_every_master_of_a_cluster(cluster_port: int) -> None:
    sync = RedisCluster(host="127.0.0.1", port=cluster_port, socket_timeout=10)
    keys = [f"dash:{n}" for n in ("a", "b", "c", "d", "e", "f")]
    slots = {sync.keyslot(k): k for k in keys}
    masters = {sync.get_node_from_key(k).name for k in keys}
    assert len(masters) == 3, "the keys should land on every master"
    for i, k in enumerate(keys):
        for _ in range(3 + i):  # 1 allowed, 2 + i denied
            sync.execute_command("RL.FIXED", k, 1, "1h")
    sync.close()
    assert len(slots) == len(keys)

    async def go() -> dict[str, Any]:
        rc = redis.asyncio.RedisCluster(host="127.0.0.1", port=cluster_port, socket_timeout=10)
        try:
            return await sample(Limiter(rc), top=1000)
        finally:
            await rc.aclose()

    data = asyncio.run(go())
    assert sorted(data["servers"]) == sorted(masters) and data["errors"] == []
    top = {e["key"]: e["denials"] for e in data["top"]["keys"] if e["key"].startswith("dash:")}
    assert top == {k: 2 + i for i, k in enumerate(keys)}
    assert data["info"]["algorithms"]["fixed"]["denied"] >= sum(2 + i for i in range(6))


def test_the_page_and_metrics_only_for_operators(server: Server) -> None:
    """authorize=: a shared secret as Bearer or as Basic's password; a check
    of the app's own that may refuse with its own status."""
    app = FastAPI()
    limiter = Limiter(redis.asyncio.Redis(port=server.port), metrics=CollectorRegistry())
    limiter.init_app(app)
    assert limiter.metrics is not None
    app.mount("/ratelimit", dashboard(limiter, authorize=token_check("s3cret")))
    app.mount("/metrics", limiter.metrics.app(authorize=token_check("s3cret")))

    async def admins_only(request: Request) -> bool:  # an async check of the app's own
        if request.headers.get("x-role") == "viewer":
            raise HTTPException(403, "operators only")
        return request.headers.get("x-role") == "admin"

    app.mount("/admin", dashboard(limiter, authorize=admins_only))
    basic = "Basic " + base64.b64encode(b"anyone:s3cret").decode()
    with TestClient(app) as c:
        for path in ("/ratelimit/", "/ratelimit/data.json", "/metrics/"):
            r = c.get(path)
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"] == 'Basic realm="operators"'
            assert "ratelimit" not in r.text.lower()
            for bad in ("Bearer s3cre", "Bearer s3cret2", "Basic !!", "Token s3cret",
                        "Basic " + base64.b64encode(b"s3cret").decode()):  # fmt: skip
                assert c.get(path, headers={"Authorization": bad}).status_code == 401, bad
            for good in ("Bearer s3cret", basic):
                assert c.get(path, headers={"Authorization": good}).status_code == 200, good
        assert "redis_ratelimit_decisions_total" in c.get(
            "/metrics/", headers={"Authorization": basic}).text  # fmt: skip
        assert c.get("/admin/", headers={"X-Role": "admin"}).status_code == 200
        r = c.get("/admin/data.json", headers={"X-Role": "viewer"})
        assert (r.status_code, r.text) == (403, "operators only")
        assert c.get("/admin/").status_code == 401
    with pytest.raises(ValueError):
        token_check("")
    limiter.close()


def test_denials_answered_by_the_deny_cache_are_listed_apart(server: Server) -> None:
    """RL.TOP sees one denial of an identity the deny cache then answers:
    the page lists the cache's entries with what they answered."""
    app = FastAPI()
    limiter = Limiter(redis.asyncio.Redis(port=server.port))
    limiter.init_app(app)
    app.mount("/ratelimit", dashboard(limiter, authorize=None))
    rule = limiter.limit("1/minute", algorithm="fixed", scope="dash-cached")

    @app.get("/c", dependencies=[Depends(rule)])
    async def c_() -> str:
        return "ok"

    with TestClient(app) as c:
        assert [c.get("/c").status_code for _ in range(5)] == [200] + [429] * 4
        data = c.get("/ratelimit/data.json").json()
    (cached,) = data["limiter"]["deny_cache"]["top"]
    assert "dash-cached" in cached["key"] and cached["hits"] == 3
    assert 0 < cached["left_ms"] <= 60_000
    (seen,) = [e for e in data["top"]["keys"] if e["key"] == cached["key"]]
    assert seen["denials"] == 1  # Redis was asked once after the limit
    limiter.close()
