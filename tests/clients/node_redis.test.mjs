// node-redis (`redis` on npm) createCluster against scripts/cluster (README,
// "Redis Cluster from clients"): `cluster.sendCommand(firstKey, isReadonly,
// args)` routes by the firstKey it is given and by nothing else, so the key
// to pass is the command's key: the 1st argument of the single-key commands,
// the 2nd of RL.CHECK, the first after numkeys for RL.ALL.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createCluster } from "redis";
import * as lib from "./cluster_lib.mjs";

const READONLY = new Set(["RL.PEEK", "RL.INFO"]);

let topo;
let cluster;
before(async () => {
  topo = await lib.topology();
  cluster = createCluster({ rootNodes: [{ url: `redis://127.0.0.1:${lib.BASE}` }] });
  cluster.on("error", (err) => console.error("node-redis:", err));
  await cluster.connect();
});
after(async () => {
  await cluster.close();
  lib.closeAll();
});

test("sendCommand with the command's key: every call on its key's master, no MOVED", async () => {
  const { keys, owners } = await lib.spreadKeys(topo, "nr-fix");
  await lib.resetStats(topo);
  for (const k of keys) {
    const replies = [];
    for (const [name, at, args] of lib.keyedCalls(k)) {
      replies.push(await cluster.sendCommand(args[at], READONLY.has(name), [name, ...args]));
    }
    lib.checkReplies(k, replies);
  }
  lib.assertAllOnTheirNode(topo, owners, await lib.readStats(topo));
});

test("sendCommand without a key: a random master, MOVED, then the right answer", async () => {
  const { keys } = await lib.spreadKeys(topo, "nr-nokey");
  await lib.resetStats(topo);
  for (const k of keys) {
    const replies = [];
    for (const [name, , args] of lib.keyedCalls(k)) {
      replies.push(await cluster.sendCommand(undefined, false, [name, ...args]));
    }
    lib.checkReplies(k, replies);
  }
  assert.ok(lib.totalMoved(await lib.readStats(topo)) > 0);
});

test("RL.CHECK or RL.ALL given its first argument as the key fails off that key's master", async () => {
  // "free" (the policy) and "2" (numkeys) hash to one master each; a user
  // key on another master is redirected there, and node-redis, routing by
  // the key it was given again, sends it back until it gives up.
  const wrong = await lib.ownerOf(topo, "free");
  const { keys, owners } = await lib.spreadKeys(topo, "nr-first");
  const away = keys.find((k) => owners.get(k) !== wrong);
  const home = keys.find((k) => owners.get(k) === wrong);
  await assert.rejects(cluster.sendCommand("free", false, ["RL.CHECK", "free", away]), /Too many Cluster redirections/);
  assert.deepEqual((await cluster.sendCommand("free", false, ["RL.CHECK", "free", home])).slice(0, 2), [1, 10]);

  const numkeysOwner = await lib.ownerOf(topo, "2");
  const awayAll = keys.find((k) => owners.get(k) !== numkeysOwner);
  const all = ["RL.ALL", "2", `{${awayAll}}:a`, `{${awayAll}}:b`, "FIXED", "10", "1h", "FIXED", "10", "1h"];
  await assert.rejects(cluster.sendCommand("2", false, all), /Too many Cluster redirections/);
  assert.equal((await cluster.sendCommand(`{${awayAll}}:a`, false, all))[0], 1);
});

test("RL.POLICY: sendCommand reaches one master; nodeClient of each of cluster.masters reaches each", async () => {
  assert.equal(await cluster.sendCommand(undefined, false, ["RL.POLICY", "SET", "nr-one", "FIXED", "5", "1m"]), "OK");
  assert.equal((await lib.mastersHolding(topo, "nr-one")).length, 1);
  await lib.dropPolicyEverywhere(topo, "nr-one");

  const replies = [];
  for (const master of cluster.masters) {
    const client = await cluster.nodeClient(master);
    replies.push(await client.sendCommand(["RL.POLICY", "SET", "nr-all", "FIXED", "5", "1m"]));
  }
  assert.deepEqual(replies, ["OK", "OK", "OK"]);
  assert.deepEqual(await lib.mastersHolding(topo, "nr-all"), topo.masters);
  await lib.dropPolicyEverywhere(topo, "nr-all");
});
