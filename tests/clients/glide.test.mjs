// valkey-glide for Node.js (@valkey/valkey-glide, its native core from the
// platform package npm installs with it) against scripts/cluster (README,
// "Redis Cluster from clients"): `customCommand` of a command glide does not
// know routes by the command's first argument, right for the single-key
// commands, wrong for RL.CHECK (the policy name) and RL.ALL (numkeys),
// unless given a route.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { GlideClusterClient } from "@valkey/valkey-glide";
import * as lib from "./cluster_lib.mjs";

let topo;
let client;
before(async () => {
  topo = await lib.topology();
  client = await GlideClusterClient.createClient({
    addresses: [{ host: "127.0.0.1", port: lib.BASE }],
    requestTimeout: 5000,
  });
});
after(() => {
  client.close();
  lib.closeAll();
});

test("customCommand with a primarySlotKey route: every call on its key's master, no MOVED", async () => {
  const { keys, owners } = await lib.spreadKeys(topo, "gl-fix");
  await lib.resetStats(topo);
  for (const k of keys) {
    const replies = [];
    for (const [name, at, args] of lib.keyedCalls(k)) {
      const route = { type: "primarySlotKey", key: args[at] };
      replies.push(await client.customCommand([name, ...args], { route }));
    }
    lib.checkReplies(k, replies);
  }
  lib.assertAllOnTheirNode(topo, owners, await lib.readStats(topo));
});

test("customCommand without a route: by the first argument, so RL.CHECK and RL.ALL meet MOVED", async () => {
  const { keys, owners } = await lib.spreadKeys(topo, "gl-naive");
  const byPolicy = await lib.ownerOf(topo, "free");
  const byNumkeys = await lib.ownerOf(topo, "2");
  await lib.resetStats(topo);
  for (const k of keys) {
    const replies = [];
    for (const [name, , args] of lib.keyedCalls(k)) replies.push(await client.customCommand([name, ...args]));
    lib.checkReplies(k, replies);
  }
  const stats = await lib.readStats(topo);
  // Each RL.CHECK went first to the master of "free", each RL.ALL to that of
  // "2"; each of them answered MOVED for the keys it does not own, and only
  // those: the single-key commands all went right.
  const movedChecks = keys.filter((k) => owners.get(k) !== byPolicy).length;
  const movedAlls = keys.filter((k) => owners.get(k) !== byNumkeys).length;
  assert.ok(movedChecks > 0 && movedAlls > 0);
  assert.equal(lib.totalMoved(stats), movedChecks + movedAlls, JSON.stringify(stats));
});

test("RL.POLICY: customCommand reaches one master; the allPrimaries route reaches each", async () => {
  assert.equal(await client.customCommand(["RL.POLICY", "SET", "gl-one", "FIXED", "5", "1m"]), "OK");
  assert.deepEqual(await lib.mastersHolding(topo, "gl-one"), [await lib.ownerOf(topo, "SET")]);
  await lib.dropPolicyEverywhere(topo, "gl-one");

  const set = ["RL.POLICY", "SET", "gl-all", "FIXED", "5", "1m"];
  const replies = await client.customCommand(set, { route: "allPrimaries" });
  assert.deepEqual(replies.map((r) => r.value), ["OK", "OK", "OK"]);
  assert.deepEqual(await lib.mastersHolding(topo, "gl-all"), topo.masters);
  await client.customCommand(["RL.POLICY", "DEL", "gl-all"], { route: "allPrimaries" });
  assert.deepEqual(await lib.mastersHolding(topo, "gl-all"), []);
});
