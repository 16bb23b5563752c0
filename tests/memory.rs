//! Memory: compact values, module memory in `used_memory`, `maxmemory`.
//!
//! With `noeviction` every write is refused and nothing is half-written;
//! eviction policies evict limiters cleanly.

mod common;

use common::{fixed_op, fixed_state, is_internal, server_info, words, Client, Server, Value, T0};

#[test]
fn compact_values() {
    let s = Server::start();
    let mut c = s.client();
    c.cmd("RL.TOKEN t 10 5 1h");
    c.cmd("RL.GCRA g 10 5 1h");
    c.cmd("RL.FIXED f 10 1h");
    c.cmd("RL.SLIDING s 10 1h");
    let usage = |c: &mut Client, k: &str| c.cmd(&format!("MEMORY USAGE {k}")).int();
    let (t, g, f, sl) = (
        usage(&mut c, "t"),
        usage(&mut c, "g"),
        usage(&mut c, "f"),
        usage(&mut c, "s"),
    );
    // Each value is exactly its state: 32 bytes for a fixed window, 40 for
    // a sliding one, 48 for a bucket; the rest is the server's per-key
    // overhead, the same for all.
    assert_eq!((t - f, g - f, sl - f), (16, 16, 8), "{t} {g} {f} {sl}");
    // On Redis, whose overhead is 32 bytes, that is at most 80 (Valkey
    // counts its keys differently).
    if !c.cmd("INFO server").text().contains("server_name:valkey") {
        assert!(
            t <= 80 && g <= 80 && f <= 80 && sl <= 80,
            "{t} {g} {f} {sl}"
        );
    }
}

#[test]
fn oom_with_noeviction_refuses_every_write_and_changes_nothing() {
    let s = Server::start();
    let mut c = s.client();
    assert_eq!(c.cmd(&format!("RL.FIXED old 5 1m AT {T0}")).ints()[0], 1);
    let dump = c.cmd("DUMP old");
    let ttl = c.cmd("PTTL old").int();
    assert_eq!(c.cmd("CONFIG SET maxmemory-policy noeviction").text(), "OK");
    assert_eq!(c.cmd("CONFIG SET maxmemory 1").text(), "OK");

    let far = (T0 as u64 + 60_000) * 1000;
    let refused: Vec<Vec<Vec<u8>>> = vec![
        words(&format!("RL.FIXED new 5 1m AT {T0}")),
        words(&format!("RL.SLIDING new 5 1m AT {T0}")),
        words(&format!("RL.LOG new 5 1m AT {T0}")),
        words(&format!("RL.TOKEN new 5 1 1s AT {T0}")),
        words(&format!("RL.LEAKY new 5 1 1s AT {T0}")),
        words(&format!("RL.GCRA new 5 1 1s AT {T0}")),
        // An existing key: refused too, not half-written.
        words(&format!("RL.FIXED old 5 1m AT {T0}")),
        words(&format!("RL.ALL 2 new old FIXED 5 1m FIXED 5 1m AT {T0}")),
        // deny-oom refuses peeks as well (Redis decides before the call).
        words(&format!("RL.FIXED old 5 1m COST 0 AT {T0}")),
        vec![
            b"RL.APPLY".to_vec(),
            b"new".to_vec(),
            fixed_op(5, 60_000_000, 1, far, T0 as u64 + 120_000),
        ],
        vec![
            b"RL.SETSTATE".to_vec(),
            b"new".to_vec(),
            b"1".to_vec(),
            fixed_state(5, 60_000_000, far, 1),
        ],
    ];
    for args in &refused {
        let reply = c.call(args);
        // (Redis 8 hides the internal commands from clients altogether.)
        let hidden = is_internal(args)
            && matches!(&reply, Value::Error(e) if e.starts_with("ERR unknown command"));
        assert!(
            hidden || matches!(&reply, Value::Error(e) if e.starts_with("OOM ")),
            "{:?}: {reply:?}",
            String::from_utf8_lossy(&args[0])
        );
    }
    assert_eq!(c.cmd("DBSIZE").int(), 1, "a refused call created a key");
    assert_eq!(c.cmd("DUMP old"), dump, "a refused call changed a key");
    assert!(c.cmd("PTTL old").int() <= ttl);
    // Reading is still allowed.
    assert!(!c.cmd("RL.INFO old").is_error());

    assert_eq!(c.cmd("CONFIG SET maxmemory 0").text(), "OK");
    assert_eq!(
        c.cmd(&format!("RL.FIXED old 5 1m AT {T0}")).ints(),
        vec![1, 5, 3, 0, 60_000]
    );
}

#[test]
fn module_memory_is_counted_in_used_memory() {
    let s = Server::start();
    let mut c = s.client();
    // First calls of a command allocate its latency histogram for good.
    c.cmd("RL.LOG warm 1 1h");
    c.cmd("MEMORY USAGE warm");
    c.cmd("DEL warm");
    let before = server_info(&mut c, "memory", "used_memory");
    assert_eq!(c.cmd("RL.LOG big 10000 1h COST 10000").ints()[0], 1);
    let after = server_info(&mut c, "memory", "used_memory");
    assert!(
        after - before >= 80_000,
        "a 10,000-entry log added only {} bytes to used_memory",
        after - before
    );
    assert!(c.cmd("MEMORY USAGE big").int() >= 80_000);
    c.cmd("DEL big");
    let freed = server_info(&mut c, "memory", "used_memory");
    assert!(
        freed <= before + 4096,
        "used_memory {freed} after DEL, {before} before"
    );
}

#[test]
fn eviction_policies_evict_limiters_cleanly() {
    for policy in ["allkeys-lru", "volatile-ttl", "allkeys-random"] {
        let s = Server::start();
        let mut c = s.client();
        c.cmd("RL.LOG warm 1 1h");
        c.cmd("DEL warm");
        let used = server_info(&mut c, "memory", "used_memory");
        let max = used + 1024 * 1024;
        assert_eq!(
            c.cmd(&format!("CONFIG SET maxmemory-policy {policy}"))
                .text(),
            "OK"
        );
        assert_eq!(c.cmd(&format!("CONFIG SET maxmemory {max}")).text(), "OK");
        // About 5 MB of limiters into 1 MB: most must be evicted, and every
        // call must still succeed.
        let n = 20_000;
        for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
            for i in chunk {
                // Different TTLs, so volatile-ttl has a choice to make.
                c.send(&words(&format!(
                    "RL.LOG k:{i} 20 {}s COST 20",
                    3600 + i % 1000
                )));
            }
            for _ in chunk {
                let reply = c.read();
                assert!(matches!(reply, Value::Array(_)), "{policy}: {reply:?}");
            }
        }
        let evicted = server_info(&mut c, "stats", "evicted_keys");
        let keys = c.cmd("DBSIZE").int();
        assert!(evicted > 0, "{policy}: nothing evicted");
        assert_eq!(keys + evicted, n, "{policy}: keys lost without eviction");
        let used = server_info(&mut c, "memory", "used_memory");
        assert!(
            used <= max + 64 * 1024,
            "{policy}: used_memory {used} > maxmemory {max}"
        );
        // What is left is intact, and an evicted key starts afresh. One
        // call per key: with allkeys-random any command may evict the very
        // key a previous one just found.
        let mut seen = 0;
        for i in (0..n).step_by(97) {
            let peek = c.cmd(&format!("RL.LOG k:{i} 20 1h COST 0")).ints();
            if peek == vec![1, 20, 20, 0, 0] {
                continue; // evicted: a fresh limiter
            }
            seen += 1;
            assert_eq!(peek[..3], [1, 20, 0], "{policy}: k:{i} is not what it held");
        }
        assert!(seen > 0, "{policy}: every sampled key was evicted");
        if policy == "volatile-ttl" {
            // The longest-lived keys are the ones kept.
            let ttls: Vec<i64> = (0..n)
                .step_by(37)
                .filter_map(|i| match c.cmd(&format!("TTL k:{i}")).int() {
                    -2 => None,
                    t => Some(t),
                })
                .collect();
            // Eviction samples keys, so it is approximate: the keys kept
            // live longer than the average key written (3600 + 500 s).
            let mean = ttls.iter().sum::<i64>() / ttls.len().max(1) as i64;
            eprintln!(
                "volatile-ttl: mean TTL of the {} keys sampled: {mean}",
                ttls.len()
            );
            assert!(
                mean > 3600 + 600,
                "volatile-ttl kept keys of mean TTL {mean}"
            );
        }
        assert_eq!(c.cmd("PING"), Value::Simple("PONG".into()));
    }
}
