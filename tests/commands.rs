//! Every RL.* command against a real redis-server with the module loaded.
//! Times are given with `AT` so every figure is exact.
//!
//! Keys still expire on the server's clock (`AT` only sets the decision's
//! time), so a test that needs a key to outlive the next command either
//! gives it a life far longer than any test or sends the calls in one
//! transaction ([`rl_tx`]), inside which nothing expires.

mod common;

use std::time::Duration;

use common::{Client, Server, Value};

const T0: i64 = 1_700_000_000_000;

/// `RL.<cmd> key params.. [COST c] AT t` as the five reply integers.
fn rl(c: &mut Client, line: &str, at: i64) -> Vec<i64> {
    let reply = c.cmd(&format!("{line} AT {at}"));
    match reply {
        Value::Array(_) => reply.ints(),
        other => panic!("{line} AT {at}: {other:?}"),
    }
}

/// Several `(line, at)` calls in one `MULTI`/`EXEC`, as the five reply
/// integers of each. Nothing expires inside a transaction, so a key living
/// a second or less is still there for the next call however slow the
/// machine; each call still decides at its own `AT`.
fn rl_tx(c: &mut Client, calls: &[(&str, i64)]) -> Vec<Vec<i64>> {
    assert_eq!(c.cmd("MULTI"), Value::Simple("OK".into()));
    for (line, at) in calls {
        let queued = c.cmd(&format!("{line} AT {at}"));
        assert_eq!(queued, Value::Simple("QUEUED".into()), "{line} AT {at}");
    }
    let Value::Array(replies) = c.cmd("EXEC") else {
        panic!("EXEC failed")
    };
    replies
        .iter()
        .zip(calls)
        .map(|(reply, (line, at))| match reply {
            Value::Array(_) => reply.ints(),
            other => panic!("{line} AT {at}: {other:?}"),
        })
        .collect()
}

fn digest(c: &mut Client, key: &str) -> String {
    c.cmd(&format!("DEBUG DIGEST-VALUE {key}")).ints_or_text()
}

trait DigestText {
    fn ints_or_text(&self) -> String;
}
impl DigestText for Value {
    fn ints_or_text(&self) -> String {
        match self {
            Value::Array(v) => v.iter().map(|x| x.text()).collect::<Vec<_>>().join(","),
            other => other.text(),
        }
    }
}

#[test]
fn readme_example_token_bucket() {
    let s = Server::start();
    let mut c = s.client();
    assert_eq!(
        c.cmd("RL.TOKEN user:42 10 5 1s").ints(),
        vec![1, 10, 9, 0, 200]
    );
    assert_eq!(c.cmd("TYPE user:42"), Value::Simple("ratelimit".into()));
}

#[test]
fn fixed_window_counts_exactly_to_the_limit() {
    let s = Server::start();
    let mut c = s.client();
    for i in 0..5 {
        assert_eq!(
            rl(&mut c, "RL.FIXED k 5 10s", T0 + i),
            vec![1, 5, 4 - i, 0, 10_000 - i]
        );
    }
    assert_eq!(
        rl(&mut c, "RL.FIXED k 5 10s", T0 + 5),
        vec![0, 5, 0, 9_995, 9_995]
    );
    assert_eq!(
        rl(&mut c, "RL.FIXED k 5 10s", T0 + 9_999),
        vec![0, 5, 0, 1, 1]
    );
    assert_eq!(
        rl(&mut c, "RL.FIXED k 5 10s", T0 + 10_000),
        vec![1, 5, 4, 0, 10_000]
    );
}

#[test]
fn sliding_window_counter_weights_the_previous_window() {
    let s = Server::start();
    let mut c = s.client();
    assert_eq!(
        rl(&mut c, "RL.SLIDING k 10 10s COST 10", T0),
        vec![1, 10, 0, 0, 20_000]
    );
    assert_eq!(
        rl(&mut c, "RL.SLIDING k 10 10s", T0 + 5_000),
        vec![0, 10, 0, 6_000, 15_000]
    );
    // At 11 s the previous window weighs 0.9: one unit fits.
    assert_eq!(
        rl(&mut c, "RL.SLIDING k 10 10s", T0 + 11_000),
        vec![1, 10, 0, 0, 19_000]
    );
    assert_eq!(
        rl(&mut c, "RL.SLIDING k 10 10s", T0 + 11_500),
        vec![0, 10, 0, 500, 18_500]
    );
    assert_eq!(rl(&mut c, "RL.SLIDING k 10 10s", T0 + 12_000)[0], 1);
}

#[test]
fn sliding_log_is_exact() {
    let s = Server::start();
    let mut c = s.client();
    for i in 0..3 {
        assert_eq!(rl(&mut c, "RL.LOG k 3 1m", T0 + i * 1000)[0], 1);
    }
    assert_eq!(
        rl(&mut c, "RL.LOG k 3 1m", T0 + 30_000),
        vec![0, 3, 0, 30_000, 32_000]
    );
    assert_eq!(rl(&mut c, "RL.LOG k 3 1m", T0 + 59_999)[0], 0);
    assert_eq!(
        rl(&mut c, "RL.LOG k 3 1m", T0 + 60_000),
        vec![1, 3, 0, 0, 60_000]
    );
    assert_eq!(
        rl(&mut c, "RL.LOG k 3 1m COST 2", T0 + 60_000),
        vec![0, 3, 0, 2_000, 60_000]
    );
    // One entry per unit: the log holds exactly `limit` timestamps.
    assert!(c.cmd("MEMORY USAGE k").int() > 0);
}

#[test]
fn token_bucket_refills_continuously() {
    let s = Server::start();
    let mut c = s.client();
    // The key lives 2 s: one transaction.
    let r = rl_tx(
        &mut c,
        &[
            ("RL.TOKEN k 10 5 1s COST 10", T0),
            ("RL.TOKEN k 10 5 1s", T0),
            ("RL.TOKEN k 10 5 1s", T0 + 199),
            ("RL.TOKEN k 10 5 1s", T0 + 200),
            ("RL.TOKEN k 10 5 1s COST 0", T0 + 1_200),
        ],
    );
    assert_eq!(r[0], vec![1, 10, 0, 0, 2_000]);
    assert_eq!(r[1], vec![0, 10, 0, 200, 2_000]);
    assert_eq!(r[2][0], 0);
    assert_eq!(r[3], vec![1, 10, 0, 0, 2_000]);
    assert_eq!(r[4], vec![1, 10, 5, 0, 1_000]);
}

#[test]
fn leaky_bucket_tells_each_request_its_wait() {
    let s = Server::start();
    let mut c = s.client();
    // The key lives 1.5 s: one transaction.
    let line = "RL.LEAKY k 3 2 1s";
    let r = rl_tx(
        &mut c,
        &[
            (line, T0),
            (line, T0),
            (line, T0),
            (line, T0),
            (line, T0 + 500),
        ],
    );
    let waits: Vec<i64> = r[..3].iter().map(|r| r[3]).collect();
    assert_eq!(waits, vec![0, 500, 1_000]);
    assert_eq!(r[3], vec![0, 3, 0, 500, 1_500]);
    assert_eq!(r[4], vec![1, 3, 0, 1_000, 1_500]);
}

#[test]
fn gcra_matches_redis_cell() {
    // redis-cell: CL.THROTTLE user123 15 30 60 -> limit 16, 15 left, resets in 2 s.
    let s = Server::start();
    let mut c = s.client();
    // After the first call the key lives 2 s: one transaction.
    let line = "RL.GCRA user123 15 30 60";
    let mut calls = vec![(line, T0); 17];
    calls.push(("RL.GCRA user123 15 30 60 COST 17", T0));
    let r = rl_tx(&mut c, &calls);
    assert_eq!(r[0], vec![1, 16, 15, 0, 2_000]);
    for r in &r[1..16] {
        assert_eq!(r[0], 1);
    }
    assert_eq!(r[16], vec![0, 16, 0, 2_000, 32_000]);
    assert_eq!(r[17][3], -1);
}

#[test]
fn retry_after_is_exact_for_every_algorithm() {
    let s = Server::start();
    let mut c = s.client();
    // Hour-long periods: with 1 s ones a bucket emptied by the last allowed
    // call expired 3/7 s later, and the denial, peek and early call that
    // follow had to come within that (or met a fresh key). The waits are
    // still fractions of a millisecond before rounding (3600 s / 7).
    let cases = [
        "RL.FIXED {k} 3 1h",
        "RL.SLIDING {k} 3 1h",
        "RL.LOG {k} 3 1h",
        "RL.TOKEN {k} 3 7 1h",
        "RL.LEAKY {k} 3 7 1h",
        "RL.GCRA {k} 2 7 1h",
    ];
    for (n, case) in cases.iter().enumerate() {
        let key = format!("retry{n}");
        let cmd = case.replace("{k}", &key);
        let mut t = T0;
        // Spend, then at each denial wait exactly retry_after and check that
        // one millisecond earlier is still denied and the exact time passes.
        for step in 0..20 {
            let r = rl(&mut c, &cmd, t);
            if r[0] == 1 {
                t += 37 * (step % 3);
                continue;
            }
            let wait = r[3];
            assert!(wait > 0, "{cmd}: {r:?}");
            assert_eq!(rl(&mut c, &format!("{cmd} COST 0"), t + wait - 1)[0], 1);
            let early = rl(&mut c, &cmd, t + wait - 1);
            assert_eq!(early[0], 0, "{cmd} at t+{}: {early:?}", wait - 1);
            let on_time = rl(&mut c, &cmd, t + wait);
            assert_eq!(on_time[0], 1, "{cmd} at t+{wait}: {on_time:?}");
            t += wait;
        }
    }
}

#[test]
fn peek_never_creates_or_changes_a_key() {
    let s = Server::start();
    let mut c = s.client();
    // Each key must outlive the five commands after it is made: the
    // buckets' periods are an hour (at 1 s they lived 2 s).
    for cmd in [
        "RL.FIXED p 5 10s",
        "RL.SLIDING p 5 10s",
        "RL.LOG p 5 10s",
        "RL.TOKEN p 5 1 1h",
        "RL.LEAKY p 5 1 1h",
        "RL.GCRA p 4 1 1h",
    ] {
        let r = rl(&mut c, &format!("{cmd} COST 0"), T0);
        assert_eq!(r, vec![1, 5, 5, 0, 0], "{cmd}");
        assert_eq!(c.cmd("EXISTS p").int(), 0, "{cmd}");
        rl(&mut c, &format!("{cmd} COST 2"), T0);
        let before = digest(&mut c, "p");
        let ttl = c.cmd("PEXPIRETIME p").int();
        let r = rl(&mut c, &format!("{cmd} COST 0"), T0 + 100);
        assert_eq!((r[0], r[2]), (1, 3), "{cmd}");
        assert_eq!(digest(&mut c, "p"), before, "{cmd}");
        assert_eq!(c.cmd("PEXPIRETIME p").int(), ttl, "{cmd}");
        c.cmd("DEL p");
    }
}

#[test]
fn denied_requests_change_nothing() {
    let s = Server::start();
    let mut c = s.client();
    // The bucket refills 1 per hour (at 1 per second its key lived 2 s,
    // less than the eleven commands after it might take).
    for cmd in ["RL.FIXED d 2 10s", "RL.LOG d 2 10s", "RL.TOKEN d 2 1 1h"] {
        rl(&mut c, &format!("{cmd} COST 2"), T0);
        let before = digest(&mut c, "d");
        for i in 0..10 {
            assert_eq!(rl(&mut c, cmd, T0 + i)[0], 0);
        }
        assert_eq!(digest(&mut c, "d"), before, "{cmd}");
        c.cmd("DEL d");
    }
}

#[test]
fn new_parameters_apply_to_the_existing_state() {
    let s = Server::start();
    let mut c = s.client();
    rl(&mut c, "RL.FIXED tier 5 1m COST 5", T0);
    assert_eq!(rl(&mut c, "RL.FIXED tier 5 1m", T0 + 1)[0], 0);
    // Upgraded to a paid tier: the 5 already spent still count.
    assert_eq!(
        rl(&mut c, "RL.FIXED tier 100 1m", T0 + 2),
        vec![1, 100, 94, 0, 59_998]
    );
    rl(&mut c, "RL.TOKEN tb 10 1 1s COST 10", T0);
    assert_eq!(
        rl(&mut c, "RL.TOKEN tb 20 1 1s COST 0", T0),
        vec![1, 20, 10, 0, 10_000]
    );
}

#[test]
fn at_never_moves_a_limiter_back_in_time() {
    let s = Server::start();
    let mut c = s.client();
    // The bucket's key lives 2 s: one transaction.
    let r = rl_tx(
        &mut c,
        &[
            ("RL.TOKEN b 2 1 1s COST 2", T0 + 10_000),
            // Earlier than the limiter has seen: treated as its latest time.
            ("RL.TOKEN b 2 1 1s", T0),
        ],
    );
    assert_eq!(r[1], vec![0, 2, 0, 1_000, 2_000]);
    rl(&mut c, "RL.LOG l 2 10s COST 2", T0 + 10_000);
    assert_eq!(rl(&mut c, "RL.LOG l 2 10s", T0 + 19_999)[0], 0);
    assert_eq!(rl(&mut c, "RL.LOG l 2 10s", T0)[0], 0);
}

#[test]
fn wrong_type_and_other_algorithm() {
    let s = Server::start();
    let mut c = s.client();
    c.cmd("SET str x");
    for cmd in [
        "RL.FIXED str 1 1",
        "RL.SLIDING str 1 1",
        "RL.LOG str 1 1",
        "RL.TOKEN str 1 1 1",
        "RL.LEAKY str 1 1 1",
        "RL.GCRA str 1 1 1",
        "RL.FIXED str 1 1 COST 0",
    ] {
        assert_eq!(
            c.cmd(cmd).err(),
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "{cmd}"
        );
    }
    // A window of an hour, so f is still there for the next three commands
    // (with 1 s it could expire, and RL.TOKEN would then make a new key).
    c.cmd("RL.FIXED f 1 1h");
    assert_eq!(
        c.cmd("RL.TOKEN f 1 1 1").err(),
        "ERR the key holds a FIXED limiter, not TOKEN: use another key, or DEL it to change algorithm"
    );
    assert_eq!(
        c.cmd("RL.LOG f 1 1 COST 0").err(),
        "ERR the key holds a FIXED limiter, not LOG: use another key, or DEL it to change algorithm"
    );
    assert_eq!(
        c.cmd("GET f").err(),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
}

#[test]
fn bad_input_gets_a_precise_error() {
    let s = Server::start();
    let mut c = s.client();
    let cases: &[(&str, &str)] = &[
        ("RL.FIXED", "ERR wrong number of arguments for 'RL.FIXED' command"),
        ("RL.FIXED k", "ERR wrong number of arguments for 'RL.FIXED' command"),
        ("RL.FIXED k 10", "ERR wrong number of arguments for 'RL.FIXED' command"),
        ("RL.TOKEN k 10 1", "ERR wrong number of arguments for 'RL.TOKEN' command"),
        ("RL.GCRA k 10 1", "ERR wrong number of arguments for 'RL.GCRA' command"),
        ("RL.FIXED k 10 1 COST", "ERR COST needs a value"),
        ("RL.FIXED k 10 1 AT", "ERR AT needs a value"),
        ("RL.FIXED k 10 1 BURST 3", "ERR unknown option 'BURST' (expected COST, AT, PENALTY or SHADOW)"),
        ("RL.FIXED k ten 1", "ERR limit must be a positive integer, got 'ten'"),
        ("RL.FIXED k 1.5 1", "ERR limit must be a positive integer, got '1.5'"),
        ("RL.FIXED k 0 1", "ERR limit must be greater than 0"),
        ("RL.SLIDING k -3 1", "ERR limit must be greater than 0"),
        ("RL.LOG k 5 0", "ERR window must be greater than 0"),
        ("RL.LOG k 5 -1m", "ERR window must be greater than 0"),
        ("RL.FIXED k 5 10x", "ERR window has an unknown unit 'x' (use us, ms, s, m, h, d, or mo with ALIGN)"),
        ("RL.FIXED k 5 ms", "ERR window must be a positive integer with an optional unit (us, ms, s, m, h, d), got an empty string"),
        ("RL.TOKEN k 0 1 1", "ERR capacity must be greater than 0"),
        ("RL.TOKEN k 5 0 1", "ERR rate must be greater than 0"),
        ("RL.LEAKY k 5 1 0", "ERR period must be greater than 0"),
        ("RL.LEAKY k 5 1 1y", "ERR period has an unknown unit 'y' (use us, ms, s, m, h or d)"),
        ("RL.GCRA k -1 1 1", "ERR max_burst must not be negative"),
        ("RL.FIXED k 1000000000000001 1", "ERR limit is too large (at most 1000000000000000)"),
        ("RL.FIXED k 99999999999999999999999 1", "ERR limit has too many digits"),
        ("RL.FIXED k 5 4000000d", "ERR window is too long (at most 1157407 days)"),
        ("RL.LOG k 10001 1", "ERR limit is too large for RL.LOG (at most 10000, see ratelimit.log-max)"),
        ("RL.FIXED k 5 1 COST -1", "ERR COST must not be negative"),
        ("RL.FIXED k 5 1 COST x", "ERR COST must be a non-negative integer, got 'x'"),
        ("RL.FIXED k 5 1 COST 1 COST 1", "ERR COST given more than once"),
        ("RL.FIXED k 5 1 AT -5", "ERR AT must be between 0 and 253402300799999"),
        ("RL.FIXED k 5 1 AT 253402300800000", "ERR AT must be between 0 and 253402300799999"),
        ("RL.FIXED k 5 1 AT 1 AT 2", "ERR AT given more than once"),
    ];
    for (line, msg) in cases {
        assert_eq!(c.cmd(line).err(), *msg, "{line}");
    }
    // Non-UTF-8, empty and huge arguments.
    let raw: Vec<(Vec<Vec<u8>>, &str)> = vec![
        (
            args!["RL.FIXED", "k", b"\xff\xfe".as_slice(), "1"],
            "ERR limit is not valid UTF-8",
        ),
        (
            args!["RL.FIXED", "k", "1", b"\xc3\x28s".as_slice()],
            "ERR window is not valid UTF-8",
        ),
        (
            args!["RL.FIXED", "k", "1", "1", b"\xffCOST".as_slice(), "1"],
            "ERR unknown option (expected COST, AT, PENALTY or SHADOW)",
        ),
        (
            args!["RL.FIXED", "k", "", "1"],
            "ERR limit must be a positive integer, got an empty string",
        ),
        (
            args!["RL.FIXED", "k", "1\r\nPING", "1"],
            "ERR limit must be a positive integer, got a value that is not a number",
        ),
        (
            args!["RL.FIXED", "k", "1".repeat(100_000), "1"],
            "ERR limit has too many digits",
        ),
        // Replication and AOF commands are closed to clients, whatever they
        // carry (tests/internal.rs feeds them through a master link).
        (
            args!["RL.APPLY", "k", "garbage"],
            "ERR RL.APPLY is internal",
        ),
        (
            args!["RL.SETSTATE", "k", "1", "garbage"],
            "ERR RL.SETSTATE is internal",
        ),
        (
            args!["RL.APPLYALL", "1", "k", ""],
            "ERR RL.APPLYALL is internal",
        ),
        (
            args!["RL.APPLY", "k"],
            "ERR wrong number of arguments for 'RL.APPLY' command",
        ),
    ];
    for (args, msg) in raw {
        let reply = c.call(&args);
        // Redis 8 hides internal commands from clients altogether.
        let internal = [&b"RL.APPLY"[..], b"RL.APPLYALL", b"RL.SETSTATE"].contains(&&args[0][..]);
        let hidden = internal && reply.err().starts_with("ERR unknown command");
        assert!(
            reply.err().starts_with(msg) || hidden,
            "{:?}: {reply:?}",
            args.iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
        );
    }
    // Binary keys are fine: keys are not text.
    assert_eq!(
        c.call(&args!["RL.FIXED", b"\xff\x00k".as_slice(), "1", "1"])
            .ints()[0],
        1
    );
    assert_eq!(c.cmd("PING"), Value::Simple("PONG".into()));
}

#[test]
fn cost_above_the_limit_never_fits() {
    let s = Server::start();
    let mut c = s.client();
    assert_eq!(
        rl(&mut c, "RL.FIXED big 5 1s COST 6", T0),
        vec![0, 5, 5, -1, 0]
    );
    assert_eq!(c.cmd("EXISTS big").int(), 0);
    assert_eq!(
        rl(&mut c, "RL.FIXED big 5 1s COST 5", T0),
        vec![1, 5, 0, 0, 1_000]
    );
}

#[test]
fn resp3_replies_the_same_array() {
    // ioredis' and node-redis' RESP3 mappings flatten or reorder maps; a
    // positional array of integers reads the same in every client.
    let s = Server::start();
    let mut c = s.client();
    assert!(matches!(c.cmd("HELLO 3"), Value::Map(_)));
    let reply = c.cmd(&format!("RL.FIXED m 2 1h AT {T0}"));
    assert_eq!(reply.ints(), vec![1, 2, 1, 0, 3_600_000]);
    c.cmd(&format!("RL.FIXED m 2 1h AT {T0}"));
    let denied = c.cmd(&format!("RL.FIXED m 2 1h AT {T0}"));
    assert_eq!(denied.ints(), vec![0, 2, 0, 3_600_000, 3_600_000]);
    let mut resp2 = s.client();
    assert_eq!(resp2.cmd(&format!("RL.FIXED m 2 1h AT {T0}")), denied);
    // RL.INFO stays a map under RESP3, its keys all bulk strings.
    match c.cmd("RL.INFO m") {
        Value::Map(pairs) => assert!(pairs.iter().all(|(k, _)| matches!(k, Value::Bulk(_)))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn transactions_and_scripts() {
    let s = Server::start();
    let mut c = s.client();
    assert_eq!(c.cmd("MULTI"), Value::Simple("OK".into()));
    for _ in 0..3 {
        assert_eq!(c.cmd("RL.FIXED tx 2 10s"), Value::Simple("QUEUED".into()));
    }
    let results = c.cmd("EXEC");
    let allowed: Vec<i64> = match results {
        Value::Array(v) => v.iter().map(|r| r.ints()[0]).collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(allowed, vec![1, 1, 0]);

    let reply = c.cmd("EVAL return{redis.call('RL.TOKEN',KEYS[1],3,1,'1s'),redis.call('RL.TOKEN',KEYS[1],3,1,'1s','COST',5)} 1 ev");
    match reply {
        Value::Array(v) => {
            assert_eq!(v[0].ints(), vec![1, 3, 2, 0, 1_000]);
            assert_eq!(v[1].ints(), vec![0, 3, 2, -1, 1_000]);
        }
        other => panic!("{other:?}"),
    }
    // One instant for a whole script: 3000 calls on a 1 s window all see the
    // window's start, so the last one still reports a full second to reset.
    let script =
        "local r for i=1,3000 do r=redis.call('RL.FIXED',KEYS[1],100000,'1s') end return r";
    let reply = c.call(&args!["EVAL", script, "1", "clock"]);
    assert_eq!(reply.ints()[4], 1_000);
    assert_eq!(reply.ints()[2], 97_000);
    // Same inside MULTI.
    c.cmd("MULTI");
    for _ in 0..500 {
        c.cmd("RL.LOG mclock 1000 1s");
    }
    match c.cmd("EXEC") {
        Value::Array(v) => {
            let resets: Vec<i64> = v.iter().map(|r| r.ints()[4]).collect();
            assert!(resets.iter().all(|&r| r == 1_000), "{resets:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn fifty_connections_race_for_one_hundred_units() {
    let s = Server::start();
    let port = s.port;
    let threads: Vec<_> = (0..50)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Client::connect(port).unwrap();
                // Pipelined, so the calls really interleave on the server.
                for _ in 0..40 {
                    c.send(&args!["RL.SLIDING", "race", "100", "1h"]);
                }
                (0..40).filter(|_| c.read().ints()[0] == 1).count()
            })
        })
        .collect();
    let allowed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(allowed, 100);
    let mut c = s.client();
    assert_eq!(c.cmd("RL.SLIDING race 100 1h COST 0").ints()[2], 0);
}

#[test]
fn keys_expire_when_equivalent_to_absent() {
    let s = Server::start();
    let mut c = s.client();
    // One transaction, so nothing expires before its expiry time is read:
    // the server's clock before the calls, the calls, each key's absolute
    // expiry, the clock after. Each key must expire exactly its reported
    // reset time after the call (whose time lies between the two readings),
    // however slow the machine.
    let cases = [
        ("e", "RL.TOKEN e 10 10 1s COST 3", 300),
        ("f", "RL.FIXED f 10 150ms", 150),
        ("l", "RL.LOG l 10 150ms", 150),
        ("s", "RL.SLIDING s 10 100ms", 200),
    ];
    assert_eq!(c.cmd("MULTI"), Value::Simple("OK".into()));
    c.cmd("TIME");
    for (_, line, _) in cases {
        c.cmd(line);
    }
    for (key, _, _) in cases {
        c.cmd(&format!("PEXPIRETIME {key}"));
    }
    c.cmd("TIME");
    let Value::Array(replies) = c.cmd("EXEC") else {
        panic!("EXEC failed")
    };
    let n = cases.len();
    let before = common::time_ms(&replies[0]);
    // Valkey answers TIME inside a transaction from a snapshot taken when it
    // began, while the module reads the clock at its first call: take the
    // later of that and a reading after EXEC as the upper bound.
    let after = common::time_ms(&replies[2 * n + 1]).max(common::time_ms(&c.cmd("TIME")));
    for (i, (key, line, reset)) in cases.iter().enumerate() {
        assert_eq!(replies[1 + i].ints()[4], *reset, "{line}");
        let expires = replies[1 + n + i].int();
        assert!(
            (before + reset..=after + reset).contains(&expires),
            "{key} expires at {expires}, not {reset} ms after the call (clock {before}..={after})"
        );
    }
    // And then they are gone.
    common::wait_until("the keys expire", Duration::from_secs(10), || {
        c.cmd("EXISTS e f l s").int() == 0
    });
}

#[test]
fn the_value_survives_every_keyspace_operation() {
    let s = Server::start();
    let mut c = s.client();
    let algos = [
        ("RL.FIXED", "5 1h"),
        ("RL.SLIDING", "5 1h"),
        ("RL.LOG", "5 1h"),
        ("RL.TOKEN", "5 1 1h"),
        ("RL.LEAKY", "5 1 1h"),
        ("RL.GCRA", "4 1 1h"),
    ];
    for (cmd, params) in algos {
        c.cmd(&format!("{cmd} v {params} COST 2"));
        let d = digest(&mut c, "v");
        let at = now_ms() + 1000;
        let peek = c.cmd(&format!("{cmd} v {params} COST 0 AT {at}")).ints();
        let check = |c: &mut Client, key: &str| {
            assert_eq!(digest(c, key), d, "{cmd} {key}");
            assert_eq!(
                c.cmd(&format!("{cmd} {key} {params} COST 0 AT {at}"))
                    .ints(),
                peek,
                "{cmd} {key}"
            );
            assert!(
                c.cmd(&format!("PTTL {key}")).int() > 3_000_000,
                "{cmd} {key}"
            );
        };
        assert!(c.cmd("MEMORY USAGE v").int() > 0);
        assert_eq!(c.cmd("COPY v v2"), Value::Int(1));
        check(&mut c, "v2");
        let dump = c.cmd("DUMP v").bytes();
        let reply = c.call(&args!["RESTORE", "v3", "0", dump.clone()]);
        assert_eq!(reply, Value::Simple("OK".into()));
        c.cmd("PEXPIRE v3 3600000");
        check(&mut c, "v3");
        c.cmd("RENAME v3 v4");
        check(&mut c, "v4");
        assert_eq!(c.cmd("DEBUG RELOAD"), Value::Simple("OK".into()));
        check(&mut c, "v");
        check(&mut c, "v4");
        // A damaged payload is refused, never loaded, never a crash.
        let mut bad = dump.clone();
        bad[3] ^= 0x55;
        assert!(c.call(&args!["RESTORE", "v5", "0", bad]).is_error());
        c.cmd("DEL v v2 v4");
    }
    assert_eq!(c.cmd("PING"), Value::Simple("PONG".into()));
}

#[test]
fn commands_declare_flags_and_key_positions() {
    let s = Server::start();
    let mut c = s.client();
    for cmd in [
        "rl.fixed",
        "rl.sliding",
        "rl.log",
        "rl.token",
        "rl.leaky",
        "rl.gcra",
    ] {
        let info = c.cmd(&format!("COMMAND INFO {cmd}"));
        let Value::Array(outer) = info else { panic!() };
        let Value::Array(fields) = &outer[0] else {
            panic!("{outer:?}")
        };
        assert_eq!(fields[0].text().to_lowercase(), cmd);
        let Value::Array(flags) = &fields[2] else {
            panic!()
        };
        let flags: Vec<String> = flags.iter().map(Value::text).collect();
        for f in ["write", "denyoom", "fast"] {
            assert!(flags.contains(&f.to_string()), "{cmd}: {flags:?}");
        }
        assert_eq!(
            (fields[3].int(), fields[4].int(), fields[5].int()),
            (1, 1, 1)
        );
    }
    let keys = c.cmd("COMMAND GETKEYS RL.TOKEN user:7 10 1 1s COST 2");
    assert_eq!(keys, Value::Array(vec![Value::Bulk(b"user:7".to_vec())]));
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn rl_all_combined_replies_the_combined_decision_alone() {
    // The same calls on two sets of keys, one set with COMBINED: the reply
    // is the full reply's first five integers, and the keys end the same.
    let s = Server::start();
    let mut c = s.client();
    let limits = "TOKEN 3 1 1s FIXED 2 1h";
    for (i, at) in [T0, T0 + 1, T0 + 2, T0 + 3, T0 + 1_500]
        .into_iter()
        .enumerate()
    {
        let full = c.cmd(&format!("RL.ALL 2 {{a}}:s {{a}}:h {limits} AT {at}"));
        let Value::Array(items) = &full else {
            panic!("{full:?}")
        };
        assert_eq!(items.len(), 7, "call {i}: {full:?}");
        let head: Vec<i64> = items[..5].iter().map(Value::int).collect();
        let combined = c.cmd(&format!(
            "RL.ALL 2 {{b}}:s {{b}}:h {limits} AT {at} COMBINED"
        ));
        assert_eq!(combined.ints(), head, "call {i}");
    }
    // RL.INFO but its last field, the TTL, which moves with the clock.
    let state = |c: &mut Client, key: &str| match c.cmd(&format!("RL.INFO {key}")) {
        Value::Array(mut items) => {
            items.truncate(items.len() - 2);
            items
        }
        other => panic!("{other:?}"),
    };
    for (a, b) in [("{a}:s", "{b}:s"), ("{a}:h", "{b}:h")] {
        assert_eq!(state(&mut c, a), state(&mut c, b));
    }
    // Denied with PENALTY and SHADOW too, in any order among the options.
    let d = c.cmd(&format!(
        "RL.ALL 2 {{b}}:s {{b}}:h {limits} COMBINED SHADOW AT {}",
        T0 + 4
    ));
    assert_eq!(d.ints().len(), 5);
    assert!(matches!(c.cmd("HELLO 3"), Value::Map(_)));
    let r3 = c.cmd(&format!(
        "RL.ALL 2 {{c}}:s {{c}}:h {limits} COMBINED AT {T0}"
    ));
    assert_eq!(r3.ints(), vec![1, 2, 1, 0, 3_600_000]);
    let twice = c.cmd("RL.ALL 1 k TOKEN 3 1 1s COMBINED COMBINED");
    assert!(
        twice.text().contains("COMBINED given more than once"),
        "{twice:?}"
    );
    let single = c.cmd("RL.FIXED k 2 1h COMBINED");
    assert!(
        single.text().contains("unknown option 'COMBINED'"),
        "{single:?}"
    );
}
