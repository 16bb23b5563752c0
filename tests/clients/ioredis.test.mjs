// ioredis' Cluster against scripts/cluster (README, "Redis Cluster from
// clients"): it knows the keys of the core commands only (its own table),
// so `cluster.call("RL.…")` goes to a random master, which answers MOVED
// unless it owns the key; declared as scripts with their KEYS, every RL.*
// call goes to its key's master.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import Redis from "ioredis";
import * as lib from "./cluster_lib.mjs";

// The fix as the README shows it: each script's KEYS are the command's keys,
// and ioredis routes EVALSHA by KEYS[1] (RL.ALL: numkeys given at the call).
const SCRIPTS = {
  rl: { numberOfKeys: 1, lua: "return redis.call(ARGV[1], KEYS[1], unpack(ARGV, 2))" },
  rlCheck: { numberOfKeys: 1, lua: "return redis.call('RL.CHECK', ARGV[1], KEYS[1], unpack(ARGV, 2))" },
  rlAll: {
    lua:
      "local a = {'RL.ALL', #KEYS} " +
      "for _, k in ipairs(KEYS) do a[#a + 1] = k end " +
      "for _, v in ipairs(ARGV) do a[#a + 1] = v end " +
      "return redis.call(unpack(a))",
  },
};

let topo;
let cluster;
before(async () => {
  topo = await lib.topology();
  cluster = new Redis.Cluster([{ host: "127.0.0.1", port: lib.BASE }], { scripts: SCRIPTS });
  await cluster.ping();
});
after(() => {
  cluster.disconnect();
  lib.closeAll();
});

test("the README shows the scripts this test declares", () => {
  const readme = fs.readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  // rlAll's Lua is written in pieces, one a line, there as here.
  for (const [name, { lua }] of Object.entries(SCRIPTS)) {
    for (const piece of lua.split(/ (?=for |return redis.call\(unpack)/)) {
      assert.ok(readme.includes(`"${piece}`), `README lacks ${name}'s ${piece}`);
    }
  }
});

test("cluster.call sends RL.* to a random master: MOVED, then the right answer", async () => {
  const { keys } = await lib.spreadKeys(topo, "io-naive");
  await lib.resetStats(topo);
  for (const k of keys) {
    const replies = [];
    for (const [name, , args] of lib.keyedCalls(k)) replies.push(await cluster.call(name, ...args));
    lib.checkReplies(k, replies);
  }
  const stats = await lib.readStats(topo);
  // 14 calls per key, each with a 2 in 3 chance of a wrong master.
  assert.ok(lib.totalMoved(stats) > 0, JSON.stringify(stats));
  const refreshes = topo.all.reduce((n, a) => n + (stats[a].calls["cluster|slots"] ?? 0), 0);
  assert.ok(refreshes > 0, "a MOVED makes ioredis refresh its slots (CLUSTER SLOTS)");
});

test("RL.* declared as scripts with their keys: every call on its key's master, no MOVED", async () => {
  const { keys, owners } = await lib.spreadKeys(topo, "io-fix");
  // The first EVALSHA of a script on a node may answer NOSCRIPT (not MOVED):
  // ioredis then sends EVAL to the same node.
  await lib.resetStats(topo);
  for (const k of keys) {
    const replies = [];
    for (const [name, at, args] of lib.keyedCalls(k)) {
      if (name === "RL.CHECK") replies.push(await cluster.rlCheck(args[at], args[0], ...args.slice(at + 1)));
      else if (name === "RL.ALL") replies.push(await cluster.rlAll(...args));
      else replies.push(await cluster.rl(args[0], name, ...args.slice(1)));
    }
    lib.checkReplies(k, replies);
  }
  lib.assertAllOnTheirNode(topo, owners, await lib.readStats(topo));
});

test("RL.POLICY: cluster.call reaches one master; cluster.nodes('master') reaches each", async () => {
  await lib.resetStats(topo);
  assert.equal(await cluster.call("RL.POLICY", "SET", "io-one", "FIXED", "5", "1m"), "OK");
  assert.equal((await lib.mastersHolding(topo, "io-one")).length, 1);
  await lib.dropPolicyEverywhere(topo, "io-one");

  const replies = await Promise.all(
    cluster.nodes("master").map((node) => node.call("RL.POLICY", "SET", "io-all", "FIXED", "5", "1m")),
  );
  assert.deepEqual(replies, ["OK", "OK", "OK"]);
  assert.deepEqual(await lib.mastersHolding(topo, "io-all"), topo.masters);
  await Promise.all(cluster.nodes("master").map((node) => node.call("RL.POLICY", "DEL", "io-all")));
  assert.deepEqual(await lib.mastersHolding(topo, "io-all"), []);
});
