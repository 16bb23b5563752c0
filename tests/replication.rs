//! Replication: replicas hold exactly their master's state.
//!
//! Byte-identical state, never a replica's own clock for a replicated
//! write, nothing sent for denials and peeks, and every replayed op
//! (refunds, blocks and leases included) checked like a client's call.

mod common;

use std::time::Duration;

use common::{
    keys, lease, resp, rl_info_field, snapshot, start_replica, sync, Client, FakeMaster, Server,
    Value, T0, T1,
};

/// A mix of every command, with and without AT, costs, denials, peeks,
/// transactions and scripts.
///
/// Every key it writes lives at least 12 minutes (the shortest: 1 unit of a
/// bucket refilling 5 per hour), so none can expire while the tests compare
/// master and replica key by key, however slow the machine (with periods of
/// a second, keys expired within 1 to 10 s, and one that expired between
/// reading the master and reading the replica failed the comparison).
fn workload(c: &mut Client) {
    for i in 0..40 {
        let cost = 1 + i % 3;
        let lines = [
            format!("RL.FIXED f:{} 10 1h COST {cost}", i % 4),
            format!("RL.SLIDING s:{} 10 1h COST {cost}", i % 4),
            format!("RL.LOG l:{} 10 1h COST {cost}", i % 4),
            format!("RL.TOKEN t:{} 10 1 1h COST {cost}", i % 4),
            format!("RL.LEAKY k:{} 10 1 1h COST {cost}", i % 4),
            format!("RL.GCRA g:{} 5 1 1h COST {cost}", i % 4),
            format!(
                "RL.TOKEN at:{} 10 1 1h COST {cost} AT {}",
                i % 4,
                T0 + i * 150
            ),
            format!(
                "RL.ALL 2 {{u{}}}:s {{u{}}}:d TOKEN 5 5 1h FIXED 30 1d COST {cost}",
                i % 3,
                i % 3
            ),
            format!("RL.SLIDING f:{} 10 1h COST 0", i % 4),
        ];
        for line in &lines {
            let reply = c.cmd(line);
            assert!(
                matches!(reply, Value::Array(_)) || reply.err().starts_with("ERR the key holds"),
                "{line}: {reply:?}"
            );
        }
    }
    // RL.ALL of one key, of 8 (the most the module passes Redis one by
    // one) and of 9 (passed as a vector): the same stream either way.
    for n in [1, 8, 9] {
        let keys: Vec<String> = (0..n).map(|j| format!("{{w{n}}}:{j}")).collect();
        let limits = "TOKEN 10 1 1h ".repeat(n);
        for _ in 0..3 {
            let line = format!("RL.ALL {n} {} {limits}", keys.join(" "));
            assert!(matches!(c.cmd(&line), Value::Array(_)), "{line}");
        }
    }
    c.cmd("MULTI");
    for _ in 0..5 {
        c.cmd("RL.FIXED tx 3 1h");
        c.cmd("RL.ALL 2 {tx}:a {tx}:b LOG 4 1h GCRA 2 1 1h");
    }
    assert!(matches!(c.cmd("EXEC"), Value::Array(_)));
    let script = "for i=1,5 do redis.call('RL.LEAKY',KEYS[1],3,1,'1h') end \
                  return redis.call('RL.TOKEN',KEYS[2],4,1,'1h','COST',2)";
    assert!(matches!(
        c.call(&args!["EVAL", script, "2", "lua:a", "lua:b"]),
        Value::Array(_)
    ));
}

#[test]
fn replicas_hold_byte_identical_state() {
    let master = Server::start();
    let replica = start_replica(&master, &[]);
    let mut m = master.client();
    workload(&mut m);
    sync(&mut m, 1);

    let mut r = replica.client();
    let keys = keys(&mut m);
    assert!(keys.len() > 25, "{keys:?}");
    assert_eq!(common::keys(&mut r), keys);
    let on_master = snapshot(&mut m, &keys);
    let on_replica = snapshot(&mut r, &keys);
    for (a, b) in on_master.iter().zip(&on_replica) {
        assert_eq!(a, b, "master and replica differ");
        assert!(a.2.int() > 0, "{} has no expiry", a.0);
    }
    assert_eq!(m.cmd("DEBUG DIGEST"), r.cmd("DEBUG DIGEST"));

    // Promote the replica: the same peek at the same instant answers the
    // same on both, key by key.
    r.cmd("REPLICAOF NO ONE");
    for k in &keys {
        let algo = m.call(&args!["RL.INFO", k.as_str()]);
        let params = peek_line(&algo, k);
        let at = T0 + 5_000_000_000;
        let a = m.cmd(&format!("{params} COST 0 AT {at}"));
        let b = r.cmd(&format!("{params} COST 0 AT {at}"));
        assert_eq!(a, b, "{params}");
    }
}

/// The `RL.<algo> key params` line that peeks at `key` with the parameters
/// stored in it, from its `RL.INFO`.
fn peek_line(info: &Value, key: &str) -> String {
    let Value::Array(items) = info else {
        panic!("{info:?}")
    };
    let field = |name: &str| -> i64 {
        items
            .chunks(2)
            .find(|kv| kv[0].text() == name)
            .map(|kv| kv[1].int())
            .unwrap_or_else(|| panic!("{name} missing in {info:?}"))
    };
    let algo = items[1].text();
    match algo.as_str() {
        "FIXED" | "SLIDING" | "LOG" => format!(
            "RL.{algo} {key} {} {}us",
            field("limit"),
            field("window_us")
        ),
        "GCRA" => format!(
            "RL.GCRA {key} {} {} {}us",
            field("max_burst"),
            field("rate"),
            field("period_us")
        ),
        _ => format!(
            "RL.{algo} {key} {} {} {}us",
            field("capacity"),
            field("rate"),
            field("period_us")
        ),
    }
}

#[test]
fn replicas_never_use_their_own_clock() {
    let master = Server::start();
    let replica = start_replica(&master, &[]);
    let mut m = master.client();
    // Far in the past: a replica recomputing with its own clock would see
    // a full bucket and an empty window.
    for _ in 0..3 {
        m.cmd(&format!("RL.TOKEN old 5 1 1h AT {T0}"));
        m.cmd(&format!("RL.SLIDING old:s 5 1h AT {T0}"));
    }
    sync(&mut m, 1);
    let mut r = replica.client();
    for k in ["old", "old:s"] {
        assert_eq!(
            m.call(&args!["DEBUG", "DIGEST-VALUE", k]),
            r.call(&args!["DEBUG", "DIGEST-VALUE", k])
        );
    }
    let info = r.cmd("RL.INFO old");
    let Value::Array(items) = &info else { panic!() };
    let updated = items
        .chunks(2)
        .find(|kv| kv[0].text() == "updated_at_us")
        .unwrap()[1]
        .int();
    assert_eq!(updated, T0 * 1000, "the replica used another time");
    // The stream carries RL.APPLY (the decided effect), never the client's
    // command; a client may not send it to a replica either.
    assert!(r.cmd("RL.TOKEN old 5 1 1h").err().starts_with("READONLY"));
}

#[test]
fn denials_and_peeks_send_nothing_to_replicas() {
    // The master also writes a keep-alive PING into the replication stream
    // every repl-ping-replica-period (10 s by default), which moves the
    // offset this test compares: one landing inside the measured window
    // failed it. An hour apart (the replica waiting as long before giving
    // up on a quiet link), none can.
    let master = Server::start_with(&["--repl-ping-replica-period", "3600"]);
    let replica = start_replica(&master, &["--repl-timeout", "7200"]);
    let mut m = master.client();
    m.cmd("RL.FIXED d 1 1h");
    m.cmd("RL.ALL 2 {d}:a {d}:b FIXED 1 1h FIXED 5 1h");
    sync(&mut m, 1);
    let offset = |c: &mut Client| c.cmd("INFO replication").info_int("master_repl_offset");
    let before = offset(&mut m);
    for _ in 0..50 {
        assert_eq!(m.cmd("RL.FIXED d 1 1h").ints()[0], 0);
        assert_eq!(m.cmd("RL.FIXED d 1 1h COST 0").ints()[0], 1);
        assert_eq!(m.cmd("RL.TOKEN never 5 1 1s COST 0").ints()[0], 1);
        assert_eq!(m.cmd("RL.GCRA d:g 1 1 1s COST 9").ints()[0], 0);
        let Value::Array(all) = m.cmd("RL.ALL 2 {d}:a {d}:b FIXED 1 1h FIXED 5 1h") else {
            panic!()
        };
        assert_eq!(all[0], Value::Int(0));
        m.cmd("RL.INFO d");
        assert!(m.cmd("RL.FIXED d 0 1h").is_error());
    }
    assert_eq!(offset(&mut m), before, "denials or peeks were replicated");
    m.cmd("RL.FIXED other 1 1h");
    assert!(
        offset(&mut m) > before,
        "an allowed call must be replicated"
    );
    let mut r = replica.client();
    sync(&mut m, 1);
    assert_eq!(r.cmd("EXISTS never").int(), 0);
}

#[test]
fn a_replica_that_reconnects_catches_up_exactly() {
    let master = Server::start();
    let mut replica = start_replica(&master, &[]);
    let mut m = master.client();
    workload(&mut m);
    sync(&mut m, 1);
    // The replica goes away while the master keeps deciding, then comes
    // back: partial or full resync, it must end up identical.
    replica.stop();
    workload(&mut m);
    assert!(replica.start_again(), "{}", replica.log());
    let mut r = replica.client();
    common::wait_until("the replica resyncs", Duration::from_secs(60), || {
        r.cmd("INFO replication")
            .text()
            .contains("master_link_status:up")
    });
    sync(&mut m, 1);
    let keys = keys(&mut m);
    assert_eq!(snapshot(&mut m, &keys), snapshot(&mut r, &keys));
}

/// The replica's per-command counters: every module write it executed must
/// have arrived as `RL.APPLY` or `RL.APPLYALL` (a decided effect), never as a
/// client command it would decide again with its own clock.
fn replicated_module_commands(r: &mut Client) -> Vec<String> {
    r.cmd("INFO commandstats")
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| l.split(':').next())
        // Module commands are listed as registered (upper case).
        .map(str::to_lowercase)
        .filter(|name| name.starts_with("rl.") || name.starts_with("cl."))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[test]
fn every_write_reaches_replicas_as_an_effect() {
    // The master answers redis-cell's CL.THROTTLE too; the replica does
    // not even enable it, and still holds the same bytes.
    let master = Server::start_with(&["cell-compat", "yes"]);
    let replica = start_replica(&master, &[]);
    let mut m = master.client();
    workload(&mut m);
    // Periods of an hour (3600 s), so no key expires before the comparison.
    for i in 0..30 {
        let reply = m.cmd(&format!(
            "CL.THROTTLE cell:{} 3 2 3600 {}",
            i % 3,
            1 + i % 2
        ));
        assert_eq!(reply.ints().len(), 5, "{reply:?}");
    }
    sync(&mut m, 1);

    let mut r = replica.client();
    assert_eq!(
        replicated_module_commands(&mut r),
        ["rl.apply", "rl.applyall"]
    );
    assert!(r.cmd("CL.THROTTLE cell:0 3 2 3600").is_error());
    let keys = keys(&mut m);
    assert!(keys.iter().any(|k| k == "cell:2"), "{keys:?}");
    assert_eq!(snapshot(&mut m, &keys), snapshot(&mut r, &keys));
}

/// A random mix of refunds and penalties on a master: the replica holds the
/// very same keys, and so do the RDB and the AOF after a restart.
#[test]
fn refunds_and_blocks_reach_replicas_rdb_and_aof_exactly() {
    mix_reaches_replicas_rdb_and_aof(false);
}

/// The same with `ratelimit.compact-ops yes`: buckets' decisions go out as
/// compact ops, which the replica and the AOF replay to the same bytes.
#[test]
fn compact_ops_reach_replicas_rdb_and_aof_exactly() {
    mix_reaches_replicas_rdb_and_aof(true);
}

/// The first byte (the kind) of every `RL.APPLY` op in the server's AOF.
fn aof_op_kinds(server: &Server) -> Vec<u8> {
    let mut aof = Vec::new();
    for f in std::fs::read_dir(server.dir.join("appendonlydir")).unwrap() {
        aof.extend(std::fs::read(f.unwrap().path()).unwrap());
    }
    let mut kinds = Vec::new();
    let name = b"$8\r\nRL.APPLY\r\n";
    let mut rest = &aof[..];
    while let Some(at) = rest.windows(name.len()).position(|w| w == name) {
        rest = &rest[at + name.len()..];
        // The key, then the op: `$<len>\r\n<bytes>\r\n` each.
        let mut bulk = || {
            let nl = rest.iter().position(|&b| b == b'\n').unwrap();
            let len: usize = std::str::from_utf8(&rest[1..nl - 1])
                .unwrap()
                .parse()
                .unwrap();
            let body = &rest[nl + 1..nl + 1 + len];
            rest = &rest[nl + 1 + len + 2..];
            body
        };
        bulk();
        kinds.push(bulk()[0]);
    }
    kinds
}

fn mix_reaches_replicas_rdb_and_aof(compact: bool) {
    let mut args = vec!["--appendonly", "yes", "--aof-use-rdb-preamble", "no"];
    if compact {
        args.extend(["--ratelimit.compact-ops", "yes"]);
    }
    let mut master = Server::start_with(&args);
    let replica = start_replica(&master, &[]);
    let mut m = master.client();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let algos = [
        ("RL.FIXED", "3 1h"),
        ("RL.SLIDING", "3 1h"),
        ("RL.LOG", "3 1h"),
        ("RL.TOKEN", "3 1 1h"),
        ("RL.LEAKY", "3 1 1h"),
        ("RL.GCRA", "2 1 1h"),
    ];
    for i in 0..600 {
        let (cmd, params) = algos[next(6) as usize];
        let k = format!("m:{}:{}", &cmd[3..], next(4));
        let at = T1 + i * 1000;
        let lease_key = format!("lease:{}", next(3));
        let lease_id = format!("w{}", next(6));
        let line = match next(7) {
            4 => format!(
                "RL.ACQUIRE {lease_key} 3 {}s ID {lease_id} COST {} AT {at}",
                1 + next(20),
                1 + next(2)
            ),
            5 => format!("RL.RELEASE {lease_key} {lease_id}"),
            6 => format!("RL.RENEW {lease_key} {lease_id} {}s", 1 + next(20)),
            0 => format!("RL.REFUND {k} {} AT {at}", next(3)),
            1 => format!(
                "{cmd} {k} {params} COST {} PENALTY {}m AT {at}",
                1 + next(2),
                1 + next(5)
            ),
            2 => format!(
                "RL.ALL 2 {{a}}:{} {{a}}:x TOKEN 3 1 1h FIXED 9 1h PENALTY 2m AT {at}",
                next(3)
            ),
            _ => format!("{cmd} {k} {params} COST {} AT {at}", next(3)),
        };
        let reply = m.cmd(&line);
        assert!(
            !reply.is_error() || reply.err().starts_with("ERR the key holds"),
            "{line}: {reply:?}"
        );
    }
    sync(&mut m, 1);
    let info = m.cmd("INFO ratelimit");
    assert!(info.info_int("ratelimit_penalties") > 5);
    assert!(info.info_int("ratelimit_refunds") > 5);
    let keys = keys(&mut m);
    let blocked = keys
        .iter()
        .filter(|k| !k.starts_with("lease:") && rl_info_field(&mut m, k, "blocked_until_ms") > 0)
        .count();
    assert!(blocked > 0, "no key is blocked at the end");
    let lease_keys: Vec<&String> = keys.iter().filter(|k| k.starts_with("lease:")).collect();
    assert!(!lease_keys.is_empty(), "no lease is held at the end");
    assert!(info.info_int("ratelimit_leases_released") > 5);
    assert!(info.info_int("ratelimit_leases_renewed") > 5);
    let on_master = snapshot(&mut m, &keys);
    let mut r = replica.client();
    assert_eq!(snapshot(&mut r, &keys), on_master, "the replica differs");
    assert_eq!(m.cmd("DEBUG DIGEST"), r.cmd("DEBUG DIGEST"));

    // Failover: the promoted replica holds the same leases, and frees them.
    assert_eq!(r.cmd("REPLICAOF NO ONE").text(), "OK");
    let Value::Array(promoted) = r.cmd("KEYS lease:*") else {
        panic!()
    };
    assert_eq!(promoted.len(), lease_keys.len());
    for k in &lease_keys {
        assert_eq!(
            rl_info_field(&mut r, k, "held"),
            rl_info_field(&mut m, k, "held"),
            "{k}"
        );
    }

    // Decisions went out as the setting says: compact for buckets (kinds 9
    // and 10), never without it.
    let kinds = aof_op_kinds(&master);
    let compact_ops = kinds.iter().filter(|&&k| k == 9 || k == 10).count();
    assert!(kinds.len() > 100, "{} ops in the AOF", kinds.len());
    if compact {
        assert!(compact_ops > 20, "{compact_ops} compact ops");
        assert!(kinds.contains(&10), "no compact op with a penalty");
    } else {
        assert_eq!(compact_ops, 0);
    }

    // From the AOF (commands as sent: APPLY ops), then after a rewrite
    // (SETSTATE of the blocked values), then from the RDB.
    let digest = m.cmd("DEBUG DIGEST");
    drop(m);
    master.restart();
    let mut m = master.client();
    assert_eq!(snapshot(&mut m, &keys), on_master, "from the AOF");
    assert!(!m.cmd("BGREWRITEAOF").is_error());
    common::wait_until("the AOF rewrite ends", Duration::from_secs(60), || {
        common::aof_rewrite_idle(&mut m)
    });
    drop(m);
    master.restart();
    let mut m = master.client();
    assert_eq!(snapshot(&mut m, &keys), on_master, "from the rewritten AOF");
    assert_eq!(m.cmd("DEBUG RELOAD").text(), "OK");
    assert_eq!(snapshot(&mut m, &keys), on_master, "from the RDB");
    assert_eq!(m.cmd("DEBUG DIGEST"), digest);
}

/// Replayed refunds, penalties and lease ops are checked like a client's
/// call: one that can't apply exactly as on its master changes nothing, and
/// is counted.
#[test]
fn replayed_refunds_penalties_and_leases_are_checked() {
    use ratelimit::algo::{Count, Duration as Us, Instant, Params, UnixMs, WindowParams};
    use ratelimit::codec::{self, LeaseAction, LeaseOp, Op, RefundOp};

    let origin = Server::start();
    let mut o = origin.client();
    assert_eq!(o.cmd(&format!("RL.FIXED fx 10 1h AT {T1}")).ints()[0], 1);
    assert_eq!(
        lease(&mut o, &format!("RL.ACQUIRE sem 2 1h ID a AT {T1}")).0[0],
        1
    );
    assert_eq!(o.cmd("SAVE").text(), "OK");
    let rdb = std::fs::read(origin.dir.join("dump.rdb")).unwrap();
    let (fx, sem) = (o.cmd("DUMP fx"), o.cmd("DUMP sem"));

    let replica = Server::start();
    let mut c = replica.client();
    let mut master = FakeMaster::feed(&replica, &"0123456789abcdef".repeat(3)[..40], &rdb, b"");
    let now = Instant::from_micros(T1 as u64 * 1000 + 1000);
    let at = UnixMs::from_millis(T1 as u64 + 3_600_000);
    let refund = |given| {
        codec::encode_refund_op(&RefundOp {
            given,
            now,
            expire_at_ms: at,
        })
        .to_vec()
    };
    let lease_op = |what, id: &[u8], expire_at_ms| {
        codec::encode_lease_op(&LeaseOp {
            what,
            id,
            now,
            expire_at_ms,
        })
        .to_vec()
    };
    let one_hour = Us::from_micros(3_600_000_000);
    let acquire = |limit, units| LeaseAction::Acquire {
        limit: Count::new(limit).unwrap(),
        units,
        ttl: one_hour,
    };
    // fx holds 1 of 10: a call of cost 1 is allowed, so a master's "denied
    // and blocked" can't have come from this state.
    let blocked = codec::encode_op(&Op {
        params: Params::Fixed(WindowParams::new(10, 3_600_000_000).unwrap().into()),
        cost: 1,
        now,
        expire_at_ms: at,
        penalty: Some(Us::from_micros(60_000_000)),
    })
    .to_vec();
    let bad: Vec<(&[u8], Vec<u8>)> = vec![
        (b"fx", refund(5)),                                  // holds only 1
        (b"none", refund(1)),                                // nothing to refund
        (b"sem", refund(1)),                                 // leases, not a limiter
        (b"fx", blocked),                                    // the penalty box differs
        (b"sem", lease_op(LeaseAction::Release, b"zz", at)), // not held
        (
            b"sem",
            lease_op(LeaseAction::Renew { ttl: one_hour }, b"zz", at),
        ),
        (b"sem", lease_op(acquire(2, 2), b"b", at)), // no room for 2
        (b"sem", lease_op(acquire(1_000_001, 1), b"b", at)), // above the ceiling
        (b"sem", lease_op(LeaseAction::Release, b"a", at)), // the master kept the key
        (b"fx", lease_op(acquire(2, 1), b"b", at)),  // a limiter, not leases
    ];
    let mut stream = Vec::new();
    for (key, op) in &bad {
        stream.extend(resp(&[b"RL.APPLY", key, op]));
    }
    // And one good op of each kind, so the stream is known to be applied.
    stream.extend(resp(&[
        b"RL.APPLY",
        b"sem",
        &lease_op(acquire(2, 1), b"b", at),
    ]));
    master.send(&mut c, &stream, &replica);
    assert_eq!(
        c.cmd("INFO ratelimit").info_int("ratelimit_replay_errors"),
        bad.len() as i64
    );
    assert_eq!(c.cmd("DUMP fx"), fx);
    assert_eq!(c.cmd("EXISTS none").int(), 0);
    assert_eq!(rl_info_field(&mut c, "sem", "held"), 2);
    assert_ne!(c.cmd("DUMP sem"), sem);
}
