//! RL.ALL, RL.INFO, INFO ratelimit, deny events, module configuration and
//! the redis-cell compatible CL.THROTTLE, against real servers.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, Server, Value};

const T0: i64 = 1_700_000_000_000;

fn map(v: &Value) -> HashMap<String, Value> {
    match v {
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (k.text(), v.clone())).collect(),
        Value::Array(items) => items
            .chunks(2)
            .map(|kv| (kv[0].text(), kv[1].clone()))
            .collect(),
        other => panic!("expected a map, got {other:?}"),
    }
}

/// `RL.ALL` in RESP2: the combined five integers, then one array per key.
fn all(c: &mut Client, line: &str) -> (Vec<i64>, Vec<Vec<i64>>) {
    split_all(&c.cmd(line), line)
}

fn split_all(reply: &Value, line: &str) -> (Vec<i64>, Vec<Vec<i64>>) {
    match reply {
        Value::Array(items) => {
            let combined = items[..5].iter().map(Value::int).collect();
            let each = items[5..].iter().map(Value::ints).collect();
            (combined, each)
        }
        other => panic!("{line}: {other:?}"),
    }
}

fn info_field(c: &mut Client, field: &str) -> i64 {
    let text = c.cmd("INFO ratelimit").text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("ratelimit_{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn all_or_nothing_across_limits() {
    let s = Server::start();
    let mut c = s.client();
    let line = |cost: i64, at: i64| {
        format!("RL.ALL 2 {{u}}:s {{u}}:d TOKEN 10 10 1s FIXED 12 1d COST {cost} AT {at}")
    };
    // The bucket's key lives 400 ms (AT does not change that): the first
    // three calls go in one transaction, inside which nothing expires.
    let lines = [line(4, T0), line(7, T0), line(0, T0)];
    assert_eq!(c.cmd("MULTI"), Value::Simple("OK".into()));
    for l in &lines {
        assert_eq!(c.cmd(l), Value::Simple("QUEUED".into()), "{l}");
    }
    let Value::Array(replies) = c.cmd("EXEC") else {
        panic!("EXEC failed")
    };
    let (combined, each) = split_all(&replies[0], &lines[0]);
    assert_eq!(each[0], vec![1, 10, 6, 0, 400]);
    assert_eq!(each[1], vec![1, 12, 8, 0, 86_400_000]);
    // The tightest limit is the one with the least remaining.
    assert_eq!(combined, vec![1, 10, 6, 0, 400]);

    // The token bucket would allow 6 more, the daily cap only 8: a request
    // of 9 is denied by both, 7 by the bucket only; neither spends anything.
    let (combined, each) = split_all(&replies[1], &lines[1]);
    assert_eq!(combined, vec![0, 10, 6, 100, 400]);
    assert_eq!(each[0], vec![0, 10, 6, 100, 400]);
    assert_eq!(each[1], vec![1, 12, 8, 0, 86_400_000]);
    let (_, each) = split_all(&replies[2], &lines[2]);
    assert_eq!(each[0][2], 6, "a denied RL.ALL must not spend the bucket");
    assert_eq!(
        each[1][2], 8,
        "a denied RL.ALL must not spend the daily cap"
    );

    // Later the bucket has refilled but the daily cap is what denies; the
    // bucket, which would have allowed, reports what it holds, unspent.
    let (combined, each) = all(&mut c, &line(9, T0 + 1_000));
    assert_eq!(each[0], vec![1, 10, 10, 0, 0]);
    assert_eq!(each[1][0], 0);
    assert_eq!(combined[0], 0);
    assert_eq!(combined[3], 86_400_000 - 1_000, "wait for the daily window");
    // A cost above a limit can never pass: -1 wins over any wait.
    let (combined, _) = all(&mut c, &line(11, T0 + 1_000));
    assert_eq!(combined[3], -1);

    // Peeks create nothing.
    let (combined, _) = all(
        &mut c,
        &format!("RL.ALL 2 {{p}}:a {{p}}:b FIXED 5 1s GCRA 2 1 1s COST 0 AT {T0}"),
    );
    assert_eq!(combined[0], 1);
    assert_eq!(c.cmd("EXISTS {p}:a {p}:b").int(), 0);

    // RESP3: the very same arrays, so no client mapping can reorder them.
    let line = format!("RL.ALL 2 {{r}}:a {{r}}:b FIXED 5 1h LEAKY 3 1 1h COST 0 AT {T0}");
    let resp2 = c.cmd(&line);
    c.cmd("HELLO 3");
    assert_eq!(c.cmd(&line), resp2);
    let (combined, each) = all(&mut c, &line);
    assert_eq!(combined, vec![1, 3, 3, 0, 0]);
    assert_eq!(each[1], vec![1, 3, 3, 0, 0]);
}

#[test]
fn all_checks_every_key_before_touching_any() {
    let s = Server::start();
    let mut c = s.client();
    c.cmd("SET {k}:str hello");
    // Refilling per hour, so the key lives an hour and is still there for
    // every case and the final digest (at 1 per second it lived 1 s).
    c.cmd(&format!("RL.TOKEN {{k}}:tok 5 1 1h AT {T0}"));
    let before = c.cmd("DEBUG DIGEST");
    let cases = [
        (
            "RL.ALL 2 {k}:new {k}:str FIXED 5 1s FIXED 5 1s",
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (
            "RL.ALL 2 {k}:new {k}:tok FIXED 5 1s FIXED 5 1s",
            "ERR the key holds a TOKEN limiter, not FIXED: use another key, or DEL it to change algorithm",
        ),
        (
            "RL.ALL 2 {k}:a {k}:a FIXED 5 1s FIXED 5 1s",
            "ERR key 2 of RL.ALL repeats key 1 '{k}:a'",
        ),
        (
            "RL.ALL 2 {k}:a {k}:b FIXED 5 1s TOKEN 5 0 1s",
            "ERR limit 2 (TOKEN): rate must be greater than 0",
        ),
        (
            "RL.ALL 1 {k}:a FIXED 5 1s FIXED",
            "ERR unknown option 'FIXED' (expected COST, AT, PENALTY, SHADOW or COMBINED)",
        ),
        ("RL.ALL 1", "ERR wrong number of arguments for 'RL.ALL' command"),
        (
            "RL.ALL 3 {k}:a {k}:b",
            "ERR numkeys is greater than the number of keys given",
        ),
        (
            "RL.ALL 9 {k}:a {k}:b {k}:c",
            "ERR numkeys is greater than the number of keys given",
        ),
    ];
    for (line, want) in cases {
        assert_eq!(c.cmd(line), Value::Error(want.into()), "{line}");
    }
    assert_eq!(
        c.cmd("DEBUG DIGEST"),
        before,
        "a failed RL.ALL changed data"
    );
    assert_eq!(c.cmd("EXISTS {k}:new {k}:a {k}:b").int(), 0);
    assert_eq!(c.cmd("PING"), Value::Simple("PONG".into()));
}

#[test]
fn all_declares_its_keys() {
    let s = Server::start();
    let mut c = s.client();
    let keys = c.cmd("COMMAND GETKEYS RL.ALL 3 a b c FIXED 1 1 TOKEN 1 1 1 GCRA 1 1 1 COST 2");
    assert_eq!(
        keys,
        Value::Array(vec![
            Value::Bulk(b"a".to_vec()),
            Value::Bulk(b"b".to_vec()),
            Value::Bulk(b"c".to_vec()),
        ])
    );
    fn flat(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| flat(i, out)),
            Value::Bulk(_) | Value::Simple(_) => out.push(v.text()),
            other => out.push(format!("{other:?}")),
        }
    }
    let mut words = Vec::new();
    flat(&c.cmd("COMMAND INFO RL.ALL RL.INFO"), &mut words);
    let text = words.join(" ");
    assert!(text.contains("movablekeys"), "{text}");
    assert!(text.contains("keynum"), "{text}");
    assert!(
        text.contains("readonly"),
        "RL.INFO must be read-only: {text}"
    );
}

#[test]
fn all_under_racing_connections_never_overspends() {
    let s = Server::start();
    let port = s.port;
    // Two limits on the same caller: 150 per hour and 100 per hour, costs
    // 1 to 3. Whatever the interleaving, the allowed costs must add up to at
    // most 100, and both keys must have been spent by exactly that sum.
    let threads: Vec<_> = (0..50)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Client::connect(port).unwrap();
                let mut spent = 0i64;
                for i in 0..40 {
                    let cost = 1 + (t + i) % 3;
                    let (combined, _) = all(
                        &mut c,
                        &format!(
                            "RL.ALL 2 {{race}}:a {{race}}:b FIXED 150 1h SLIDING 100 1h COST {cost}"
                        ),
                    );
                    if combined[0] == 1 {
                        spent += cost;
                    }
                }
                spent
            })
        })
        .collect();
    let spent: i64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(spent <= 100, "overspent: {spent}");
    assert!(
        spent >= 98,
        "a limit of 100 with costs of at most 3: {spent}"
    );
    let mut c = s.client();
    let a = map(&c.cmd("RL.INFO {race}:a"));
    let b = map(&c.cmd("RL.INFO {race}:b"));
    assert_eq!(a["count"].int(), spent);
    assert_eq!(b["current"].int(), spent);
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
    assert_eq!(info_field(&mut c, "fixed_calls"), 5);
    assert_eq!(info_field(&mut c, "fixed_allowed"), 3);
    assert_eq!(info_field(&mut c, "fixed_denied"), 2);
    assert_eq!(info_field(&mut c, "token_calls"), 1);
    assert_eq!(info_field(&mut c, "token_allowed"), 1);
    assert_eq!(info_field(&mut c, "gcra_calls"), 2);
    assert_eq!(info_field(&mut c, "gcra_denied"), 1);
    assert_eq!(info_field(&mut c, "log_allowed"), 2);
    assert_eq!(info_field(&mut c, "all_calls"), 2);
    assert_eq!(info_field(&mut c, "all_allowed"), 1);
    assert_eq!(info_field(&mut c, "all_denied"), 1);
    assert_eq!(info_field(&mut c, "sliding_calls"), 0);
    assert_eq!(info_field(&mut c, "keys"), 3);
    c.cmd("COPY f f2");
    assert_eq!(info_field(&mut c, "keys"), 4);
    c.cmd("DEL f f2 {a}:1");
    assert_eq!(info_field(&mut c, "keys"), 1);
    // SYNC: Valkey flushes in the background by default.
    c.cmd("FLUSHALL SYNC");
    assert_eq!(info_field(&mut c, "keys"), 0);
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

fn free_port() -> u16 {
    loop {
        let p = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if p != 6379 {
            return p;
        }
    }
}

/// Starts redis-server with `module_args` on the loadmodule line and expects
/// it to refuse: returns what it logged.
fn refused(module_args: &[&str], config_lines: &str) -> String {
    let dir =
        std::env::temp_dir().join(format!("rl-refuse-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("redis.conf");
    let module = common::module_path();
    std::fs::write(
        &conf,
        format!(
            "port {}\nbind 127.0.0.1\nsave \"\"\nloadmodule {} {}\n{config_lines}\n",
            free_port(),
            module.display(),
            module_args.join(" ")
        ),
    )
    .unwrap();
    let mut child = Command::new(common::redis_server_binary())
        .arg(&conf)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A refusal exits within milliseconds; the deadline only stops a server
    // that wrongly accepted, so it can be generous for a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("redis-server accepted {module_args:?} {config_lines:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut log = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        log.push_str(&line.unwrap());
        log.push('\n');
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!status.success());
    log
}

#[test]
fn configuration_good_and_bad() {
    let s = Server::start_with(&["log-max", "20", "cell-compat", "no"]);
    let mut c = s.client();
    assert_eq!(
        c.cmd("RL.LOG l 21 1s"),
        Value::Error(
            "ERR limit is too large for RL.LOG (at most 20, see ratelimit.log-max)".into()
        )
    );
    assert_eq!(c.cmd("RL.LOG l 20 1s").ints()[0], 1);
    assert_eq!(
        c.cmd("CONFIG GET ratelimit.log-max"),
        Value::Array(vec![
            Value::Bulk(b"ratelimit.log-max".to_vec()),
            Value::Bulk(b"20".to_vec())
        ])
    );
    assert_eq!(
        c.cmd("CONFIG SET ratelimit.log-max 50"),
        Value::Simple("OK".into())
    );
    assert_eq!(c.cmd("RL.LOG l2 50 1s").ints()[0], 1);
    assert!(c.cmd("CONFIG SET ratelimit.log-max 0").is_error());
    assert!(c.cmd("CONFIG SET ratelimit.log-max 1000001").is_error());
    assert!(c.cmd("CONFIG SET ratelimit.cell-compat yes").is_error());
    assert!(c
        .cmd("CL.THROTTLE k 1 1 1")
        .err()
        .contains("unknown command"));
    drop(s);

    let cases: [(&[&str], &str, &str); 7] = [
        (
            &["log-max", "0"],
            "",
            "not loading: log-max must be greater than 0",
        ),
        (
            &["log-max", "ten"],
            "",
            "not loading: log-max must be a positive integer, got 'ten'",
        ),
        (
            &["log-max", "2000000"],
            "",
            "not loading: log-max is too large (at most 1000000)",
        ),
        (
            &["cell-compat", "maybe"],
            "",
            "not loading: cell-compat must be yes or no, got 'maybe'",
        ),
        (
            &["speed", "9"],
            "",
            "not loading: unknown module argument 'speed'",
        ),
        (
            &["log-max"],
            "",
            "not loading: module arguments come in 'name value' pairs",
        ),
        (&[], "ratelimit.log-max 0", "ratelimit.log-max"),
    ];
    for (args, conf, want) in cases {
        let log = refused(args, conf);
        assert!(
            log.contains(want),
            "{args:?} {conf:?}: expected '{want}' in\n{log}"
        );
    }
}

#[test]
fn cell_compat_answers_like_redis_cell() {
    let s = Server::start_with(&["cell-compat", "yes"]);
    let mut c = s.client();
    // redis-cell's own documented example: 15 burst, 30 per 60 s.
    assert_eq!(
        c.cmd("CL.THROTTLE user123 15 30 60").ints(),
        vec![0, 16, 15, -1, 2]
    );
    // The reference GCRA table (limit 5, 1 per second) at one instant: a
    // transaction gives every call the same time.
    c.cmd("MULTI");
    let calls = [6, 1, 1, 1, 1, 1, 1, 0];
    for q in calls {
        c.cmd(&format!("CL.THROTTLE ref 4 1 1 {q}"));
    }
    // The same key answers RL.GCRA too: it is one GCRA limiter. Asked in
    // the same transaction, so at the same instant (a second later the
    // bucket would have a unit back, and the key lives 5 s).
    c.cmd("RL.GCRA ref 4 1 1s COST 0");
    c.cmd("TYPE ref");
    let Value::Array(mut replies) = c.cmd("EXEC") else {
        panic!()
    };
    assert_eq!(replies.pop().unwrap(), Value::Simple("ratelimit".into()));
    let peek = replies.pop().unwrap();
    assert_eq!(peek.ints()[2], 0);
    let got: Vec<Vec<i64>> = replies.iter().map(Value::ints).collect();
    assert_eq!(
        got,
        vec![
            vec![1, 5, 5, -1, 0], // more than the limit: never, nothing spent
            vec![0, 5, 4, -1, 1],
            vec![0, 5, 3, -1, 2],
            vec![0, 5, 2, -1, 3],
            vec![0, 5, 1, -1, 4],
            vec![0, 5, 0, -1, 5],
            vec![1, 5, 0, 1, 5],  // burst exhausted: retry in 1 s
            vec![0, 5, 0, -1, 5], // quantity 0 peeks
        ]
    );
    for (line, want) in [
        (
            "CL.THROTTLE k 1 1",
            "ERR wrong number of arguments for 'CL.THROTTLE' command",
        ),
        ("CL.THROTTLE k -1 1 1", "ERR max_burst must not be negative"),
        ("CL.THROTTLE k 1 0 1", "ERR count must be greater than 0"),
        (
            "CL.THROTTLE k 1 1 1m",
            "ERR period must be a positive integer, got '1m'",
        ),
        (
            "CL.THROTTLE k 1 1 1 -1",
            "ERR quantity must not be negative",
        ),
    ] {
        assert_eq!(c.cmd(line), Value::Error(want.into()), "{line}");
    }
    let text = c.cmd("INFO ratelimit").text();
    assert!(text.contains("ratelimit_cell_compat:1"), "{text}");
}
