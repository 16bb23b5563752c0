//! Beyond windows, against a real server: refunds (`RL.REFUND`), the
//! penalty box (`PENALTY d`) and concurrency leases (`RL.ACQUIRE`,
//! `RL.RELEASE`, `RL.RENEW`), through every path a key takes (replicas,
//! failover, RDB, AOF).

mod common;

use std::time::Duration;

use common::{keys, snapshot, start_replica, sync, Client, Server, Value};

const T0: i64 = 1_700_000_000_000;

/// A base time ahead of the wall clock (2096), for blocks that `RL.INFO`
/// (which reads the wall clock) must see in force.
const T1: i64 = 4_000_000_000_000;

/// The five integers of the combined decision of an `RL.ALL` reply.
fn combined(v: &Value) -> Vec<i64> {
    let Value::Array(items) = v else {
        panic!("{v:?}")
    };
    items[..5].iter().map(Value::int).collect()
}

use common::rl_info_field as info_field;

#[test]
fn refunds_give_back_by_each_algorithms_rule() {
    let s = Server::start();
    let mut c = s.client();
    // (command prefix, params, what a spend of 3 then a refund of 2 leaves
    // in RL.INFO's remaining)
    let cases = [
        ("RL.FIXED", "5 1h"),
        ("RL.SLIDING", "5 1h"),
        ("RL.LOG", "5 1h"),
        ("RL.TOKEN", "5 1 1h"),
        ("RL.LEAKY", "5 1 1h"),
        ("RL.GCRA", "4 1 1h"),
    ];
    for (cmd, params) in cases {
        let k = format!("r:{cmd}");
        let d = c.cmd(&format!("{cmd} {k} {params} COST 3 AT {T0}")).ints();
        assert_eq!(&d[..3], &[1, 5, 2], "{cmd}");
        let ttl_before = c.cmd(&format!("PEXPIRETIME {k}")).int();
        assert_eq!(c.cmd(&format!("RL.REFUND {k} 2 AT {T0}")).int(), 2, "{cmd}");
        let d = c.cmd(&format!("{cmd} {k} {params} COST 0 AT {T0}")).ints();
        assert_eq!(&d[..3], &[1, 5, 4], "{cmd} after the refund");
        // The key's life follows what it holds: never longer than before
        // (it still holds a unit for an hour).
        let ttl_after = c.cmd(&format!("PEXPIRETIME {k}")).int();
        assert!(ttl_after > 0 && ttl_after <= ttl_before, "{cmd}");
        // Only what is there comes back.
        assert_eq!(
            c.cmd(&format!("RL.REFUND {k} 10 AT {T0}")).int(),
            1,
            "{cmd}"
        );
        assert_eq!(
            c.cmd(&format!("RL.REFUND {k} 10 AT {T0}")).int(),
            0,
            "{cmd}"
        );
        let d = c.cmd(&format!("{cmd} {k} {params} COST 0 AT {T0}")).ints();
        assert_eq!(d, vec![1, 5, 5, 0, 0], "{cmd} is empty again");
        // Empty, it expires a millisecond later: gone (-2) by now, or soon.
        let ttl_empty = c.cmd(&format!("PEXPIRETIME {k}")).int();
        assert!(
            ttl_empty == -2 || (0..=ttl_after).contains(&ttl_empty),
            "{cmd}"
        );
    }
    // A refund never creates a key, and answers 0.
    assert_eq!(c.cmd("RL.REFUND nothing 5").int(), 0);
    assert_eq!(c.cmd("EXISTS nothing").int(), 0);
    assert_eq!(c.cmd("RL.REFUND nothing 0").int(), 0);
    // Not into a closed window.
    c.cmd(&format!("RL.FIXED w 5 1s COST 2 AT {T0}"));
    assert_eq!(c.cmd(&format!("RL.REFUND w 1 AT {}", T0 + 1000)).int(), 0);
    assert_eq!(c.cmd(&format!("RL.REFUND w 1 AT {}", T0 + 999)).int(), 1);
    // The counters.
    let info = c.cmd("INFO ratelimit");
    assert_eq!(info.info_int("ratelimit_refunds"), 13);
    assert_eq!(info.info_int("ratelimit_refunded_units"), 19);
}

#[test]
fn refund_errors_are_precise() {
    let s = Server::start();
    let mut c = s.client();
    c.cmd("SET str x");
    for (line, want) in [
        (
            "RL.REFUND",
            "ERR wrong number of arguments for 'RL.REFUND' command",
        ),
        (
            "RL.REFUND k",
            "ERR wrong number of arguments for 'RL.REFUND' command",
        ),
        (
            "RL.REFUND k x",
            "ERR n must be a non-negative integer, got 'x'",
        ),
        ("RL.REFUND k -1", "ERR n must not be negative"),
        (
            "RL.REFUND k 1 COST 1",
            "ERR unknown option 'COST' (expected AT)",
        ),
        ("RL.REFUND k 1 AT", "ERR AT needs a value"),
        (
            "RL.REFUND k 1 AT -5",
            "ERR AT must be between 0 and 253402300799999",
        ),
        (
            "RL.REFUND str 1",
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (
            "RL.FIXED k 1 1s PENALTY 0",
            "ERR PENALTY must be greater than 0",
        ),
        (
            "RL.FIXED k 1 1s PENALTY 1x",
            "ERR PENALTY has an unknown unit 'x' (use us, ms, s, m, h or d)",
        ),
        (
            "RL.PEEK k FIXED 1 1s PENALTY 1s",
            "ERR unknown option 'PENALTY' (expected COST or AT)",
        ),
        (
            "RL.ALL 1 k FIXED 1 1s PENALTY 1s PENALTY 2s",
            "ERR PENALTY given more than once",
        ),
    ] {
        assert_eq!(c.cmd(line).err(), want, "{line}");
    }
    assert_eq!(c.cmd("EXISTS k").int(), 0);
}

#[test]
fn a_penalty_blocks_a_key_until_it_ends() {
    let s = Server::start_with(&["--notify-keyspace-events", "Kd"]);
    let mut c = s.client();
    let mut sub = s.client();
    assert!(matches!(
        sub.cmd("PSUBSCRIBE __keyspace@0__:*"),
        Value::Array(_)
    ));

    let at = |ms: i64| format!("AT {}", T1 + ms);
    let fixed = |c: &mut Client, ms: i64, pen: &str| {
        c.cmd(&format!("RL.FIXED login:1 2 1m {pen} {}", at(ms)))
            .ints()
    };
    assert_eq!(fixed(&mut c, 0, "PENALTY 15m"), vec![1, 2, 1, 0, 60_000]);
    assert_eq!(fixed(&mut c, 0, "PENALTY 15m"), vec![1, 2, 0, 0, 60_000]);
    // Denied with a penalty: blocked for 15 minutes from now.
    assert_eq!(
        fixed(&mut c, 1000, "PENALTY 15m"),
        vec![0, 2, 0, 900_000, 900_000]
    );
    assert_eq!(
        info_field(&mut c, "login:1", "blocked_until_ms"),
        T1 + 1000 + 900_000
    );
    // The window has reset, but the block holds, and is not extended.
    assert_eq!(
        fixed(&mut c, 120_000, "PENALTY 15m"),
        vec![0, 2, 0, 781_000, 781_000]
    );
    assert_eq!(fixed(&mut c, 120_000, ""), vec![0, 2, 0, 781_000, 781_000]);
    // A peek sees it, and RL.PEEK too.
    assert_eq!(
        c.cmd(&format!("RL.FIXED login:1 2 1m COST 0 {}", at(900_000)))
            .ints(),
        vec![0, 2, 0, 1000, 1000]
    );
    assert_eq!(
        c.cmd(&format!("RL.PEEK login:1 FIXED 2 1m {}", at(900_000)))
            .ints(),
        vec![0, 2, 0, 1000, 1000]
    );
    // It ends exactly at its end.
    assert_eq!(fixed(&mut c, 901_000, ""), vec![1, 2, 1, 0, 60_000]);
    assert_eq!(info_field(&mut c, "login:1", "blocked_until_ms"), 0);
    assert_eq!(c.cmd("INFO ratelimit").info_int("ratelimit_penalties"), 1);

    // One rl.penalty event, when the block started.
    let mut events = Vec::new();
    c.cmd("PING");
    loop {
        let Value::Array(m) = sub.read() else {
            panic!()
        };
        let event = m[3].text();
        if event == "rl.penalty" || events.len() > 20 {
            events.push(event);
            break;
        }
        events.push(event);
    }
    assert_eq!(events, ["rl.denied", "rl.penalty"]);

    // Without a penalty a denial changes nothing; a call that can never
    // pass blocks nothing.
    c.cmd(&format!("RL.FIXED plain 1 1m {}", at(0)));
    let before = c.cmd("DUMP plain");
    assert_eq!(
        c.cmd(&format!("RL.FIXED plain 1 1m {}", at(1))).ints()[0],
        0
    );
    assert_eq!(
        c.cmd(&format!("RL.FIXED plain 1 1m COST 5 PENALTY 1h {}", at(1)))
            .ints()[3],
        -1
    );
    assert_eq!(c.cmd("DUMP plain"), before);
}

#[test]
fn a_block_keeps_its_key_alive_and_is_lifted_by_del() {
    let s = Server::start();
    let mut c = s.client();
    // Wall-clock calls: the key would expire within 10 s without the
    // block (and the second call is denied unless 10 s pass between the
    // two); with it, it lives the whole hour.
    c.cmd("RL.TOKEN b 1 1 10s");
    let d = c.cmd("RL.TOKEN b 1 1 10s PENALTY 1h").ints();
    assert_eq!((d[0], d[3]), (0, 3_600_000));
    let ttl = c.cmd("PTTL b").int();
    assert!(ttl > 3_500_000 && ttl <= 3_600_000, "{ttl}");
    assert_eq!(c.cmd("DEL b").int(), 1);
    assert_eq!(c.cmd("RL.TOKEN b 1 1 1s").ints()[0], 1);
}

#[test]
fn rl_all_blocks_the_keys_that_denied() {
    let s = Server::start();
    let mut c = s.client();
    let all = |c: &mut Client, ms: i64| {
        c.cmd(&format!(
            "RL.ALL 2 {{u}}:min {{u}}:day TOKEN 2 2 1m FIXED 100 1d PENALTY 10m AT {}",
            T1 + ms
        ))
    };
    assert_eq!(combined(&all(&mut c, 0))[0], 1);
    assert_eq!(combined(&all(&mut c, 0))[0], 1);
    let d = combined(&all(&mut c, 0));
    assert_eq!(&d[..5], &[0, 2, 0, 600_000, 600_000]);
    assert_eq!(
        info_field(&mut c, "{u}:min", "blocked_until_ms"),
        T1 + 600_000
    );
    assert_eq!(info_field(&mut c, "{u}:day", "blocked_until_ms"), 0);
    // A minute later the bucket is full again, but the block holds.
    let d = combined(&all(&mut c, 60_000));
    assert_eq!(&d[..5], &[0, 2, 0, 540_000, 540_000]);
    assert_eq!(combined(&all(&mut c, 600_000))[0], 1);
    // The daily quota counted only the allowed calls.
    assert_eq!(info_field(&mut c, "{u}:day", "count"), 3);
}

/// A random mix of refunds and penalties on a master: the replica holds the
/// very same keys, and so do the RDB and the AOF after a restart.
#[test]
fn refunds_and_blocks_reach_replicas_rdb_and_aof_exactly() {
    let mut master = Server::start_with(&["--appendonly", "yes", "--aof-use-rdb-preamble", "no"]);
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
        .filter(|k| !k.starts_with("lease:") && info_field(&mut m, k, "blocked_until_ms") > 0)
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
            info_field(&mut r, k, "held"),
            info_field(&mut m, k, "held"),
            "{k}"
        );
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
        m.cmd("INFO persistence")
            .info_int("aof_rewrite_in_progress")
            == 0
            && m.cmd("INFO persistence").info_int("aof_rewrite_scheduled") == 0
    });
    drop(m);
    master.restart();
    let mut m = master.client();
    assert_eq!(snapshot(&mut m, &keys), on_master, "from the rewritten AOF");
    assert_eq!(m.cmd("DEBUG RELOAD").text(), "OK");
    assert_eq!(snapshot(&mut m, &keys), on_master, "from the RDB");
    assert_eq!(m.cmd("DEBUG DIGEST"), digest);
}

fn lease(c: &mut Client, line: &str) -> (Vec<i64>, Option<String>) {
    let Value::Array(items) = c.cmd(line) else {
        panic!("{line}: {:?}", c.cmd("PING"))
    };
    assert_eq!(items.len(), 6, "{line}");
    let ints = items[..5].iter().map(Value::int).collect();
    let id = match &items[5] {
        Value::Null => None,
        v => Some(v.text()),
    };
    (ints, id)
}

#[test]
fn leases_cap_work_in_flight_and_expire_by_themselves() {
    let s = Server::start();
    let mut c = s.client();
    let at = |ms: i64| format!("AT {}", T1 + ms);
    // Two slots; the server makes up ids unless given.
    let (d, a) = lease(&mut c, &format!("RL.ACQUIRE jobs 2 30s {}", at(0)));
    assert_eq!(d, vec![1, 2, 1, 0, 30_000]);
    let a = a.unwrap();
    assert_eq!(a.len(), 32);
    let (d, b) = lease(&mut c, &format!("RL.ACQUIRE jobs 2 30s ID w2 {}", at(1000)));
    assert_eq!((d, b.as_deref()), (vec![1, 2, 0, 0, 30_000], Some("w2")));
    // Full: denied, told when the first lease ends, no id.
    let (d, none) = lease(&mut c, &format!("RL.ACQUIRE jobs 2 30s {}", at(2000)));
    assert_eq!((d, none), (vec![0, 2, 0, 28_000, 29_000], None));
    // The same id again renews its lease instead of taking a slot.
    let (d, b) = lease(&mut c, &format!("RL.ACQUIRE jobs 2 30s ID w2 {}", at(2000)));
    assert_eq!((d, b.as_deref()), (vec![1, 2, 0, 0, 30_000], Some("w2")));
    assert_eq!(c.cmd("PEXPIRETIME jobs").int(), T1 + 32_000);
    assert_eq!(info_field(&mut c, "jobs", "leases"), 2);
    assert_eq!(info_field(&mut c, "jobs", "held"), 2);
    // Release frees a slot once; unknown ids free nothing.
    assert_eq!(c.cmd(&format!("RL.RELEASE jobs {a}")).int(), 1);
    assert_eq!(c.cmd(&format!("RL.RELEASE jobs {a}")).int(), 0);
    assert_eq!(c.cmd("RL.RELEASE jobs nobody").int(), 0);
    assert_eq!(c.cmd("RL.RELEASE missing w2").int(), 0);
    assert_eq!(c.cmd("RL.RENEW missing w2 1s").int(), 0);
    let (d, _) = lease(&mut c, &format!("RL.ACQUIRE jobs 2 10s ID w3 {}", at(2000)));
    assert_eq!(d[..3], [1, 2, 0]);
    // Renew moves one lease's end; the key lives as long as the last.
    assert_eq!(c.cmd("RL.RENEW jobs w3 1h").int(), 1);
    assert_eq!(c.cmd("PEXPIRETIME jobs").int(), T1 + 2000 + 3_600_000);
    // A crashed worker's lease expires by itself: at w2's end its slot is
    // free again (AT moves the limiter's clock).
    let (d, _) = lease(
        &mut c,
        &format!("RL.ACQUIRE jobs 2 1s ID w4 {}", at(32_000)),
    );
    assert_eq!(d[..3], [1, 2, 0]);
    assert_eq!(c.cmd("RL.RELEASE jobs w2").int(), 0, "w2 has expired");
    // COST takes several slots; more than the limit can never pass.
    let (d, _) = lease(&mut c, &format!("RL.ACQUIRE big 5 1m COST 3 {}", at(0)));
    assert_eq!(d[..3], [1, 5, 2]);
    let (d, _) = lease(&mut c, &format!("RL.ACQUIRE big 5 1m COST 3 {}", at(0)));
    assert_eq!(d, vec![0, 5, 2, 60_000, 60_000]);
    let (d, _) = lease(&mut c, &format!("RL.ACQUIRE big 5 1m COST 6 {}", at(0)));
    assert_eq!(d[3], -1);
    // Releasing the last lease deletes the key.
    let (_, id) = lease(&mut c, "RL.ACQUIRE once 1 1h");
    assert_eq!(c.cmd(&format!("RL.RELEASE once {}", id.unwrap())).int(), 1);
    assert_eq!(c.cmd("EXISTS once").int(), 0);
    let info = c.cmd("INFO ratelimit");
    // a, w2 twice (the renewal counts), w3, w4, big, once.
    assert_eq!(info.info_int("ratelimit_leases_acquired"), 7);
    assert_eq!(info.info_int("ratelimit_leases_denied"), 3);
    assert_eq!(info.info_int("ratelimit_leases_released"), 2);
    assert_eq!(info.info_int("ratelimit_leases_renewed"), 1);
}

#[test]
fn lease_errors_are_precise_and_lease_max_bounds_memory() {
    let s = Server::start();
    let mut c = s.client();
    c.cmd("SET str x");
    c.cmd("RL.FIXED lim 5 1m");
    c.cmd("RL.ACQUIRE sem 5 1m ID a");
    for (line, want) in [
        ("RL.ACQUIRE k 5", "ERR wrong number of arguments for 'RL.ACQUIRE' command"),
        ("RL.ACQUIRE k 0 1s", "ERR limit must be greater than 0"),
        (
            "RL.ACQUIRE k 10001 1s",
            "ERR limit is too large for RL.ACQUIRE (at most 10000, see ratelimit.lease-max)",
        ),
        ("RL.ACQUIRE k 5 0", "ERR ttl must be greater than 0"),
        ("RL.ACQUIRE k 5 1s ID", "ERR ID needs a value"),
        ("RL.ACQUIRE k 5 1s ID a ID b", "ERR ID given more than once"),
        ("RL.ACQUIRE k 5 1s PENALTY 1s", "ERR unknown option 'PENALTY' (expected ID, COST or AT)"),
        ("RL.RELEASE k", "ERR wrong number of arguments for 'RL.RELEASE' command"),
        ("RL.RENEW k a", "ERR wrong number of arguments for 'RL.RENEW' command"),
        ("RL.RENEW k a 0", "ERR ttl must be greater than 0"),
        ("RL.ACQUIRE lim 5 1s", "ERR the key holds a FIXED limiter, not concurrency leases: use another key, or DEL it"),
        ("RL.RELEASE lim a", "ERR the key holds a FIXED limiter, not concurrency leases: use another key, or DEL it"),
        ("RL.FIXED sem 5 1m", "ERR the key holds concurrency leases, not a FIXED limiter: use another key, or DEL it"),
        ("RL.ALL 1 sem TOKEN 5 1 1s", "ERR the key holds concurrency leases, not a TOKEN limiter: use another key, or DEL it"),
        ("RL.PEEK sem FIXED 5 1m", "ERR the key holds concurrency leases, not a FIXED limiter: use another key, or DEL it"),
        ("RL.REFUND sem 1", "ERR the key holds concurrency leases, which RL.REFUND does not apply to: use another key"),
        ("RL.ACQUIRE str 5 1s", "WRONGTYPE Operation against a key holding the wrong kind of value"),
    ] {
        assert_eq!(c.cmd(line).err(), want, "{line}");
    }
    let long = "x".repeat(65);
    assert_eq!(
        c.cmd(&format!("RL.ACQUIRE k 5 1s ID {long}")).err(),
        "ERR lease_id must be 1 to 64 bytes"
    );
    assert_eq!(c.cmd("EXISTS k").int(), 0);
    // lease-max is a live setting.
    assert_eq!(c.cmd("CONFIG SET ratelimit.lease-max 3").text(), "OK");
    assert!(c.cmd("RL.ACQUIRE k 4 1s").err().contains("at most 3"));
    assert_eq!(c.cmd("INFO ratelimit").info_int("ratelimit_lease_max"), 3);
    // Memory: a full key of 1,000 leases with 32-byte ids: 32 bytes a
    // lease, its id, and a slot of the id index (12 bytes and a control
    // byte, in a table at most 7/8 full), 87 in all.
    assert_eq!(c.cmd("CONFIG SET ratelimit.lease-max 10000").text(), "OK");
    for _ in 0..1000 {
        assert!(!c.cmd("RL.ACQUIRE mem 1000 1h").is_error());
    }
    let per_lease = c.cmd("MEMORY USAGE mem").int() / 1000;
    assert!(
        (40..=88).contains(&per_lease),
        "{per_lease} bytes per lease"
    );
}

/// 50 clients racing for 10 slots get exactly 10 leases.
#[test]
fn racing_clients_get_exactly_the_limit() {
    let s = Server::start();
    let port = s.port;
    let threads: Vec<_> = (0..50)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Client::connect(port).unwrap();
                let (d, id) = lease(&mut c, "RL.ACQUIRE race 10 1h");
                assert_eq!(d[0] == 1, id.is_some());
                id
            })
        })
        .collect();
    let ids: Vec<String> = threads
        .into_iter()
        .filter_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(ids.len(), 10);
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 10, "ids are unique");
    let mut c = s.client();
    assert_eq!(info_field(&mut c, "race", "held"), 10);
}

/// Replayed refunds, penalties and lease ops are checked like a client's
/// call: one that can't apply exactly as on its master changes nothing, and
/// is counted.
#[test]
fn replayed_refunds_penalties_and_leases_are_checked() {
    use common::{resp, FakeMaster};
    use ratelimit::algo::{Count, Duration as Us, Instant, Params, WindowParams};
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
    let at = T1 as u64 + 3_600_000;
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
    assert_eq!(info_field(&mut c, "sem", "held"), 2);
    assert_ne!(c.cmd("DUMP sem"), sem);
}
