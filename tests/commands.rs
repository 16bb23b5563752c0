//! The command surface, whatever the algorithm: types, errors, protocols, keys.
//!
//! Wrong types, precise errors and a catalogue of malformed arguments for
//! every command (from clients and from a master's stream), RESP3,
//! transactions and scripts, flags and key specs, keyspace operations,
//! `RL.INFO` and `INFO ratelimit`, keyspace events, and the workload
//! `scripts/memcheck` runs under valgrind.

mod common;

use std::time::Duration;

use common::{
    digest, fixed_op, fixed_state, is_internal, map, ratelimit_stat, resp, server_info, Client,
    FakeMaster, Server, Value, ALGORITHMS, T0,
};

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
fn the_value_survives_every_keyspace_operation() {
    let s = Server::start();
    let mut c = s.client();
    for (cmd, params) in ALGORITHMS {
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
fn info_reports_without_changing_anything() {
    let s = Server::start();
    let mut c = s.client();
    assert_eq!(c.cmd("RL.INFO nothing"), Value::Null);
    c.cmd("SET str x");
    assert!(c.cmd("RL.INFO str").err().starts_with("WRONGTYPE"));
    assert_eq!(
        c.cmd("RL.INFO a b"),
        Value::Error("ERR wrong number of arguments for 'RL.INFO' command".into())
    );

    // RL.INFO reads the server's clock: with 2 per hour a unit drains every
    // 30 minutes, so the level and what remains cannot move while the test
    // runs (with 2 per second they changed after 500 ms).
    c.cmd("RL.GCRA g 4 2 1h COST 3");
    c.cmd("RL.LOG l 10 1m COST 4");
    let digest = c.cmd("DEBUG DIGEST");
    let g = map(&c.cmd("RL.INFO g"));
    assert_eq!(g["algorithm"].text(), "GCRA");
    assert_eq!(g["max_burst"].int(), 4);
    assert_eq!(g["rate"].int(), 2);
    assert_eq!(g["period_us"].int(), 3_600_000_000);
    assert_eq!(g["level"].int(), 3);
    assert!((0..=2).contains(&g["remaining"].int()));
    assert!(g["ttl_ms"].int() > 0 && g["ttl_ms"].int() <= 5_400_000);
    let l = map(&c.cmd("RL.INFO l"));
    assert_eq!(l["algorithm"].text(), "LOG");
    assert_eq!(l["entries"].int(), 4);
    assert_eq!(l["window_us"].int(), 60_000_000);
    assert_eq!(l["oldest_us"], l["newest_us"]);
    assert_eq!(l["remaining"].int(), 6);
    assert_eq!(c.cmd("DEBUG DIGEST"), digest, "RL.INFO changed data");
    c.cmd("HELLO 3");
    assert!(matches!(c.cmd("RL.INFO g"), Value::Map(_)));
}

#[test]
fn info_section_counts_calls() {
    let s = Server::start();
    let mut c = s.client();
    for _ in 0..5 {
        c.cmd("RL.FIXED f 3 1h");
    }
    c.cmd("RL.TOKEN t 1 1 1h COST 0");
    c.cmd("RL.ALL 2 {a}:1 {a}:2 GCRA 0 1 1h LOG 5 1h");
    c.cmd("RL.ALL 2 {a}:1 {a}:2 GCRA 0 1 1h LOG 5 1h");
    c.cmd("RL.FIXED f 3 nonsense");
    assert_eq!(ratelimit_stat(&mut c, "fixed_calls"), 5);
    assert_eq!(ratelimit_stat(&mut c, "fixed_allowed"), 3);
    assert_eq!(ratelimit_stat(&mut c, "fixed_denied"), 2);
    assert_eq!(ratelimit_stat(&mut c, "token_calls"), 1);
    assert_eq!(ratelimit_stat(&mut c, "token_allowed"), 1);
    assert_eq!(ratelimit_stat(&mut c, "gcra_calls"), 2);
    assert_eq!(ratelimit_stat(&mut c, "gcra_denied"), 1);
    assert_eq!(ratelimit_stat(&mut c, "log_allowed"), 2);
    assert_eq!(ratelimit_stat(&mut c, "all_calls"), 2);
    assert_eq!(ratelimit_stat(&mut c, "all_allowed"), 1);
    assert_eq!(ratelimit_stat(&mut c, "all_denied"), 1);
    assert_eq!(ratelimit_stat(&mut c, "sliding_calls"), 0);
    assert_eq!(ratelimit_stat(&mut c, "keys"), 3);
    c.cmd("COPY f f2");
    assert_eq!(ratelimit_stat(&mut c, "keys"), 4);
    c.cmd("DEL f f2 {a}:1");
    assert_eq!(ratelimit_stat(&mut c, "keys"), 1);
    // SYNC: Valkey flushes in the background by default.
    c.cmd("FLUSHALL SYNC");
    assert_eq!(ratelimit_stat(&mut c, "keys"), 0);
    let text = c.cmd("INFO ratelimit").text();
    assert!(text.contains("ratelimit_version:"), "{text}");
    assert!(text.contains("ratelimit_log_max:10000"), "{text}");
}

#[test]
fn denied_requests_raise_a_keyspace_event() {
    let s = Server::start();
    let mut c = s.client();
    c.cmd("CONFIG SET notify-keyspace-events Ed");
    let mut sub = s.client();
    sub.cmd("PSUBSCRIBE __keyevent@*__:rl.denied");
    c.cmd("RL.FIXED login:1.2.3.4 1 1m");
    c.cmd("RL.FIXED login:1.2.3.4 1 1m");
    c.cmd("RL.ALL 2 {x}:a {x}:b FIXED 1 1m FIXED 0 1m"); // bad: not an event
    c.cmd("RL.ALL 2 {x}:a {x}:b FIXED 1 1m FIXED 1 1m COST 2");
    let mut got = Vec::new();
    for _ in 0..3 {
        match sub.read() {
            Value::Array(v) => got.push((v[2].text(), v[3].text())),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        got,
        vec![
            ("__keyevent@0__:rl.denied".into(), "login:1.2.3.4".into()),
            ("__keyevent@0__:rl.denied".into(), "{x}:a".into()),
            ("__keyevent@0__:rl.denied".into(), "{x}:b".into()),
        ]
    );
}

/// Placeholders in catalogue lines for arguments that cannot be written
/// as plain words.
fn arg(token: &str) -> Vec<u8> {
    match token {
        "<empty>" => Vec::new(),
        "<binary>" => b"\xff\xfe\x00\x01".to_vec(),
        "<crlf>" => b"5\r\n".to_vec(),
        "<huge-number>" => vec![b'9'; 1 << 20],
        "<huge-text>" => vec![b'x'; 1 << 20],
        "<negative-zero>" => b"-0".to_vec(),
        t => t.as_bytes().to_vec(),
    }
}

/// Bad values for a count and what the message must say.
fn bad_counts(min: u64) -> Vec<(&'static str, &'static str)> {
    let what = if min == 0 {
        "must be a non-negative integer"
    } else {
        "must be a positive integer"
    };
    let mut v = vec![
        ("abc", what),
        ("<empty>", "got an empty string"),
        ("1.5", what),
        ("1e3", what),
        ("+5", what),
        ("0x10", what),
        ("99999999999999999999999", "has too many digits"),
        ("1000000000000001", "is too large"),
        ("18446744073709551616", "is too large"),
        ("<binary>", "is not valid UTF-8"),
        ("<crlf>", what),
        ("<huge-number>", "has too many digits"),
        ("<huge-text>", what),
    ];
    if min == 0 {
        v.push(("-1", "must not be negative"));
    } else {
        v.extend([
            ("-1", "must be greater than 0"),
            ("0", "must be greater than 0"),
        ]);
        v.push(("<negative-zero>", "must be greater than 0"));
    }
    v
}

const BAD_DURATIONS: &[(&str, &str)] = &[
    ("0", "must be greater than 0"),
    ("0ms", "must be greater than 0"),
    ("-5s", "must be greater than 0"),
    ("5w", "has an unknown unit 'w'"),
    ("1sec", "has an unknown unit 'sec'"),
    ("1.5s", "has an unknown unit"),
    ("s", "got an empty string"),
    ("<empty>", "got an empty string"),
    ("4000000d", "is too long"),
    ("100000000000000001us", "is too long"),
    ("99999999999999999999999d", "has too many digits"),
    ("<binary>", "is not valid UTF-8"),
    ("<huge-number>", "has too many digits"),
    ("<huge-text>", "has an unknown unit"),
];

/// (trailing options, what the message must say)
const BAD_OPTIONS: &[(&str, &str)] = &[
    ("COST", "COST needs a value"),
    ("AT", "AT needs a value"),
    ("COST -1", "COST must not be negative"),
    ("COST x", "COST must be a non-negative integer"),
    ("COST 1 COST 1", "COST given more than once"),
    ("AT 1 AT 1", "AT given more than once"),
    ("AT -1", "AT must be between 0 and 253402300799999"),
    (
        "AT 253402300800000",
        "AT must be between 0 and 253402300799999",
    ),
    ("AT 1.5", "AT must be a Unix time in milliseconds"),
    ("AT <binary>", "AT is not valid UTF-8"),
    (
        "FOO 1",
        "unknown option 'FOO' (expected COST, AT, PENALTY or SHADOW)",
    ),
    ("<empty> 1", "unknown option"),
    (
        "<binary> 1",
        "unknown option (expected COST, AT, PENALTY or SHADOW)",
    ),
    (
        "<huge-text> 1",
        "unknown option (expected COST, AT, PENALTY or SHADOW)",
    ),
    (
        "COST 1 1",
        "unknown option '1' (expected COST, AT, PENALTY or SHADOW)",
    ),
];

/// Every single-key command with valid parameters, and their names.
const COMMANDS: &[(&str, &[(&str, &str)])] = &[
    ("RL.FIXED", &[("limit", "10"), ("window", "1s")]),
    ("RL.SLIDING", &[("limit", "10"), ("window", "1s")]),
    ("RL.LOG", &[("limit", "10"), ("window", "1s")]),
    (
        "RL.TOKEN",
        &[("capacity", "10"), ("rate", "5"), ("period", "1s")],
    ),
    (
        "RL.LEAKY",
        &[("capacity", "10"), ("rate", "5"), ("period", "1s")],
    ),
    (
        "RL.GCRA",
        &[("max_burst", "10"), ("rate", "5"), ("period", "1s")],
    ),
];

/// Every malformed call a client can send, with what the reply must say:
/// the replication and AOF commands are refused as internal, whatever they
/// carry (what they carry is checked by `replays_are_checked_like_client_input`).
fn catalogue() -> Vec<(Vec<Vec<u8>>, String)> {
    every_case()
        .into_iter()
        .map(|(args, want)| {
            // Redis checks the arity first, then the command refuses.
            // (Redis 8 hides them from clients: an unknown command.)
            if is_internal(&args) && !want.contains("wrong number of arguments") {
                (args, "is internal || unknown command".into())
            } else {
                (args, want)
            }
        })
        .collect()
}

/// The malformed replication and AOF commands, with the reason each is
/// refused when a master or the AOF sends it.
fn replay_catalogue() -> Vec<(Vec<Vec<u8>>, String)> {
    every_case()
        .into_iter()
        .filter(|(args, want)| is_internal(args) && !want.contains("wrong number of arguments"))
        .collect()
}

fn every_case() -> Vec<(Vec<Vec<u8>>, String)> {
    let mut cases: Vec<(Vec<Vec<u8>>, String)> = Vec::new();
    let line = |tokens: &[&str]| tokens.iter().map(|t| arg(t)).collect::<Vec<_>>();
    for &(cmd, params) in COMMANDS {
        let valid: Vec<&str> = params.iter().map(|p| p.1).collect();
        // Each parameter in turn, every bad value.
        for (i, &(name, _)) in params.iter().enumerate() {
            let bad: Vec<(&str, &str)> = if name == "window" || name == "period" {
                BAD_DURATIONS.to_vec()
            } else {
                bad_counts(u64::from(name != "max_burst"))
            };
            for (value, msg) in bad {
                let mut tokens = vec![cmd, "key"];
                tokens.extend(&valid);
                tokens[2 + i] = value;
                cases.push((line(&tokens), format!("{name} && {msg}")));
            }
        }
        // Trailing options.
        for &(opts, msg) in BAD_OPTIONS {
            let mut tokens = vec![cmd, "key"];
            tokens.extend(&valid);
            tokens.extend(opts.split(' '));
            cases.push((line(&tokens), msg.to_string()));
        }
        // Too few arguments.
        let arity = format!(
            "wrong number of arguments for '{}' command",
            cmd.to_lowercase()
        );
        for n in 0..=params.len() {
            let mut tokens = vec![cmd];
            if n > 0 {
                tokens.push("key");
                tokens.extend(&valid[..n - 1]);
            }
            cases.push((line(&tokens), arity.clone()));
        }
    }
    // The log's ceiling, the burst's.
    cases.push((
        line(&["RL.LOG", "key", "10001", "1s"]),
        "limit is too large for RL.LOG (at most 10000".into(),
    ));
    cases.push((
        line(&["RL.GCRA", "key", "1000000000000000", "1", "1s"]),
        "max_burst is too large".into(),
    ));
    // RL.ALL
    for (l, msg) in [
        ("RL.ALL", "wrong number of arguments for 'RL.ALL' command"),
        (
            "RL.ALL 1 a",
            "wrong number of arguments for 'RL.ALL' command",
        ),
        ("RL.ALL 0 a FIXED 1 1", "numkeys must be greater than 0"),
        ("RL.ALL -1 a FIXED 1 1", "numkeys must be greater than 0"),
        ("RL.ALL x a FIXED 1 1", "numkeys must be a positive integer"),
        (
            "RL.ALL <empty> a FIXED 1 1",
            "numkeys must be a positive integer",
        ),
        (
            "RL.ALL <huge-number> a FIXED 1 1",
            "numkeys has too many digits",
        ),
        (
            "RL.ALL 65 a b",
            // Redis checks numkeys against the arguments first (key specs).
            "numkeys is too large for RL.ALL (at most 64) || wrong number of arguments",
        ),
        (
            "RL.ALL 3 a b",
            "numkeys is greater than the number of keys given || wrong number of arguments",
        ),
        (
            "RL.ALL 2 a a FIXED 1 1 FIXED 1 1",
            "key 2 of RL.ALL repeats key 1",
        ),
        ("RL.ALL 2 a b FIXED 1 1", "limit 2 of 2 is missing"),
        (
            "RL.ALL 1 a BUCKET 1 1",
            "limit 1 must start with FIXED, SLIDING, LOG, TOKEN, LEAKY, GCRA or POLICY",
        ),
        ("RL.ALL 1 a <binary> 1 1", "limit 1 must start with FIXED"),
        ("RL.ALL 1 a <empty> 1 1", "limit 1 must start with FIXED"),
        (
            "RL.ALL 1 a TOKEN 1 1",
            "limit 1 (TOKEN) needs capacity, rate, period",
        ),
        (
            "RL.ALL 2 a b FIXED 1 1s TOKEN 1 x 1s",
            "limit 2 (TOKEN): rate must be a positive integer",
        ),
        (
            "RL.ALL 1 a FIXED 1 <binary>",
            "limit 1 (FIXED): window is not valid UTF-8",
        ),
        (
            "RL.ALL 1 a LOG 10001 1s",
            "limit 1 (LOG): limit is too large for RL.LOG",
        ),
        (
            "RL.ALL 1 a GCRA -1 1 1s",
            "limit 1 (GCRA): max_burst must not be negative",
        ),
        (
            "RL.ALL 1 a FIXED 1 1s FIXED 1 1s",
            "unknown option 'FIXED' (expected COST, AT, PENALTY, SHADOW or COMBINED)",
        ),
        ("RL.ALL 1 a FIXED 1 1s COST -1", "COST must not be negative"),
        (
            "RL.ALL 1 a FIXED 1 1s COST 1 COST 1",
            "COST given more than once",
        ),
        ("RL.ALL 1 a FIXED 1 1s AT", "AT needs a value"),
    ] {
        let tokens: Vec<&str> = l.split(' ').collect();
        cases.push((line(&tokens), msg.into()));
    }
    // RL.APPLY: what replicas and the AOF get; garbage must be refused.
    let good_op = fixed_op(5, 1_000_000, 1, T0 as u64 * 1000, T0 as u64 + 1000);
    let mut bad_ops: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "invalid RL.APPLY operation: truncated"),
        (b"\xff\xfe".to_vec(), "invalid RL.APPLY operation"),
        (vec![b'x'; 1 << 20], "invalid RL.APPLY operation"),
        (good_op[..good_op.len() - 1].to_vec(), "truncated"),
        (
            [good_op.clone(), vec![0]].concat(),
            "unexpected bytes after",
        ),
    ];
    // An RL.ALL op is not a single-key one; a kind from a newer module is
    // refused, naming the upgrade order.
    let mut all = good_op.clone();
    all[0] = 2;
    bad_ops.push((all, "operation kind 2 is unknown here"));
    let mut newer = good_op.clone();
    newer[0] = 99;
    bad_ops.push((
        newer,
        "operation kind 99 is unknown here (replicas must be upgraded",
    ));
    let mut tag = good_op.clone();
    tag[1] = 99;
    bad_ops.push((tag, "unknown ratelimit algorithm tag 99"));
    bad_ops.push((fixed_op(0, 1_000_000, 1, 0, 0), "parameter out of range"));
    bad_ops.push((fixed_op(5, 0, 1, 0, 0), "parameter out of range"));
    bad_ops.push((fixed_op(5, 1, u64::MAX, 0, 0), "parameter out of range"));
    bad_ops.push((
        fixed_op(5, 1, 1, u64::MAX, 0),
        "inconsistent ratelimit state",
    ));
    for (op, msg) in bad_ops {
        cases.push((vec![b"RL.APPLY".to_vec(), b"key".to_vec(), op], msg.into()));
    }
    for l in ["RL.APPLY", "RL.APPLY key", "RL.APPLY key a b"] {
        let tokens: Vec<&str> = l.split(' ').collect();
        cases.push((
            line(&tokens),
            "wrong number of arguments for 'RL.APPLY' command".into(),
        ));
    }
    // RL.SETSTATE: what an AOF rewrite emits.
    let good = fixed_state(5, 1_000_000, T0 as u64 * 1000, 2);
    let setstate = |version: &[u8], blob: Vec<u8>| {
        vec![
            b"RL.SETSTATE".to_vec(),
            b"key".to_vec(),
            version.to_vec(),
            blob,
        ]
    };
    for (case, msg) in [
        (
            setstate(b"0", good.clone()),
            "encoding version must be greater than 0",
        ),
        (
            setstate(b"x", good.clone()),
            "encoding version must be a positive integer",
        ),
        (
            setstate(b"", good.clone()),
            "encoding version must be a positive integer",
        ),
        (
            setstate(b"3", good.clone()),
            "encoding version 3 is newer than this module",
        ),
        (
            setstate(b"99999999999", good.clone()),
            "is newer than this module",
        ),
        (
            setstate(b"1", Vec::new()),
            "invalid RL.SETSTATE value: truncated",
        ),
        (
            setstate(b"1", vec![b'x'; 1 << 20]),
            "invalid RL.SETSTATE value",
        ),
        (
            setstate(b"1", [good.clone(), vec![0]].concat()),
            "unexpected bytes after",
        ),
        // A count above the stored limit is a state a denied request that
        // lowered the limit leaves; one above any limit is not.
        (
            setstate(b"1", fixed_state(5, 1_000_000, 0, 1_000_000_000_000_001)),
            "inconsistent ratelimit state",
        ),
        (
            setstate(b"1", fixed_state(5, 1_000_000, u64::MAX, 1)),
            "inconsistent ratelimit state",
        ),
    ] {
        cases.push((case, msg.into()));
    }
    // A log whose length says more entries than there are bytes.
    let mut log = vec![3u8];
    for v in [10u64, 1_000_000, u64::MAX] {
        log.extend_from_slice(&v.to_le_bytes());
    }
    cases.push((setstate(b"1", log), "inconsistent ratelimit state".into()));
    for l in ["RL.SETSTATE key 1", "RL.SETSTATE key 1 a b"] {
        let tokens: Vec<&str> = l.split(' ').collect();
        cases.push((
            line(&tokens),
            "wrong number of arguments for 'RL.SETSTATE' command".into(),
        ));
    }
    // RL.INFO
    for l in ["RL.INFO", "RL.INFO a b"] {
        let tokens: Vec<&str> = l.split(' ').collect();
        cases.push((
            line(&tokens),
            "wrong number of arguments for 'RL.INFO' command".into(),
        ));
    }
    // Keys of the wrong type (set up by the test) and of another algorithm.
    for l in [
        "RL.FIXED str 10 1s",
        "RL.TOKEN str 10 1 1s",
        "RL.GCRA str 1 1 1s COST 0",
        "RL.ALL 2 a str FIXED 1 1s FIXED 1 1s",
        "RL.INFO str",
    ] {
        let tokens: Vec<&str> = l.split(' ').collect();
        cases.push((line(&tokens), "WRONGTYPE".into()));
    }
    cases.push((
        vec![b"RL.APPLY".to_vec(), b"str".to_vec(), good_op],
        "WRONGTYPE".into(),
    ));
    cases.push((
        setstate(b"1", good)
            .into_iter()
            .enumerate()
            .map(|(i, a)| if i == 1 { b"str".to_vec() } else { a })
            .collect(),
        "WRONGTYPE".into(),
    ));
    for (l, msg) in [
        (
            "RL.TOKEN fx 10 1 1s",
            "the key holds a FIXED limiter, not TOKEN",
        ),
        (
            "RL.SLIDING fx 10 1s COST 0",
            "the key holds a FIXED limiter, not SLIDING",
        ),
        (
            "RL.ALL 2 a fx FIXED 1 1s LOG 1 1s",
            "the key holds a FIXED limiter, not LOG",
        ),
    ] {
        let tokens: Vec<&str> = l.split(' ').collect();
        cases.push((line(&tokens), msg.into()));
    }
    cases
}

#[test]
fn bad_input_catalogue() {
    let mut s = Server::start();
    let mut c = s.client();
    assert_eq!(c.cmd("SET str hello").text(), "OK");
    // fx must stay as it is through the catalogue (its cases on fx expect
    // a FIXED limiter, and DUMP fx is compared at the end): a window of an
    // hour, not a minute, whatever the machine's speed.
    assert_eq!(c.cmd(&format!("RL.FIXED fx 10 1h AT {T0}")).ints()[0], 1);
    let fx = c.cmd("DUMP fx");
    let cases = catalogue();
    assert!(cases.len() > 300, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (args, want) in &cases {
        let reply = c.call(args);
        let shown: Vec<String> = args
            .iter()
            .map(|a| {
                if a.len() > 40 {
                    format!("<{} bytes>", a.len())
                } else {
                    String::from_utf8_lossy(a).into_owned()
                }
            })
            .collect();
        // `a && b || c`: the message contains a and b, or c (ASCII case
        // ignored: Redis spells some command names in capitals).
        let says = |e: &str| {
            let e = e.to_ascii_lowercase();
            want.split("||").any(|alt| {
                alt.split("&&")
                    .all(|frag| e.contains(&frag.trim().to_ascii_lowercase()))
            })
        };
        let ok = match &reply {
            // Redis 8 hides the internal commands: its own reply then
            // echoes the arguments as they came.
            Value::Error(e) if is_internal(args) && e.starts_with("ERR unknown command") => true,
            Value::Error(e) => {
                (e.starts_with("ERR ") || e.starts_with("WRONGTYPE "))
                    && says(e)
                    && e.len() < 300
                    && e.bytes().all(|b| (b' '..=b'~').contains(&b))
            }
            _ => false,
        };
        if !ok {
            failures.push(format!("{shown:?}: want {want:?}, got {reply:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // Nothing was created or changed, and the server is fine.
    assert_eq!(c.cmd("DBSIZE").int(), 2);
    assert_eq!(c.cmd("DUMP fx"), fx);
    assert_eq!(c.cmd("GET str").text(), "hello");
    assert_eq!(c.cmd("PING"), Value::Simple("PONG".into()));
    assert!(s.alive());
    assert!(!s.log().contains("internal error"), "{}", s.log());
    eprintln!("bad input catalogue: {} cases", cases.len());
}

#[test]
fn replays_are_checked_like_client_input() {
    // The dataset the fake master hands over: a string and one limiter.
    let origin = Server::start();
    let mut o = origin.client();
    assert_eq!(o.cmd("SET str hello").text(), "OK");
    assert_eq!(o.cmd(&format!("RL.FIXED fx 10 1m AT {T0}")).ints()[0], 1);
    assert_eq!(o.cmd("SAVE").text(), "OK");
    let rdb = std::fs::read(origin.dir.join("dump.rdb")).unwrap();
    let fx = o.cmd("DUMP fx");

    let replica = Server::start();
    let mut c = replica.client();
    let replid = "0123456789abcdef0123456789abcdef01234567";
    let mut master = FakeMaster::feed(&replica, replid, &rdb, b"");
    assert_eq!(
        c.cmd("INFO ratelimit").info_int("ratelimit_replay_errors"),
        0
    );

    let cases = replay_catalogue();
    assert!(cases.len() > 20, "{} cases", cases.len());
    let mut stream = Vec::new();
    for (args, _) in &cases {
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        stream.extend(resp(&args));
    }
    // A well-formed op the replica can't apply: its state differs (the
    // master would never send a denied request under the same limit).
    let denied = fixed_op(10, 60_000_000, 11, T0 as u64 * 1000, T0 as u64 + 60_000);
    stream.extend(resp(&[b"RL.APPLY", b"fx", &denied]));
    master.send(&mut c, &stream, &replica);

    // Every one refused and counted, nothing created or changed, and the
    // reason logged with the key (at most once a second).
    assert_eq!(
        c.cmd("INFO ratelimit").info_int("ratelimit_replay_errors"),
        cases.len() as i64 + 1
    );
    assert_eq!(c.cmd("DBSIZE").int(), 2);
    assert_eq!(c.cmd("DUMP fx"), fx);
    assert_eq!(c.cmd("GET str").text(), "hello");
    let log = replica.log();
    assert!(
        log.contains("ratelimit: could not apply RL.APPLY on key 'key': ERR invalid RL.APPLY operation: truncated"),
        "{log}"
    );
    // A divergence after a quiet second is logged too. The log's rate is
    // kept on the server's own clock, which `AT` does not move: the second
    // has to pass for real (200 ms beyond it, for a loaded machine).
    std::thread::sleep(Duration::from_millis(1200));
    master.send(&mut c, &resp(&[b"RL.APPLY", b"fx", &denied]), &replica);
    assert!(
        replica
            .log()
            .contains("could not apply RL.APPLY on key 'fx': ERR the replica's state differs from its master's"),
        "{}",
        replica.log()
    );
    master.detach(&mut c);
    assert_eq!(c.cmd("PING"), Value::Simple("PONG".into()));
}

/// How many keys a full `SCAN ... MATCH pattern` returns.
fn scan_count(c: &mut Client, pattern: &str) -> usize {
    let mut cursor = "0".to_string();
    let mut n = 0;
    loop {
        let reply = c.cmd(&format!("SCAN {cursor} MATCH {pattern} COUNT 1000"));
        let Value::Array(parts) = reply else {
            panic!("SCAN answered {reply:?}")
        };
        let Value::Array(keys) = &parts[1] else {
            panic!("SCAN answered {parts:?}")
        };
        n += keys.len();
        cursor = parts[0].text();
        if cursor == "0" {
            return n;
        }
    }
}

/// The workload `scripts/memcheck` runs against redis-server under valgrind
/// (`REDIS_SERVER` is then a wrapper): every command, good and bad input,
/// persistence round trips, expiry, eviction and concurrent clients; then
/// the keyspace is flushed so everything the module allocated for keys must
/// have been freed, and the server is shut down cleanly so valgrind reports.
#[test]
#[ignore = "run by scripts/memcheck under valgrind"]
fn memcheck_workload() {
    let mut s = Server::start();
    let mut c = s.client();
    // Windows and periods of an hour, so that these keys are still there
    // for the DUMPs below however slow valgrind makes the commands in
    // between (the buckets refilling per second lived about 2 s, the
    // 1-minute windows a minute from their first call).
    let lines = [
        "RL.FIXED f 10 1h",
        "RL.SLIDING s 10 1h",
        "RL.LOG l 100 1h",
        "RL.TOKEN t 10 5 1h",
        "RL.LEAKY y 10 5 1h",
        "RL.GCRA g 10 5 1h",
    ];
    for round in 0..30 {
        for l in lines {
            let cost = round % 4;
            assert!(!c.cmd(&format!("{l} COST {cost}")).is_error());
        }
        assert!(!c
            .cmd("RL.ALL 3 a b l2 FIXED 5 1h GCRA 3 1 1h LOG 20 1h")
            .is_error());
    }
    // Refunds, penalty blocks (started, hit, lifted), leases (taken,
    // renewed, released, the last one deleting its key).
    for l in [
        "RL.REFUND l 5",
        "RL.REFUND t 2",
        "RL.REFUND nokey 1",
        "RL.FIXED pb 1 1h AT 4000000000000",
        "RL.FIXED pb 1 1h PENALTY 1h AT 4000000000000",
        "RL.FIXED pb 1 1h PENALTY 1h AT 4000000001000",
        "RL.FIXED pb 1 1h AT 4000007300000",
        "RL.FIXED pb 1 1h PENALTY 1h AT 4000007300000",
        "RL.LOG pl 2 1h COST 2",
        "RL.LOG pl 2 1h PENALTY 1h",
        "RL.ACQUIRE ls 3 1h ID a",
        "RL.ACQUIRE ls 3 1h",
        "RL.ACQUIRE ls 3 1h ID a",
        "RL.RENEW ls a 2h",
        "RL.RELEASE ls a",
        "RL.ACQUIRE gone 1 1h ID x",
        "RL.RELEASE gone x",
    ] {
        assert!(!c.cmd(l).is_error(), "{l}");
    }
    // Lowered limits (states that shrink), peeks, info.
    for l in [
        "RL.LOG l 3 1h",
        "RL.SLIDING s 2 1h",
        "RL.TOKEN t 2 1 1h",
        "RL.FIXED f 1 1s COST 0",
    ] {
        assert!(!c.cmd(l).is_error(), "{l}");
    }
    for k in ["f", "s", "l", "t", "y", "g", "nokey", "pb", "pl", "ls"] {
        assert!(!c.cmd(&format!("RL.INFO {k}")).is_error());
    }
    assert!(!c.cmd("INFO ratelimit").is_error());
    // Persistence: DUMP/RESTORE, reload, AOF rewrite, replication ops.
    for k in ["f", "s", "l", "t", "y", "g", "pb", "pl", "ls"] {
        let dump = c.cmd(&format!("DUMP {k}")).bytes();
        let r = c.call(&args!["RESTORE", format!("{k}:copy"), 0i64, dump]);
        assert_eq!(r.text(), "OK");
        assert_eq!(c.cmd(&format!("COPY {k} {k}:copy2")).int(), 1);
        assert!(c.cmd(&format!("MEMORY USAGE {k}")).int() > 0);
    }
    assert_eq!(c.cmd("DEBUG RELOAD").text(), "OK");
    // Turning the AOF on starts a rewrite; then one more on request. Each
    // is waited for (valgrind makes everything slow: a generous bound).
    let rewrite_done = |c: &mut Client| {
        common::wait_until("the AOF rewrite ends", Duration::from_secs(300), || {
            common::aof_rewrite_idle(c)
        });
        let status = c.cmd("INFO persistence").text();
        assert!(
            status.contains("aof_last_bgrewrite_status:ok"),
            "the AOF rewrite failed: {status}"
        );
    };
    assert_eq!(c.cmd("CONFIG SET appendonly yes").text(), "OK");
    rewrite_done(&mut c);
    let reply = c.cmd("BGREWRITEAOF");
    assert!(reply.text().contains("rewriting"), "{reply:?}");
    rewrite_done(&mut c);
    // Replays (RL.APPLY, RL.APPLYALL, RL.SETSTATE) through the AOF.
    assert_eq!(c.cmd("RL.FIXED ap 5 1h").ints()[0], 1);
    assert!(!c
        .cmd("RL.ALL 2 {a}:1 {a}:2 FIXED 5 1h TOKEN 5 1 1h")
        .is_error());
    assert_eq!(c.cmd("DEBUG LOADAOF").text(), "OK");
    assert!(matches!(
        c.cmd("RL.INFO ap"),
        Value::Array(_) | Value::Map(_)
    ));
    assert_eq!(c.cmd("SET str x").text(), "OK");
    // fx must stay a FIXED limiter through the catalogue (its cases on fx
    // expect that error): a window of an hour, not a minute.
    assert_eq!(c.cmd("RL.FIXED fx 10 1h").ints()[0], 1);
    // Every malformed input.
    for (args, _) in catalogue() {
        assert!(c.call(&args).is_error());
    }
    // Short-lived keys that expire, from several connections at once.
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let port = s.port;
            std::thread::spawn(move || {
                let mut c = Client::connect(port).unwrap();
                for i in 0..300 {
                    let k = format!("e:{}", (t * 300 + i) % 200);
                    let r = c.cmd(&format!("RL.LOG {k} 5 200ms"));
                    assert!(!r.is_error());
                    let r = c.cmd(&format!("RL.TOKEN {k}:t 5 10 200ms COST 2"));
                    assert!(!r.is_error());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // They live at most 200 ms; wait until every one has been expired (by
    // the server's expiry cycle, or by SCAN meeting it past its time).
    common::wait_until(
        "the short-lived keys expire",
        Duration::from_secs(300),
        || scan_count(&mut c, "e:*") == 0,
    );
    // Eviction frees values too: 3000 logs (about 650 KB) into 200 KB of
    // room. Measured from a fresh connection once it is the only one: the
    // connection that sent the catalogue's 1 MB arguments can still hold a
    // 1 MB query buffer (Redis trims it in its cron), which would be room
    // for every key once trimmed. (A fixed 2 s sleep before used to hide
    // that.)
    drop(c);
    let mut c = s.client();
    common::wait_until(
        "only one connection is left",
        Duration::from_secs(60),
        || server_info(&mut c, "clients", "connected_clients") == 1,
    );
    assert_eq!(
        c.cmd("CONFIG SET maxmemory-policy allkeys-random").text(),
        "OK"
    );
    let used = server_info(&mut c, "memory", "used_memory");
    assert_eq!(
        c.cmd(&format!("CONFIG SET maxmemory {}", used + 200_000))
            .text(),
        "OK"
    );
    for i in 0..3000 {
        assert!(!c.cmd(&format!("RL.LOG ev:{i} 10 1h COST 10")).is_error());
    }
    assert!(server_info(&mut c, "stats", "evicted_keys") > 0);
    assert_eq!(c.cmd("CONFIG SET maxmemory 0").text(), "OK");
    assert_eq!(c.cmd("FLUSHALL SYNC").text(), "OK");
    assert_eq!(c.cmd("DBSIZE").int(), 0);
    drop(c);
    let status = s.shutdown_gracefully(Duration::from_secs(120));
    assert!(status.is_some(), "the server did not exit on SHUTDOWN");
}
