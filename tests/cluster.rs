//! Redis Cluster: routing by key, failover, and policies on every node.
//!
//! A real Redis Cluster of 3 masters and 3 replicas, every node with the
//! module: commands route by key, RL.ALL needs one slot, a promoted
//! replica answers exactly as its old master did, and policies set on every
//! master reach every node and survive failover.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

use common::{wait_for, wait_until, Client, Server, Value, T0};

/// The safety limit of every wait for the cluster (it returns as soon as
/// what it waits for holds): generous, for a slow shared machine.
const WAIT: Duration = Duration::from_secs(120);

struct Cluster {
    nodes: Vec<Server>,
    clients: HashMap<u16, Client>,
    /// Nodes killed on purpose.
    dead: HashSet<u16>,
}

impl Cluster {
    fn start() -> Cluster {
        let nodes = common::start_cluster_nodes(3, 1, &["--cluster-node-timeout", "3000"]);
        let mut cluster = Cluster {
            nodes,
            clients: HashMap::new(),
            dead: HashSet::new(),
        };
        cluster.wait_ok();
        cluster
    }

    /// Waits until every live node says the cluster is ok.
    fn wait_ok(&mut self) {
        for port in self.live() {
            wait_until("the cluster becomes ok", WAIT, || {
                self.node(port)
                    .cmd("CLUSTER INFO")
                    .text()
                    .contains("cluster_state:ok")
            });
        }
    }

    fn live(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .map(|n| n.port)
            .filter(|p| !self.dead.contains(p))
            .collect()
    }

    /// Kills the node on `port` with SIGKILL: a crashed or lost machine.
    fn crash(&mut self, port: u16) {
        self.clients.remove(&port);
        self.dead.insert(port);
        let node = self.nodes.iter_mut().find(|n| n.port == port).unwrap();
        node.crash();
    }

    /// Waits until `port` is a master.
    fn wait_master(&mut self, port: u16) {
        wait_until(&format!("{port} is promoted"), WAIT, || {
            self.node(port)
                .cmd("INFO replication")
                .text()
                .contains("role:master")
        });
    }

    fn node(&mut self, port: u16) -> &mut Client {
        self.clients
            .entry(port)
            .or_insert_with(|| Client::connect(port).unwrap())
    }

    /// Sends a command like a cluster client: to any node, then wherever
    /// `MOVED` points. Returns the reply and the port that answered.
    fn call(&mut self, line: &str) -> (Value, u16) {
        let mut port = self.live()[0];
        for _ in 0..5 {
            let reply = self.node(port).cmd(line);
            if let Value::Error(e) = &reply {
                if let Some(rest) = e.strip_prefix("MOVED ") {
                    let addr = rest.split_whitespace().nth(1).unwrap();
                    port = addr.rsplit(':').next().unwrap().parse().unwrap();
                    continue;
                }
            }
            return (reply, port);
        }
        panic!("too many redirections for {line}");
    }

    fn node_id(&mut self, port: u16) -> String {
        self.node(port).cmd("CLUSTER MYID").text()
    }

    /// The ports of the masters, once there are exactly three (a node that
    /// just handed its slots over may still call itself master for a moment).
    fn masters(&mut self) -> Vec<u16> {
        wait_for("exactly three masters", WAIT, || {
            let masters: Vec<u16> = self
                .live()
                .into_iter()
                .filter(|&p| {
                    self.node(p)
                        .cmd("INFO replication")
                        .text()
                        .contains("role:master")
                })
                .collect();
            if masters.len() == 3 {
                Ok(masters)
            } else {
                Err(format!("masters: {masters:?}"))
            }
        })
    }

    /// `redis-cli --cluster call <node> <line> --cluster-only-masters`, the
    /// command the README gives to set a policy on every master; checks
    /// that each of the three masters answered OK (redis-cli exits 0 even
    /// when a node answers an error).
    fn call_masters(&self, line: &str) -> String {
        let any = format!("127.0.0.1:{}", self.live()[0]);
        let out = Command::new("redis-cli")
            .args(["--cluster", "call", &any])
            .args(line.split_whitespace())
            .arg("--cluster-only-masters")
            .output()
            .expect("redis-cli (redis-tools) is needed");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "redis-cli --cluster call: {text}");
        let oks = text.lines().filter(|l| l.ends_with(": OK")).count();
        assert_eq!(
            oks, 3,
            "every master, and only masters, should answer OK: {text}"
        );
        assert!(
            !text.contains("ERR") && !text.contains("READONLY"),
            "{text}"
        );
        text
    }

    /// The port of the replica of the master on `port`.
    fn replica_of(&mut self, port: u16) -> u16 {
        let id = self.node_id(port);
        wait_for(&format!("a replica of {port}"), WAIT, || {
            let nodes = self.node(port).cmd("CLUSTER NODES").text();
            for line in nodes.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() > 3 && f[3] == id && f[2].contains("slave") {
                    let addr = f[1].split('@').next().unwrap();
                    return Ok(addr.rsplit(':').next().unwrap().parse().unwrap());
                }
            }
            Err(nodes)
        })
    }
}

#[test]
fn cluster_routes_every_command_and_survives_failover() {
    let mut cluster = Cluster::start();

    // Every command, on keys spread over all slots and so all masters.
    // Periods of an hour: each key must still be there for RL.INFO (with
    // 1 s periods the buckets' keys expired a second after the call).
    let mut answered_by = std::collections::HashSet::new();
    for i in 0..120 {
        let line = match i % 6 {
            0 => format!("RL.FIXED key:{i} 5 1h"),
            1 => format!("RL.SLIDING key:{i} 5 1h"),
            2 => format!("RL.LOG key:{i} 5 1h"),
            3 => format!("RL.TOKEN key:{i} 5 1 1h"),
            4 => format!("RL.LEAKY key:{i} 5 1 1h"),
            _ => format!("RL.GCRA key:{i} 5 1 1h"),
        };
        let (reply, port) = cluster.call(&line);
        assert_eq!(reply.ints()[0], 1, "{line}: {reply:?}");
        answered_by.insert(port);
        let (info, _) = cluster.call(&format!("RL.INFO key:{i}"));
        assert!(matches!(info, Value::Array(_)), "{info:?}");
    }
    assert_eq!(answered_by.len(), 3, "keys should reach all three masters");

    // RL.ALL: one slot through a hash tag; different slots are refused.
    let (reply, _) = cluster.call("RL.ALL 2 {user1}:s {user1}:d TOKEN 10 10 1s FIXED 100 1d");
    let Value::Array(items) = &reply else {
        panic!("{reply:?}")
    };
    assert_eq!(items[0], Value::Int(1));
    let (reply, _) = cluster.call("RL.ALL 2 a b TOKEN 10 10 1s FIXED 100 1d");
    assert!(reply.err().starts_with("CROSSSLOT"), "{reply:?}");

    // Failover: fill keys in one slot, remember what the master answers at
    // a fixed instant, promote its replica, and ask the same there. The
    // keys live at least an hour: none expires during the two failovers.
    let lines: Vec<String> = (0..12)
        .map(|i| match i % 6 {
            0 => format!("RL.FIXED {{fo}}:{i} 10 1h"),
            1 => format!("RL.SLIDING {{fo}}:{i} 10 1h"),
            2 => format!("RL.LOG {{fo}}:{i} 10 1h"),
            3 => format!("RL.TOKEN {{fo}}:{i} 10 1 1h"),
            4 => format!("RL.LEAKY {{fo}}:{i} 10 1 1h"),
            _ => format!("RL.GCRA {{fo}}:{i} 9 1 1h"),
        })
        .collect();
    let mut master = 0;
    for line in &lines {
        for cost in [3, 2] {
            let (reply, port) = cluster.call(&format!("{line} COST {cost}"));
            assert!(matches!(reply, Value::Array(_)), "{reply:?}");
            master = port;
        }
    }
    let at = T0 * 2;
    let before: Vec<Value> = lines
        .iter()
        .map(|l| cluster.call(&format!("{l} COST 0 AT {at}")).0)
        .collect();
    let digests = |c: &mut Client| -> Vec<Value> {
        (0..12)
            .map(|i| c.cmd(&format!("DEBUG DIGEST-VALUE {{fo}}:{i}")))
            .collect()
    };
    let master_digests = digests(cluster.node(master));
    assert_eq!(cluster.node(master).cmd("WAIT 1 60000").int(), 1);

    let replica = cluster.replica_of(master);
    assert_eq!(
        cluster.node(replica).cmd("CLUSTER FAILOVER"),
        Value::Simple("OK".into())
    );
    cluster.wait_master(replica);
    cluster.wait_ok();
    assert_eq!(digests(cluster.node(replica)), master_digests);
    let after: Vec<Value> = lines
        .iter()
        .map(|l| {
            let (reply, port) = cluster.call(&format!("{l} COST 0 AT {at}"));
            assert_eq!(
                port, replica,
                "the slot should now be served by the promoted replica"
            );
            reply
        })
        .collect();
    assert_eq!(after, before, "the promoted replica answers differently");

    // Now the new master is lost outright (SIGKILL): the cluster promotes
    // the old master, which has been its replica since, and it too answers
    // exactly the same.
    assert_eq!(cluster.node(replica).cmd("WAIT 1 60000").int(), 1);
    cluster.crash(replica);
    cluster.wait_master(master);
    cluster.wait_ok();
    assert_eq!(digests(cluster.node(master)), master_digests);
    let after: Vec<Value> = lines
        .iter()
        .map(|l| {
            let (reply, port) = cluster.call(&format!("{l} COST 0 AT {at}"));
            assert_eq!(port, master, "the slot should be back on {master}");
            reply
        })
        .collect();
    assert_eq!(after, before, "the promoted old master answers differently");
    // And it keeps deciding: the next request spends from the same state.
    let (reply, _) = cluster.call(&format!("{} AT {at}", lines[0]));
    assert_eq!(reply.ints()[2], before[0].ints()[2] - 1, "{reply:?}");
    drop(cluster.nodes);
}

fn words(line: &str) -> Value {
    Value::Array(
        line.split_whitespace()
            .map(|w| Value::Bulk(w.as_bytes().to_vec()))
            .collect(),
    )
}

/// Waits until the node on `port` lists exactly `names` (a replica gets
/// the policies through replication, a moment after its master).
fn wait_policies(cluster: &mut Cluster, port: u16, names: &str) {
    let want = words(names);
    wait_until(
        &format!("RL.POLICY LIST on {port} should be {names}"),
        Duration::from_secs(60),
        || cluster.node(port).cmd("RL.POLICY LIST") == want,
    );
}

#[test]
fn policies_set_on_every_master_reach_every_node_and_survive_failover() {
    let mut cluster = Cluster::start();
    let defs = [
        ("free", "TOKEN 10 1 1d"),
        ("trial", "GCRA 5 1 1d PENALTY 1h SHADOW"),
    ];
    for (name, def) in defs {
        cluster.call_masters(&format!("RL.POLICY SET {name} {def}"));
    }
    let masters = cluster.masters();

    // Every node, replicas included, answers GET and LIST with the same
    // definitions: a replica holds what its master sent it.
    for port in cluster.live() {
        wait_policies(&mut cluster, port, "free trial");
        for (name, def) in defs {
            assert_eq!(
                cluster.node(port).cmd(&format!("RL.POLICY GET {name}")),
                words(def),
                "RL.POLICY GET {name} on {port}"
            );
        }
    }

    // RL.CHECK by name on keys in every master's slots.
    let mut keys_of: HashMap<u16, Vec<String>> = HashMap::new();
    for i in 0..60 {
        let key = format!("pol:{i}");
        let (reply, port) = cluster.call(&format!("RL.CHECK free {key} COST 3"));
        assert_eq!(reply.ints()[..3], [1, 10, 7], "{key}: {reply:?}");
        keys_of.entry(port).or_default().push(key);
    }
    let mut answered: Vec<u16> = keys_of.keys().copied().collect();
    answered.sort_unstable();
    let mut sorted = masters.clone();
    sorted.sort_unstable();
    assert_eq!(answered, sorted, "the keys should reach all three masters");

    // Failover: the promoted replica has the policies and the key's state,
    // and RL.CHECK goes on from that state. `free` refills one token a
    // day, so nothing refills while the test runs.
    let master = masters[0];
    let key = keys_of[&master][0].clone();
    let at = common::time_ms(&cluster.node(master).cmd("TIME")) + 3_600_000;
    let peek = format!("RL.CHECK free {key} COST 0 AT {at}");
    let digest = format!("DEBUG DIGEST-VALUE {key}");
    let (before, _) = cluster.call(&peek);
    let master_digest = cluster.node(master).cmd(&digest);
    assert_eq!(cluster.node(master).cmd("WAIT 1 60000").int(), 1);
    let replica = cluster.replica_of(master);
    assert_eq!(
        cluster.node(replica).cmd("CLUSTER FAILOVER"),
        Value::Simple("OK".into())
    );
    cluster.wait_master(replica);
    cluster.wait_ok();
    wait_policies(&mut cluster, replica, "free trial");
    for (name, def) in defs {
        assert_eq!(
            cluster.node(replica).cmd(&format!("RL.POLICY GET {name}")),
            words(def)
        );
    }
    assert_eq!(cluster.node(replica).cmd(&digest), master_digest);
    let (after, port) = cluster.call(&peek);
    assert_eq!(
        port, replica,
        "the slot should be served by the promoted replica"
    );
    assert_eq!(after, before, "the promoted replica answers differently");
    let (reply, _) = cluster.call(&format!("RL.CHECK free {key}"));
    assert_eq!(reply.ints()[..3], [1, 10, 6], "{reply:?}");
    // The old master, a replica now, still holds them too.
    wait_policies(&mut cluster, master, "free trial");

    // A policy set on one master only: that master decides with it, every
    // other one refuses the call, never allows it, and writes nothing.
    let masters = cluster.masters();
    let solo = masters[0];
    assert_eq!(
        cluster.node(solo).cmd("RL.POLICY SET solo FIXED 5 1h"),
        Value::Simple("OK".into())
    );
    let missing = Value::Error("ERR no such policy 'solo'".into());
    let mut refused_by = std::collections::HashSet::new();
    let mut allowed = 0;
    for i in 0..60 {
        let key = format!("solo:{i}");
        let (reply, port) = cluster.call(&format!("RL.CHECK solo {key}"));
        if port == solo {
            assert_eq!(reply.ints()[..3], [1, 5, 4], "{key}: {reply:?}");
            allowed += 1;
            continue;
        }
        assert_eq!(reply, missing, "{key} on {port}");
        for line in [
            format!("RL.PEEK {key} POLICY solo"),
            format!("RL.ALL 1 {key} POLICY solo"),
        ] {
            assert_eq!(cluster.call(&line), (missing.clone(), port), "{line}");
        }
        assert_eq!(cluster.node(port).cmd(&format!("EXISTS {key}")).int(), 0);
        refused_by.insert(port);
    }
    assert!(allowed > 0, "no key reached {solo}");
    assert_eq!(refused_by.len(), 2, "the other masters: {refused_by:?}");
    for port in cluster.live() {
        let role = cluster.node(port).cmd("INFO replication").text();
        let of_solo = port == solo || role.contains(&format!("master_port:{solo}\r\n"));
        let names = if of_solo {
            "free solo trial"
        } else {
            "free trial"
        };
        wait_policies(&mut cluster, port, names);
    }
    drop(cluster.nodes);
}
