//! `RL.TOP` against a real server: which keys are denied most, recently.
//! Decay is driven by `AT` (the decision time the summary counts with),
//! set an hour ahead of the server's clock so that the time the counts are
//! seen at is the latest decision, never the clock: no test waits.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{server_version, start_replica, wait_until, Client, Server, Value};

const H: i64 = 60_000;

/// An hour after the wall clock.
fn base() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(now.as_millis()).unwrap() + 3_600_000
}

#[derive(Debug, Default)]
struct Top {
    role: String,
    at_ms: i64,
    size: i64,
    tracked: i64,
    bound: i64,
    hidden: i64,
    keys: Vec<Entry>,
}

#[derive(Debug, Default, Clone, PartialEq)]
struct Entry {
    key: Vec<u8>,
    policy: Option<String>,
    count: i64,
    error: i64,
    denials: i64,
    last_ms: i64,
    truncated: i64,
}

/// A map's pairs, from a RESP3 map or a RESP2 flat array.
fn pairs(v: &Value) -> Vec<(String, Value)> {
    match v {
        Value::Map(p) => p.iter().map(|(k, v)| (k.text(), v.clone())).collect(),
        Value::Array(items) => {
            assert_eq!(items.len() % 2, 0, "{v:?}");
            items
                .chunks(2)
                .map(|p| (p[0].text(), p[1].clone()))
                .collect()
        }
        other => panic!("expected a map, got {other:?}"),
    }
}

fn parse(v: &Value) -> Top {
    let mut t = Top::default();
    let names: Vec<String> = pairs(v).iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        names,
        [
            "role",
            "at_ms",
            "halflife_ms",
            "size",
            "tracked",
            "bound",
            "hidden",
            "keys"
        ],
        "{v:?}"
    );
    for (k, v) in pairs(v) {
        match k.as_str() {
            "role" => t.role = v.text(),
            "at_ms" => t.at_ms = v.int(),
            "halflife_ms" => assert_eq!(v.int(), H),
            "size" => t.size = v.int(),
            "tracked" => t.tracked = v.int(),
            "bound" => t.bound = v.int(),
            "hidden" => t.hidden = v.int(),
            "keys" => {
                let Value::Array(items) = v else {
                    panic!("keys: {v:?}")
                };
                for item in &items {
                    let mut e = Entry::default();
                    for (k, v) in pairs(item) {
                        match k.as_str() {
                            "key" => e.key = v.bytes(),
                            "policy" => e.policy = (v != Value::Null).then(|| v.text()),
                            "count" => e.count = v.int(),
                            "error" => e.error = v.int(),
                            "denials" => e.denials = v.int(),
                            "last_denied_ms" => e.last_ms = v.int(),
                            "truncated" => e.truncated = v.int(),
                            other => panic!("unexpected field {other}"),
                        }
                    }
                    t.keys.push(e);
                }
            }
            other => panic!("unexpected field {other}"),
        }
    }
    t
}

fn top(c: &mut Client, args: &str) -> Top {
    let reply = c.cmd(&format!("RL.TOP {args}"));
    assert!(!reply.is_error(), "{reply:?}");
    parse(&reply)
}

/// (key, count) of what is listed.
fn counts(t: &Top) -> Vec<(String, i64)> {
    t.keys
        .iter()
        .map(|e| (String::from_utf8_lossy(&e.key).into_owned(), e.count))
        .collect()
}

fn pairs_of(v: &[(&str, i64)]) -> Vec<(String, i64)> {
    v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

/// Denies `key` `n` times at `at` with a one-per-day fixed window (the
/// first call of a fresh key is allowed, and not counted).
fn deny(c: &mut Client, key: &str, n: usize, at: i64) {
    if c.cmd(&format!("EXISTS {key}")).int() == 0 {
        assert_eq!(c.cmd(&format!("RL.FIXED {key} 1 1d AT {at}")).ints()[0], 1);
    }
    for _ in 0..n {
        assert_eq!(c.cmd(&format!("RL.FIXED {key} 1 1d AT {at}")).ints()[0], 0);
    }
}

fn info(c: &mut Client, field: &str) -> i64 {
    c.cmd("INFO ratelimit")
        .info_int(&format!("ratelimit_{field}"))
}

#[test]
fn counts_orders_and_decays_by_decision_time() {
    let s = Server::start();
    let mut c = s.client();
    let t0 = base();
    let empty = top(&mut c, "");
    assert_eq!(
        (empty.role.as_str(), empty.tracked, empty.keys.len()),
        ("master", 0, 0)
    );
    assert_eq!((empty.size, empty.bound, empty.hidden), (1000, 0, 0));
    deny(&mut c, "a", 6, t0);
    deny(&mut c, "b", 3, t0);
    deny(&mut c, "c", 1, t0);
    let t = top(&mut c, "");
    assert_eq!(counts(&t), pairs_of(&[("a", 6), ("b", 3), ("c", 1)]));
    assert_eq!(t.at_ms, t0);
    assert!(t
        .keys
        .iter()
        .all(|e| e.error == 0 && e.last_ms == t0 && e.policy.is_none() && e.truncated == 0));
    assert_eq!(t.keys[0].denials, 6);
    assert_eq!(counts(&top(&mut c, "COUNT 2")).len(), 2);
    // Two half-lives later: a 6/4 (1.5, shown 2), b 3/4 (1), c 1/4 (0:
    // no longer listed), and d's two new denials weigh more than a's six.
    deny(&mut c, "d", 2, t0 + 2 * H);
    let t = top(&mut c, "");
    assert_eq!(t.at_ms, t0 + 2 * H);
    assert_eq!(counts(&t), pairs_of(&[("d", 2), ("a", 2), ("b", 1)]));
    assert_eq!((t.tracked, t.keys[1].denials), (4, 6));
    // Twenty half-lives on, everything has left.
    deny(&mut c, "e", 1, t0 + 22 * H);
    assert_eq!(counts(&top(&mut c, "")), pairs_of(&[("e", 1)]));
    assert_eq!(info(&mut c, "top_keys"), 5);
    assert!(info(&mut c, "top_bytes") > 0);
}

#[test]
fn every_kind_of_denial_counts_and_allowed_calls_do_not() {
    let s = Server::start();
    let mut c = s.client();
    let t0 = base();
    for (key, call) in [
        ("sliding", "RL.SLIDING sliding 1 1d"),
        ("log", "RL.LOG log 1 1d"),
        ("token", "RL.TOKEN token 1 1 1d"),
        ("leaky", "RL.LEAKY leaky 1 1 1d"),
        ("gcra", "RL.GCRA gcra 0 1 1d"),
    ] {
        assert_eq!(c.cmd(&format!("{call} AT {t0}")).ints()[0], 1, "{key}");
        assert_eq!(c.cmd(&format!("{call} AT {t0}")).ints()[0], 0, "{key}");
    }
    // RL.ALL counts the key whose own limit denied, not the one that
    // would have allowed.
    c.cmd(&format!(
        "RL.ALL 2 all:x all:y FIXED 1 1d FIXED 5 1d AT {t0}"
    ));
    let r = c.cmd(&format!(
        "RL.ALL 2 all:x all:y FIXED 1 1d FIXED 5 1d AT {t0}"
    ));
    assert!(
        matches!(&r, Value::Array(items) if items[0] == Value::Int(0)),
        "{r:?}"
    );
    // A penalty box blocks, and a call on a blocked key is a denial.
    c.cmd(&format!("RL.FIXED pen 1 1s PENALTY 1d AT {t0}"));
    c.cmd(&format!("RL.FIXED pen 1 1s PENALTY 1d AT {t0}"));
    let blocked = c.cmd(&format!("RL.FIXED pen 1 1s PENALTY 1d AT {}", t0 + 5000));
    assert_eq!(blocked.ints()[0], 0);
    // A lease refused.
    let lease = c.cmd(&format!("RL.ACQUIRE lease 1 1d COST 2 AT {t0}"));
    assert!(matches!(&lease, Value::Array(items) if items[0] == Value::Int(0)));
    // Allowed calls, peeks and refunds add nothing.
    c.cmd(&format!("RL.FIXED free 100 1d AT {t0}"));
    c.cmd(&format!("RL.PEEK free FIXED 100 1d AT {t0}"));
    let t = top(&mut c, "COUNT 100");
    let mut listed: Vec<(String, i64)> = counts(&t);
    listed.sort();
    assert_eq!(
        listed,
        pairs_of(&[
            ("all:x", 1),
            ("gcra", 1),
            ("leaky", 1),
            ("lease", 1),
            ("log", 1),
            ("pen", 2),
            ("sliding", 1),
            ("token", 1),
        ])
    );
    assert_eq!(top(&mut c, "SHADOW").tracked, 0);
}

#[test]
fn shadow_denials_and_policies_are_kept_apart() {
    let s = Server::start();
    let mut c = s.client();
    let t0 = base();
    assert_eq!(c.cmd("RL.POLICY SET free FIXED 1 1d").text(), "OK");
    assert_eq!(c.cmd("RL.POLICY SET trial FIXED 1 1d SHADOW").text(), "OK");
    for _ in 0..3 {
        c.cmd(&format!("RL.CHECK free k1 AT {t0}"));
    }
    // The same key with the command's own parameters is another entry.
    c.cmd(&format!("RL.FIXED k1 1 1d AT {t0}"));
    for _ in 0..4 {
        // Shadow: answered allowed, counted apart.
        assert_eq!(c.cmd(&format!("RL.CHECK trial k2 AT {t0}")).ints()[0], 1);
    }
    c.cmd(&format!("RL.FIXED k3 1 1d SHADOW AT {t0}"));
    c.cmd(&format!("RL.FIXED k3 1 1d SHADOW AT {t0}"));
    let enforced = top(&mut c, "");
    let got: Vec<(String, Option<String>, i64)> = enforced
        .keys
        .iter()
        .map(|e| {
            (
                String::from_utf8_lossy(&e.key).into(),
                e.policy.clone(),
                e.count,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("k1".into(), Some("free".into()), 2),
            ("k1".into(), None, 1)
        ]
    );
    let free = top(&mut c, "POLICY free");
    assert_eq!(counts(&free), pairs_of(&[("k1", 2)]));
    assert_eq!(free.keys[0].policy.as_deref(), Some("free"));
    assert!(top(&mut c, "POLICY trial").keys.is_empty());
    let shadow = top(&mut c, "SHADOW");
    assert_eq!(counts(&shadow), pairs_of(&[("k2", 3), ("k3", 1)]));
    assert_eq!(shadow.keys[0].policy.as_deref(), Some("trial"));
    assert_eq!(
        counts(&top(&mut c, "SHADOW POLICY trial COUNT 5")),
        pairs_of(&[("k2", 3)])
    );
    assert_eq!(info(&mut c, "top_shadow_keys"), 2);
}

#[test]
fn lists_only_the_keys_the_caller_may_read() {
    let s = Server::start();
    let mut admin = s.client();
    let t0 = base();
    deny(&mut admin, "app:1", 3, t0);
    deny(&mut admin, "other:1", 5, t0);
    deny(&mut admin, "app:2", 1, t0);
    // By name, so that Redis 7.0 (no module ACL categories) grants it too.
    let grant = "+rl.top +rl.fixed";
    assert_eq!(
        admin
            .cmd(&format!("ACL SETUSER app on >pw ~app:* {grant}"))
            .text(),
        "OK"
    );
    assert_eq!(
        admin
            .cmd(&format!("ACL SETUSER none on >pw resetkeys {grant}"))
            .text(),
        "OK"
    );
    assert_eq!(
        admin
            .cmd(&format!("ACL SETUSER writer on >pw %W~* {grant}"))
            .text(),
        "OK"
    );
    let mut app = s.client();
    assert_eq!(app.cmd("AUTH app pw").text(), "OK");
    let t = top(&mut app, "");
    assert_eq!(counts(&t), pairs_of(&[("app:1", 3), ("app:2", 1)]));
    assert_eq!(t.hidden, 1);
    assert_eq!(counts(&top(&mut app, "COUNT 1")), pairs_of(&[("app:1", 3)]));
    for user in ["none", "writer"] {
        let mut c = s.client();
        assert_eq!(c.cmd(&format!("AUTH {user} pw")).text(), "OK");
        let t = top(&mut c, "");
        assert!(t.keys.is_empty(), "{user}: {t:?}");
        assert_eq!(t.hidden, 3, "{user}");
    }
    assert_eq!(top(&mut admin, "").keys.len(), 3);
}

#[test]
fn acl_categories_say_what_it_is() {
    let s = Server::start();
    let mut c = s.client();
    let version = server_version(&mut c);
    if version < (7, 2) {
        // Redis 7.0 cannot put module commands in ACL categories.
        return;
    }
    // COMMAND INFO's categories, not ACL CAT: Redis 7.4 leaves module
    // commands out of ACL CAT's lists of its own categories.
    let info = format!("{:?}", c.cmd("COMMAND INFO RL.TOP"));
    let mut want = vec!["@read", "@slow"];
    if version >= (7, 4) {
        // The module's own category needs RedisModule_AddACLCategory (7.4).
        want.push("@ratelimit");
    }
    for cat in want {
        assert!(info.contains(cat), "{cat}: {info}");
    }
    for cat in ["@write", "@admin", "@dangerous", "@fast"] {
        assert!(!info.contains(cat), "{cat}: {info}");
    }
}

#[test]
fn long_names_are_cut_and_marked() {
    let s = Server::start();
    let mut c = s.client();
    let t0 = base().to_string();
    let long = "x".repeat(300);
    for _ in 0..3 {
        c.cmd(&format!("RL.FIXED {long} 1 1d AT {t0}"));
    }
    let t = top(&mut c, "");
    assert_eq!(t.keys.len(), 1);
    assert_eq!(t.keys[0].key, long.as_bytes()[..256].to_vec());
    assert_eq!((t.keys[0].truncated, t.keys[0].count), (1, 2));
}

#[test]
fn a_replica_counts_nothing_and_says_so() {
    let master = Server::start();
    let replica = start_replica(&master, &[]);
    let mut m = master.client();
    let t0 = base();
    deny(&mut m, "k", 3, t0);
    common::sync(&mut m, 1);
    assert_eq!(counts(&top(&mut m, "")), pairs_of(&[("k", 3)]));
    let mut r = replica.client();
    let t = top(&mut r, "");
    assert_eq!((t.role.as_str(), t.tracked), ("replica", 0));
    assert!(t.keys.is_empty());
    assert_eq!(info(&mut r, "top_keys"), 0);
    // Not persisted either: a restart forgets.
    drop(r);
    drop(replica);
    let mut master = master;
    master.restart();
    let mut m = master.client();
    assert_eq!(top(&mut m, "").tracked, 0);
}

#[test]
fn config_set_resizes_at_once() {
    let s = Server::start_with(&["--ratelimit.top-size", "4"]);
    let mut c = s.client();
    let t0 = base();
    assert_eq!(
        c.cmd("CONFIG GET ratelimit.top-size").texts(),
        ["ratelimit.top-size", "4"]
    );
    for (i, key) in ["a", "b", "c", "d"].iter().enumerate() {
        deny(&mut c, key, i + 1, t0);
    }
    assert_eq!(info(&mut c, "top_keys"), 4);
    // Full: a fifth key replaces the smallest (a, 1) and inherits it.
    deny(&mut c, "e", 1, t0);
    let t = top(&mut c, "");
    assert_eq!(t.bound, 2);
    let e = t.keys.iter().find(|e| e.key == b"e").expect("e held");
    assert_eq!((e.count, e.error, e.denials), (2, 1, 1));
    assert!(!t.keys.iter().any(|e| e.key == b"a"));
    assert_eq!(c.cmd("CONFIG SET ratelimit.top-size 2").text(), "OK");
    assert_eq!(info(&mut c, "top_keys"), 2);
    assert_eq!(counts(&top(&mut c, "")), pairs_of(&[("d", 4), ("c", 3)]));
    assert_eq!(top(&mut c, "").size, 2);
    assert_eq!(c.cmd("CONFIG SET ratelimit.top-size 0").text(), "OK");
    assert_eq!(
        (info(&mut c, "top_keys"), info(&mut c, "top_bytes")),
        (0, 0)
    );
    deny(&mut c, "d", 1, t0);
    assert_eq!(info(&mut c, "top_keys"), 0);
    assert!(c.cmd("CONFIG SET ratelimit.top-size 100001").is_error());
    assert!(c.cmd("CONFIG SET ratelimit.top-size -1").is_error());
}

#[test]
fn flushall_empties_the_summaries_and_flushdb_does_not() {
    let s = Server::start_with(&["--ratelimit.top-size", "8"]);
    let mut c = s.client();
    let t0 = base();
    deny(&mut c, "a", 3, t0);
    for _ in 0..2 {
        let call = format!("RL.FIXED s 1 1d SHADOW AT {t0}");
        assert_eq!(c.cmd(&call).ints()[0], 1);
    }
    assert_eq!(
        (info(&mut c, "top_keys"), info(&mut c, "top_shadow_keys")),
        (1, 1)
    );
    // An entry does not say which database its key is in: FLUSHDB keeps
    // them all, even the ones of the database it empties.
    assert_eq!(c.cmd("FLUSHDB").text(), "OK");
    assert_eq!(counts(&top(&mut c, "")), pairs_of(&[("a", 3)]));
    for flush in ["FLUSHALL", "FLUSHALL ASYNC"] {
        deny(&mut c, "b", 2, t0);
        assert_eq!(c.cmd(flush).text(), "OK");
        let t = top(&mut c, "");
        assert_eq!((t.tracked, t.keys.len(), t.size), (0, 0, 8), "{flush}");
        assert_eq!(
            [
                info(&mut c, "top_keys"),
                info(&mut c, "top_bytes"),
                info(&mut c, "top_shadow_keys"),
                info(&mut c, "top_shadow_bytes")
            ],
            [0, 0, 0, 0],
            "{flush}"
        );
    }
    // Counting goes on after, with the configured size.
    deny(&mut c, "c", 1, t0);
    assert_eq!(counts(&top(&mut c, "")), pairs_of(&[("c", 1)]));
}

#[test]
fn a_flood_of_distinct_keys_stays_within_the_configured_size() {
    let size = 100;
    let s = Server::start_with(&["--ratelimit.top-size", "100"]);
    let mut c = s.client();
    let before = c.cmd("INFO memory").info_int("used_memory");
    // Refused leases store nothing, so only the summary could grow. Names
    // of 300 bytes: each is cut.
    let pad = "p".repeat(290);
    let total = 1_000_000u64;
    let batch = 10_000u64;
    let started = Instant::now();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..total / batch {
        for _ in 0..batch {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = format!("{x:016x}{pad}");
            c.send(&[
                b"RL.ACQUIRE".to_vec(),
                key.into_bytes(),
                b"1".to_vec(),
                b"1m".to_vec(),
                b"COST".to_vec(),
                b"2".to_vec(),
            ]);
        }
        for _ in 0..batch {
            let r = c.read();
            assert!(
                matches!(&r, Value::Array(items) if items[0] == Value::Int(0)),
                "{r:?}"
            );
        }
    }
    assert!(started.elapsed() < Duration::from_secs(600));
    assert_eq!(c.cmd("DBSIZE").int(), 0);
    assert_eq!(info(&mut c, "top_keys"), size);
    let bytes = info(&mut c, "top_bytes");
    let bound = i64::try_from(ratelimit::top::ENTRY_MAX_BYTES).unwrap() * size;
    assert!(bytes <= bound, "{bytes} > {bound}");
    let after = c.cmd("INFO memory").info_int("used_memory");
    // Unbounded, a million names would take hundreds of MB.
    assert!(after - before < 4 << 20, "{before} -> {after}");
    let t = top(&mut c, "COUNT 1000");
    assert_eq!(t.keys.len(), 100);
    assert!(t
        .keys
        .iter()
        .all(|e| e.truncated == 1 && e.key.len() == 256));
    assert_eq!(info(&mut c, "leases_denied"), i64::try_from(total).unwrap());
}

#[test]
fn replies_are_maps_under_resp3() {
    let s = Server::start();
    let mut c = s.client();
    deny(&mut c, "k", 2, base());
    assert!(matches!(c.cmd("HELLO 3"), Value::Map(_)));
    let reply = c.cmd("RL.TOP");
    assert!(matches!(&reply, Value::Map(_)), "{reply:?}");
    let t = parse(&reply);
    assert_eq!(counts(&t), pairs_of(&[("k", 2)]));
    let keys = pairs(&reply).pop().unwrap().1;
    assert!(matches!(&keys, Value::Array(items) if matches!(items[0], Value::Map(_))));
}

#[test]
fn arguments_are_checked() {
    let s = Server::start();
    let mut c = s.client();
    for (args, want) in [
        ("COUNT 0", "ERR COUNT must be greater than 0"),
        ("COUNT x", "ERR COUNT must be a positive integer, got 'x'"),
        ("COUNT 100001", "ERR COUNT is too large (at most 100000)"),
        ("COUNT", "ERR COUNT needs a value"),
        ("COUNT 1 COUNT 2", "ERR COUNT given more than once"),
        ("SHADOW SHADOW", "ERR SHADOW given more than once"),
        ("POLICY", "ERR POLICY needs a value"),
        ("POLICY a POLICY b", "ERR POLICY given more than once"),
        (
            "FOO",
            "ERR unknown option 'FOO' (expected COUNT, POLICY or SHADOW)",
        ),
    ] {
        assert_eq!(c.cmd(&format!("RL.TOP {args}")).err(), want, "{args}");
    }
    let bad = c.call(&[b"RL.TOP".to_vec(), b"POLICY".to_vec(), b"a b".to_vec()]);
    assert!(bad.err().starts_with("ERR a policy name is"), "{bad:?}");
    // An unknown policy is no error: nothing was denied under it.
    assert!(top(&mut c, "POLICY nope").keys.is_empty());
}

#[test]
fn command_docs_describe_it() {
    let s = Server::start();
    let mut c = s.client();
    let docs = c.cmd("COMMAND DOCS RL.TOP");
    let Value::Array(items) = &docs else {
        panic!("{docs:?}")
    };
    assert_eq!(items[0].text(), "RL.TOP");
    let doc: HashMap<String, Value> = pairs(&items[1]).into_iter().collect();
    assert!(doc["summary"].text().contains("denied most"));
    assert!(doc["complexity"].text().contains("top-size"));
    let Value::Array(args) = &doc["arguments"] else {
        panic!("{doc:?}")
    };
    let tokens: Vec<String> = args
        .iter()
        .map(|a| {
            pairs(a)
                .into_iter()
                .find(|(k, _)| k == "token")
                .unwrap()
                .1
                .text()
        })
        .collect();
    assert_eq!(tokens, ["COUNT", "POLICY", "SHADOW"]);
    let info = c.cmd("COMMAND INFO RL.TOP");
    let Value::Array(items) = &info else {
        panic!("{info:?}")
    };
    let Value::Array(cmd) = &items[0] else {
        panic!("{info:?}")
    };
    assert_eq!(cmd[1], Value::Int(-1));
    assert!(cmd[2].texts().contains(&"readonly".to_string()));
    // No keys: it answers for the server it runs on.
    assert_eq!(cmd[3..6], [Value::Int(0), Value::Int(0), Value::Int(0)]);
}

/// Three masters: each lists the keys it owns and no other.
#[test]
fn each_cluster_master_answers_for_its_own_keys() {
    let nodes = common::start_cluster_nodes(3, 0, &[]);
    let mut clients: HashMap<u16, Client> = nodes.iter().map(|n| (n.port, n.client())).collect();
    for n in &nodes {
        wait_until("the cluster is ok", Duration::from_secs(120), || {
            clients
                .get_mut(&n.port)
                .unwrap()
                .cmd("CLUSTER INFO")
                .text()
                .contains("cluster_state:ok")
        });
    }
    let t0 = base();
    let mut owner: HashMap<String, u16> = HashMap::new();
    for i in 0..30 {
        let key = format!("k{i}");
        let mut port = nodes[0].port;
        // Follow MOVED to the key's master.
        let mut calls = 0;
        while calls < 3 {
            let r = clients
                .get_mut(&port)
                .unwrap()
                .cmd(&format!("RL.FIXED {key} 1 1d AT {t0}"));
            match r {
                Value::Error(e) if e.starts_with("MOVED") => {
                    let at = e.rsplit(':').next().unwrap();
                    port = at.parse().unwrap();
                }
                _ => {
                    calls += 1;
                }
            }
        }
        owner.insert(key, port);
    }
    let mut seen = 0;
    for n in &nodes {
        let t = top(clients.get_mut(&n.port).unwrap(), "COUNT 100");
        assert_eq!(t.role, "master");
        for e in &t.keys {
            let key = String::from_utf8(e.key.clone()).unwrap();
            assert_eq!(owner[&key], n.port, "{key}");
            assert_eq!(e.count, 2);
        }
        seen += t.keys.len();
    }
    assert_eq!(seen, 30);
}
