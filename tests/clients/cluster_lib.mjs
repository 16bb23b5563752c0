// Shared by the Node.js client tests: the cluster's layout and, per node,
// what it ran and how many calls it refused with MOVED. Each test resets
// the statistics of every node (CONFIG RESETSTAT), runs its calls, then
// reads INFO errorstats and INFO commandstats: a call that reached the
// wrong node is counted there as a MOVED error (and a rejected call),
// one that reached the right node as a call of its command.
//
// The cluster is the one run.sh started with scripts/cluster; its first
// port is in RL_CLUSTER_PORT.
import assert from "node:assert/strict";
import Redis from "ioredis";

export const BASE = Number(process.env.RL_CLUSTER_PORT);
if (!BASE) throw new Error("RL_CLUSTER_PORT is not set: run tests/clients/run.sh");

const conns = new Map();
function conn(addr) {
  if (!conns.has(addr)) {
    const [host, port] = addr.split(":");
    // A plain (non-cluster) connection: it sends exactly where it is told.
    conns.set(addr, new Redis({ host, port: Number(port), lazyConnect: false }));
  }
  return conns.get(addr);
}

export function closeAll() {
  for (const c of conns.values()) c.disconnect();
  conns.clear();
}

// Masters with their slot ranges, and every node, from CLUSTER NODES.
export async function topology() {
  const text = await conn(`127.0.0.1:${BASE}`).call("CLUSTER", "NODES");
  const masters = [];
  const all = [];
  for (const line of text.trim().split("\n")) {
    const f = line.split(" ");
    const addr = f[1].replace(/@.*/, "");
    all.push(addr);
    if (!f[2].includes("master")) continue;
    const ranges = f.slice(8).filter((r) => /^\d+(-\d+)?$/.test(r)).map((r) => {
      const [a, b] = r.split("-").map(Number);
      return [a, b ?? a];
    });
    masters.push({ addr, ranges });
  }
  assert.equal(masters.length, 3);
  assert.equal(all.length, 6);
  return { masters: masters.map((m) => m.addr).sort(), all: all.sort(), ranges: masters };
}

export async function ownerOf(topo, key) {
  const slot = await conn(`127.0.0.1:${BASE}`).call("CLUSTER", "KEYSLOT", key);
  const m = topo.ranges.find((m) => m.ranges.some(([a, b]) => slot >= a && slot <= b));
  assert.ok(m, `no master serves slot ${slot}`);
  return m.addr;
}

export async function resetStats(topo) {
  for (const addr of topo.all) assert.equal(await conn(addr).call("CONFIG", "RESETSTAT"), "OK");
}

// { addr: { moved, calls: { "rl.token": n, ... } } } for every node.
export async function readStats(topo) {
  const out = {};
  for (const addr of topo.all) {
    const errors = await conn(addr).call("INFO", "errorstats");
    const moved = Number(/errorstat_MOVED:count=(\d+)/.exec(errors)?.[1] ?? 0);
    const calls = {};
    const cmds = await conn(addr).call("INFO", "commandstats");
    for (const m of cmds.matchAll(/cmdstat_([^:]+):calls=(\d+)/g)) calls[m[1].toLowerCase()] = Number(m[2]);
    out[addr] = { moved, calls };
  }
  return out;
}

export const totalMoved = (stats) => Object.values(stats).reduce((n, s) => n + s.moved, 0);

// perMaster keys of each master, named after prefix and this process (a
// test run again on the same cluster starts from fresh keys), with the
// master of each.
export async function spreadKeys(topo, prefix, perMaster = 4) {
  const owners = new Map();
  for (let i = 0; i < 1000 && owners.size < 3 * perMaster; i++) {
    const key = `${prefix}-${process.pid}:${i}`;
    const owner = await ownerOf(topo, key);
    if ([...owners.values()].filter((o) => o === owner).length < perMaster) owners.set(key, owner);
  }
  assert.equal(owners.size, 3 * perMaster, `keys ${prefix}-...:0..999 do not spread over the masters`);
  return { keys: [...owners.keys()], owners };
}

// Every keyed RL.* command of one user `k`, each on a key of k's slot (one
// hash tag), as [command, key position among the arguments, arguments].
// RL.CHECK's key is its 2nd argument, RL.ALL's keys follow numkeys.
export function keyedCalls(k) {
  const t = `{${k}}`;
  return [
    ["RL.TOKEN", 0, [`${t}:t`, "10", "5", "1h"]],
    ["RL.FIXED", 0, [`${t}:f`, "3", "1h"]],
    ["RL.SLIDING", 0, [`${t}:s`, "3", "1h"]],
    ["RL.LOG", 0, [`${t}:l`, "3", "1h"]],
    ["RL.LEAKY", 0, [`${t}:k`, "3", "1", "1h"]],
    ["RL.GCRA", 0, [`${t}:g`, "3", "1", "1h"]],
    ["RL.PEEK", 0, [`${t}:t`, "TOKEN", "10", "5", "1h"]],
    ["RL.INFO", 0, [`${t}:t`]],
    ["RL.REFUND", 0, [`${t}:f`, "1"]],
    ["RL.ACQUIRE", 0, [`${t}:c`, "2", "30s", "ID", "lease-1"]],
    ["RL.RENEW", 0, [`${t}:c`, "lease-1", "30s"]],
    ["RL.RELEASE", 0, [`${t}:c`, "lease-1"]],
    ["RL.CHECK", 1, ["free", `${t}:p`]],
    ["RL.ALL", 1, ["2", `${t}:a`, `${t}:b`, "TOKEN", "10", "10", "1s", "FIXED", "1000", "1d"]],
  ];
}

// The replies the calls above get on fresh keys (the TTL-like fields vary
// only with the parameters, which are fixed).
export function checkReplies(k, replies) {
  const norm = (r) => (Array.isArray(r) ? r.map(norm) : typeof r === "bigint" ? Number(r) : r);
  const [token, fixed, sliding, log, leaky, gcra, peek, info, refund, acquire, renew, release, check, all] =
    replies.map(norm);
  assert.deepEqual(token.slice(0, 3), [1, 10, 9], `${k} RL.TOKEN`);
  for (const r of [fixed, sliding, log]) assert.deepEqual(r.slice(0, 3), [1, 3, 2], `${k} window`);
  assert.equal(leaky[0], 1, `${k} RL.LEAKY`);
  assert.equal(gcra[0], 1, `${k} RL.GCRA`);
  assert.deepEqual(peek.slice(0, 3), [1, 10, 8], `${k} RL.PEEK`);
  assert.ok(info !== null && info !== undefined, `${k} RL.INFO`);
  assert.equal(refund, 1, `${k} RL.REFUND`);
  assert.deepEqual(acquire.slice(0, 3), [1, 2, 1], `${k} RL.ACQUIRE`);
  assert.equal(String(acquire[5]), "lease-1", `${k} RL.ACQUIRE lease id`);
  assert.equal(renew, 1, `${k} RL.RENEW`);
  assert.equal(release, 1, `${k} RL.RELEASE`);
  assert.deepEqual(check.slice(0, 3), [1, 10, 9], `${k} RL.CHECK free`);
  assert.deepEqual(all.slice(0, 5), [1, 10, 9, 0, 100], `${k} RL.ALL`);
}

// Each master ran each command once per key it owns, no node refused any.
export function assertAllOnTheirNode(topo, owners, stats) {
  assert.equal(totalMoved(stats), 0, `MOVED answered: ${JSON.stringify(stats)}`);
  const names = keyedCalls("x").map(([name]) => name.toLowerCase());
  for (const addr of topo.masters) {
    const mine = [...owners.values()].filter((o) => o === addr).length;
    for (const name of names) {
      assert.equal(stats[addr].calls[name] ?? 0, mine, `${name} calls on ${addr}`);
    }
  }
}

// Which masters hold policy `name` (RL.POLICY LIST asked of each).
export async function mastersHolding(topo, name) {
  const out = [];
  for (const addr of topo.masters) {
    const list = await conn(addr).call("RL.POLICY", "LIST");
    if (list.includes(name)) out.push(addr);
  }
  return out;
}

export async function dropPolicyEverywhere(topo, name) {
  for (const addr of topo.masters) await conn(addr).call("RL.POLICY", "DEL", name);
}
