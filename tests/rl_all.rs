//! `RL.ALL`: several limits in one atomic call.
//!
//! All or nothing, every key checked before any is touched, one slot,
//! never overspent by racing connections, replicated as one op.

mod common;

use common::{
    commandstat, keys, map, rl_info_field, snapshot, start_replica, sync, Client, Server, Value, T0,
};

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
fn rl_all_replicates_as_one_op() {
    let master = Server::start();
    let replica = start_replica(&master, &[]);
    let mut m = master.client();
    let mut r = replica.client();
    let line = "RL.ALL 4 {u}:a {u}:b {u}:c {u}:d TOKEN 5 5 1s FIXED 8 1d LOG 6 1h GCRA 3 1 1s";
    let mut allowed = 0;
    for _ in 0..6 {
        allowed += common::allowed(&m.cmd(line));
    }
    assert_eq!(allowed, 4, "GCRA 3 allows 4 at once");
    // A denied call that changes a limit's parameters keeps them, as one op.
    let tightened = "RL.ALL 4 {u}:a {u}:b {u}:c {u}:d TOKEN 5 5 1s FIXED 4 1d LOG 6 1h GCRA 3 1 1s";
    assert_eq!(common::allowed(&m.cmd(tightened)), 0);
    sync(&mut m, 1);
    assert_eq!(commandstat(&mut r, "rl.applyall"), 5);
    assert_eq!(commandstat(&mut r, "rl.apply"), 0);
    assert_eq!(commandstat(&mut r, "multi"), 0);
    assert_eq!(commandstat(&mut r, "exec"), 0);
    let keys = keys(&mut m);
    assert_eq!(keys.len(), 4);
    assert_eq!(snapshot(&mut m, &keys), snapshot(&mut r, &keys));
    assert_eq!(rl_info_field(&mut r, "{u}:b", "limit"), 4);
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
