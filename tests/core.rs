//! The core's second pass against real servers: expiry that never grants
//! extra (tightened limits, limiters ahead of the clock), `RL.ALL` replicated
//! as one op, compact values, capped long resets.

mod common;

use std::time::Duration;

use common::{keys, snapshot, start_replica, sync, Client, Server, Value};

fn pttl(c: &mut Client, key: &str) -> i64 {
    c.cmd(&format!("PTTL {key}")).int()
}

fn info(c: &mut Client, key: &str, field: &str) -> i64 {
    let Value::Array(items) = c.cmd(&format!("RL.INFO {key}")) else {
        panic!("RL.INFO {key} is not a flat map");
    };
    items
        .chunks(2)
        .find(|kv| kv[0].text() == field)
        .unwrap_or_else(|| panic!("no {field} in RL.INFO {key}"))[1]
        .int()
}

fn now_ms(c: &mut Client) -> i64 {
    let Value::Array(t) = c.cmd("TIME") else {
        panic!("TIME")
    };
    t[0].text().parse::<i64>().unwrap() * 1000 + t[1].text().parse::<i64>().unwrap() / 1000
}

/// `allowed` of a reply whose first element is it (`RL.ALL` nests arrays).
fn allowed(v: Value) -> i64 {
    match v {
        Value::Array(items) => items[0].int(),
        other => panic!("{other:?}"),
    }
}

fn commandstat(c: &mut Client, name: &str) -> i64 {
    c.cmd("INFO commandstats")
        .text()
        .lines()
        // Module commands are listed as registered (upper case).
        .map(str::to_lowercase)
        .find_map(|l| {
            l.strip_prefix(&format!("cmdstat_{name}:calls="))
                .map(str::to_string)
        })
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

#[test]
fn a_tightened_limit_is_kept_by_the_key() {
    let s = Server::start();
    let mut c = s.client();
    // Issue 11's first case: 1 per second, then 1 per hour.
    assert_eq!(c.cmd("RL.FIXED fx 1 1s").ints()[0], 1);
    let d = c.cmd("RL.FIXED fx 1 1h").ints();
    assert_eq!(d[0], 0);
    assert!(d[3] > 3_590_000, "{d:?}");
    // The denial kept the hour-long window: the key lives that long.
    assert!(pttl(&mut c, "fx") > 3_590_000);
    assert_eq!(info(&mut c, "fx", "window_us"), 3_600_000_000);
    // Past the old second (by 300 ms, well above any scheduling jitter),
    // the call is still denied.
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(c.cmd("RL.FIXED fx 1 1h").ints()[0], 0);

    // The second case: a token bucket slowed down to 1 per second.
    assert_eq!(c.cmd("RL.TOKEN tb 10 10 1s COST 10").ints()[0], 1);
    let d = c.cmd("RL.TOKEN tb 10 1 1s COST 5").ints();
    assert_eq!(d[0], 0);
    assert!(d[4] > 9_000, "{d:?}");
    assert!(pttl(&mut c, "tb") > 9_000);
    assert_eq!(info(&mut c, "tb", "rate"), 1);

    // A peek with other parameters changes nothing.
    assert_eq!(c.cmd("RL.FIXED pk 5 1s").ints()[0], 1);
    let before = pttl(&mut c, "pk");
    c.cmd("RL.FIXED pk 5 1h COST 0");
    assert_eq!(info(&mut c, "pk", "window_us"), 1_000_000);
    assert!(pttl(&mut c, "pk") <= before);
    // A denial under looser parameters keeps them but not a shorter life:
    // what was spent under the hour still counts if the hour comes back.
    assert_eq!(c.cmd("RL.FIXED loose 1 1h").ints()[0], 1);
    assert_eq!(c.cmd("RL.FIXED loose 1 1s COST 2").ints()[0], 0);
    assert_eq!(info(&mut c, "loose", "window_us"), 1_000_000);
    assert!(pttl(&mut c, "loose") > 3_590_000);
    assert_eq!(c.cmd("RL.FIXED loose 1 1h").ints()[0], 0);
    // A denial under the same parameters does not move the expiry either.
    assert_eq!(c.cmd("RL.FIXED same 1 1h").ints()[0], 1);
    let before = pttl(&mut c, "same");
    assert_eq!(c.cmd("RL.FIXED same 1 1h").ints()[0], 0);
    assert!(pttl(&mut c, "same") <= before);
}

#[test]
fn a_limiter_ahead_of_the_clock_keeps_its_key_that_much_longer() {
    let s = Server::start();
    let mut c = s.client();
    let ahead = now_ms(&mut c) + 600_000;
    assert_eq!(c.cmd(&format!("RL.FIXED af 1 1s AT {ahead}")).ints()[0], 1);
    // The window ends 10 minutes and 1 s from now: so does the key.
    assert!(pttl(&mut c, "af") > 600_000, "{}", pttl(&mut c, "af"));
    assert_eq!(c.cmd("RL.FIXED af 1 1s").ints()[0], 0);
    // A time in the past counts from the clock, as before.
    assert_eq!(c.cmd("RL.FIXED past 1 10s AT 1700000000000").ints()[0], 1);
    let ttl = pttl(&mut c, "past");
    assert!((9_000..=10_000).contains(&ttl), "{ttl}");
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
        allowed += self::allowed(m.cmd(line));
    }
    assert_eq!(allowed, 4, "GCRA 3 allows 4 at once");
    // A denied call that changes a limit's parameters keeps them, as one op.
    let tightened = "RL.ALL 4 {u}:a {u}:b {u}:c {u}:d TOKEN 5 5 1s FIXED 4 1d LOG 6 1h GCRA 3 1 1s";
    assert_eq!(self::allowed(m.cmd(tightened)), 0);
    sync(&mut m, 1);
    assert_eq!(commandstat(&mut r, "rl.applyall"), 5);
    assert_eq!(commandstat(&mut r, "rl.apply"), 0);
    assert_eq!(commandstat(&mut r, "multi"), 0);
    assert_eq!(commandstat(&mut r, "exec"), 0);
    let keys = keys(&mut m);
    assert_eq!(keys.len(), 4);
    assert_eq!(snapshot(&mut m, &keys), snapshot(&mut r, &keys));
    assert_eq!(info(&mut r, "{u}:b", "limit"), 4);
}

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
fn long_resets_are_capped_not_saturated() {
    let s = Server::start();
    let mut c = s.client();
    // 10^15 units refilled one per 10^8 s: 10^23 s to drain.
    let d = c
        .cmd("RL.TOKEN huge 1000000000000000 1 100000000s COST 1000000000000000")
        .ints();
    assert_eq!(d[0], 1);
    assert_eq!(d[4], 200_000_000_000_000, "capped at 2 x 10^17 µs");
    let d = c.cmd("RL.TOKEN huge 1000000000000000 1 100000000s").ints();
    // One unit back takes 10^8 s, less the moments since the first call.
    assert_eq!(d[0], 0);
    assert!((99_999_000_000..=100_000_000_000).contains(&d[3]), "{d:?}");
}

#[test]
fn lowering_then_raising_a_limit_grants_nothing_spent() {
    let s = Server::start();
    let mut c = s.client();
    for (key, full, lowered) in [
        ("f", "RL.FIXED f 5 1h", "RL.FIXED f 2 1h"),
        ("s", "RL.SLIDING s 5 1h", "RL.SLIDING s 2 1h"),
        ("l", "RL.LOG l 5 1h", "RL.LOG l 2 1h"),
        ("t", "RL.TOKEN t 5 1 1h", "RL.TOKEN t 2 1 1h"),
        ("g", "RL.GCRA g 4 1 1h", "RL.GCRA g 1 1 1h"),
    ] {
        assert_eq!(c.cmd(&format!("{full} COST 5")).ints()[0], 1, "{key}");
        // Denied under the lower limit, which the key now keeps...
        assert_eq!(c.cmd(lowered).ints()[0], 0, "{key}");
        // ...without forgetting what was spent under the higher one.
        let d = c.cmd(full).ints();
        assert_eq!((d[0], d[2]), (0, 0), "{key}: {d:?}");
    }
}
