//! A real Redis Cluster of 3 masters and 3 replicas, every node with the
//! module: commands route by key, RL.ALL needs one slot, and a promoted
//! replica answers exactly as its old master did.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Client, Server, Value};

const T0: i64 = 1_700_000_000_000;

struct Cluster {
    nodes: Vec<Server>,
    clients: HashMap<u16, Client>,
    /// Nodes killed on purpose.
    dead: HashSet<u16>,
}

impl Cluster {
    fn start() -> Cluster {
        let nodes: Vec<Server> = (0..6)
            .map(|_| {
                Server::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "3000",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli (redis-tools) is needed");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let mut cluster = Cluster {
            nodes,
            clients: HashMap::new(),
            dead: HashSet::new(),
        };
        cluster.wait_ok();
        cluster
    }

    /// Polls (returning as soon as it holds); the deadlines of these waits
    /// are safety limits, generous for a slow shared machine.
    fn wait_ok(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        for port in self.live() {
            while !self
                .node(port)
                .cmd("CLUSTER INFO")
                .text()
                .contains("cluster_state:ok")
            {
                assert!(Instant::now() < deadline, "cluster never became ok");
                std::thread::sleep(Duration::from_millis(100));
            }
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
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self
            .node(port)
            .cmd("INFO replication")
            .text()
            .contains("role:master")
        {
            assert!(Instant::now() < deadline, "{port} was never promoted");
            std::thread::sleep(Duration::from_millis(100));
        }
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

    /// The port of the replica of the master on `port`.
    fn replica_of(&mut self, port: u16) -> u16 {
        let id = self.node_id(port);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let nodes = self.node(port).cmd("CLUSTER NODES").text();
            for line in nodes.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() > 3 && f[3] == id && f[2].contains("slave") {
                    let addr = f[1].split('@').next().unwrap();
                    return addr.rsplit(':').next().unwrap().parse().unwrap();
                }
            }
            assert!(Instant::now() < deadline, "no replica of {port}: {nodes}");
            std::thread::sleep(Duration::from_millis(100));
        }
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
