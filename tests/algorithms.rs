//! The algorithms against a real server: each one's figures, exact with `AT`.
//!
//! Fixed and sliding windows, the log, token and leaky buckets, GCRA (and
//! redis-cell's `CL.THROTTLE`) and calendar-aligned windows; parameters
//! that change, expiry that never grants extra, extreme parameters.
//!
//! Keys still expire on the server's clock (`AT` only sets the decision's
//! time), so a test that needs a key to outlive the next command either
//! gives it a life far longer than any test or sends the calls in one
//! transaction ([`rl_tx`]), inside which nothing expires.

mod common;

use std::time::Duration;

use common::{digest, rl, rl_info_field, time_ms, Client, Server, Value, T0};

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
    // Redis 7.2+ and Valkey answer TIME inside a transaction with the time
    // its EXEC began, which is the module's time there too; on Redis 7.0
    // the module reads the clock at its first call, after the first TIME:
    // take the later of that and a reading after EXEC as the upper bound.
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

fn pttl(c: &mut Client, key: &str) -> i64 {
    c.cmd(&format!("PTTL {key}")).int()
}

#[test]
fn a_tightened_limit_is_kept_by_the_key() {
    let s = Server::start();
    let mut c = s.client();
    // Issue 11's first case: 1 per second, then 1 per hour. At the
    // server's own time, given with `AT` so that the test can go past the
    // old second without waiting for it.
    let now = time_ms(&c.cmd("TIME"));
    assert_eq!(c.cmd(&format!("RL.FIXED fx 1 1s AT {now}")).ints()[0], 1);
    let d = c.cmd(&format!("RL.FIXED fx 1 1h AT {now}")).ints();
    assert_eq!(d[0], 0);
    assert!(d[3] > 3_590_000, "{d:?}");
    // The denial kept the hour-long window: the key lives that long.
    assert!(pttl(&mut c, "fx") > 3_590_000);
    assert_eq!(rl_info_field(&mut c, "fx", "window_us"), 3_600_000_000);
    // Past the old second, the call is still denied.
    let later = now + 1300;
    assert_eq!(c.cmd(&format!("RL.FIXED fx 1 1h AT {later}")).ints()[0], 0);

    // The second case: a token bucket slowed down to 1 per second.
    assert_eq!(c.cmd("RL.TOKEN tb 10 10 1s COST 10").ints()[0], 1);
    let d = c.cmd("RL.TOKEN tb 10 1 1s COST 5").ints();
    assert_eq!(d[0], 0);
    assert!(d[4] > 9_000, "{d:?}");
    assert!(pttl(&mut c, "tb") > 9_000);
    assert_eq!(rl_info_field(&mut c, "tb", "rate"), 1);

    // A peek with other parameters changes nothing.
    assert_eq!(c.cmd("RL.FIXED pk 5 1s").ints()[0], 1);
    let before = pttl(&mut c, "pk");
    c.cmd("RL.FIXED pk 5 1h COST 0");
    assert_eq!(rl_info_field(&mut c, "pk", "window_us"), 1_000_000);
    assert!(pttl(&mut c, "pk") <= before);
    // A denial under looser parameters keeps them but not a shorter life:
    // what was spent under the hour still counts if the hour comes back.
    assert_eq!(c.cmd("RL.FIXED loose 1 1h").ints()[0], 1);
    assert_eq!(c.cmd("RL.FIXED loose 1 1s COST 2").ints()[0], 0);
    assert_eq!(rl_info_field(&mut c, "loose", "window_us"), 1_000_000);
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
    let ahead = time_ms(&c.cmd("TIME")) + 600_000;
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

#[test]
fn huge_parameters_compute_without_overflow() {
    let s = Server::start();
    let mut c = s.client();
    let two40 = 1i64 << 40;
    let century_ms = 36_500 * 86_400_000i64;
    // A 100-year window of 2^40 units, spent at once.
    assert_eq!(
        c.cmd(&format!("RL.FIXED f {two40} 36500d COST {two40} AT {T0}"))
            .ints(),
        vec![1, two40, 0, 0, century_ms]
    );
    assert_eq!(
        c.cmd(&format!("RL.FIXED f {two40} 36500d AT {}", T0 + 1000))
            .ints(),
        vec![0, two40, 0, century_ms - 1000, century_ms - 1000]
    );
    let pttl = c.cmd("PTTL f").int();
    assert!(pttl > century_ms - 120_000_000_000, "PTTL {pttl}");

    // (command without COST/AT, cost, AT)
    let max = 1_000_000_000_000_000i64;
    let last = 253_402_300_799_999i64;
    let cases: Vec<(String, i64, i64)> = vec![
        (format!("RL.SLIDING s {two40} 36500d"), two40, T0),
        ("RL.LOG l 10000 36500d".into(), 10_000, T0),
        (format!("RL.TOKEN t {two40} 1 36500d"), two40, T0),
        (format!("RL.LEAKY y {two40} {two40} 36500d"), two40, T0),
        (format!("RL.GCRA g {} 1 36500d", two40 - 1), two40, T0),
        // The largest values accepted, at the first and last instants.
        (format!("RL.FIXED fm {max} 1157407d"), max, last),
        (format!("RL.SLIDING sm {max} 1157407d"), max, last),
        (format!("RL.TOKEN tm {max} 1 1157407d"), max, last),
        (format!("RL.LEAKY ym {max} {max} 1157407d"), max, 0),
        (format!("RL.GCRA gm {} 1 1157407d", max - 1), max, last),
        (
            format!("RL.ALL 2 am bm TOKEN {max} 1 1157407d FIXED {two40} 36500d"),
            two40,
            0,
        ),
    ];
    for (head, cost, at) in &cases {
        let line = format!("{head} COST {cost} AT {at}");
        let reply = c.cmd(&line);
        let v = match &reply {
            Value::Array(items) => items[..5].iter().map(Value::int).collect::<Vec<_>>(),
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(v[0], 1, "{line}: {v:?}");
        assert!(
            v[1] > 0 && v[2] >= 0 && v[3] >= 0 && v[4] > 0,
            "{line}: {v:?}"
        );
        // One more unit is denied with a wait, never a wrapped number.
        let line = format!("{head} COST 1 AT {at}");
        let again = c.cmd(&line);
        match &again {
            Value::Array(items) => {
                let v: Vec<i64> = items[..5].iter().map(Value::int).collect();
                assert!(v[3] > 0 && v[4] > 0, "{line}: {v:?}");
            }
            other => panic!("{line}: {other:?}"),
        }
    }
    // Everything survives a save and reload.
    let keys = c.cmd("KEYS *");
    let state = |c: &mut Client| -> Vec<(String, Value, i64)> {
        let mut v: Vec<_> = match &keys {
            Value::Array(k) => k.iter().map(|k| k.text()).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        }
        .into_iter()
        .map(|k| {
            let d = c.cmd(&format!("DEBUG DIGEST-VALUE {k}"));
            let t = c.cmd(&format!("PEXPIRETIME {k}")).int();
            (k, d, t)
        })
        .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let before = state(&mut c);
    assert_eq!(c.cmd("DEBUG RELOAD").text(), "OK");
    assert_eq!(state(&mut c), before);
}

#[test]
fn microsecond_windows_work_and_expire() {
    let s = Server::start();
    let mut c = s.client();
    for (key, line) in [
        ("f", "RL.FIXED f 1 1us"),
        ("s", "RL.SLIDING s 1 1us"),
        ("l", "RL.LOG l 1 1us"),
        ("t", "RL.TOKEN t 1 1 1us"),
        ("y", "RL.LEAKY y 1 1 1us"),
        ("g", "RL.GCRA g 0 1 1us"),
    ] {
        // The key lives 1 ms of wall-clock time: the calls go in one
        // transaction, within which nothing expires.
        assert_eq!(c.cmd("MULTI").text(), "OK");
        for at in [T0, T0, T0 + 1] {
            assert_eq!(c.cmd(&format!("{line} AT {at}")).text(), "QUEUED");
        }
        let replies = match c.cmd("EXEC") {
            Value::Array(r) => r.iter().map(Value::ints).collect::<Vec<_>>(),
            other => panic!("{line}: {other:?}"),
        };
        // Durations round up to whole ms in replies: 1 µs shows as 1 ms.
        assert_eq!(replies[0], vec![1, 1, 0, 0, 1], "{line}");
        assert_eq!(replies[1], vec![0, 1, 0, 1, 1], "{line}");
        assert_eq!(replies[2][0], 1, "{line}");
        let pttl = c.cmd(&format!("PTTL {key}")).int();
        assert!(pttl <= 2 && pttl != -1, "{line}: PTTL {pttl}");
    }
    // Every key expires within 2 ms (above); wait for that to be seen rather
    // than sleeping a fixed time with a few ms to spare.
    common::wait_until("the keys expire", Duration::from_secs(10), || {
        c.cmd("EXISTS f s l t y g").int() == 0
    });
}

/// 2028-02-29T12:00Z, a leap day in the future (so keys written `AT` it
/// live), and the instants around it, in Unix ms.
const LEAP_NOON: i64 = 1_835_438_400_000;

const MARCH_1: i64 = 1_835_481_600_000;

const APRIL_1: i64 = 1_838_160_000_000;

const FEB_1: i64 = 1_832_976_000_000;

const HOUR: i64 = 3_600_000;

const DAY: i64 = 24 * HOUR;

/// `RL.FIXED ... ALIGN [OFFSET]`: windows on the clock and the calendar,
/// with exact resets, in every command that takes parameters.
#[test]
fn aligned_windows_reset_on_the_calendar() {
    let s = Server::start();
    let mut c = s.client();
    let at = |ms: i64| format!("AT {ms}");
    // A monthly quota: from noon on 29 February to 1 March, 12 hours.
    let month = |c: &mut Client, cost: i64, ms: i64| {
        c.cmd(&format!("RL.FIXED q 3 1mo ALIGN COST {cost} {}", at(ms)))
            .ints()
    };
    assert_eq!(month(&mut c, 1, LEAP_NOON), [1, 3, 2, 0, 12 * HOUR]);
    assert_eq!(month(&mut c, 2, LEAP_NOON + HOUR), [1, 3, 0, 0, 11 * HOUR]);
    assert_eq!(
        month(&mut c, 1, MARCH_1 - 1),
        [0, 3, 0, 1, 1],
        "the last ms of February"
    );
    assert_eq!(rl_info_field(&mut c, "q", "window_months"), 1);
    assert_eq!(rl_info_field(&mut c, "q", "align"), 1);
    assert_eq!(rl_info_field(&mut c, "q", "offset_minutes"), 0);
    assert_eq!(rl_info_field(&mut c, "q", "window_start_us"), FEB_1 * 1000);
    // March opens at midnight and lasts 31 days, whoever came first.
    assert_eq!(month(&mut c, 1, MARCH_1), [1, 3, 2, 0, 31 * DAY]);
    assert_eq!(month(&mut c, 1, APRIL_1), [1, 3, 2, 0, 30 * DAY]);
    // The key lives exactly to the end of its window.
    let expires = c.cmd("PEXPIRETIME q").int();
    assert_eq!(expires, APRIL_1 + 30 * DAY);

    // A day at UTC-5 ends at 05:00Z; at +05:45, at 18:15Z.
    let day = |c: &mut Client, key: &str, offset: &str| {
        c.cmd(&format!(
            "RL.FIXED {key} 10 1d ALIGN OFFSET {offset} {}",
            at(LEAP_NOON)
        ))
        .ints()
    };
    assert_eq!(day(&mut c, "d1", "-05:00")[4], 17 * HOUR);
    assert_eq!(day(&mut c, "d2", "+05:45")[4], 6 * HOUR + 15 * 60_000);
    assert_eq!(rl_info_field(&mut c, "d1", "offset_minutes"), -300);
    assert_eq!(rl_info_field(&mut c, "d2", "window_us"), DAY * 1000);
    // The year 2028 at UTC+1 ends at 23:00Z on 31 December.
    let year = c
        .cmd(&format!(
            "RL.FIXED y 1 12mo ALIGN OFFSET +01:00 {}",
            at(LEAP_NOON)
        ))
        .ints();
    assert_eq!(year[4], 1_861_916_400_000 - LEAP_NOON);

    // A minute's token bucket and a monthly aligned quota in one call.
    let both = |c: &mut Client, ms: i64| {
        c.cmd(&format!(
            "RL.ALL 2 {{u}}:m {{u}}:mo TOKEN 5 5 1m FIXED 2 1mo ALIGN OFFSET -05:00 {}",
            at(ms)
        ))
    };
    let Value::Array(r) = both(&mut c, LEAP_NOON) else {
        panic!()
    };
    // At -05:00, March starts at 05:00Z on 1 March.
    assert_eq!(r[6].ints()[4], MARCH_1 + 5 * HOUR - LEAP_NOON);
    both(&mut c, LEAP_NOON);
    let Value::Array(r) = both(&mut c, LEAP_NOON) else {
        panic!()
    };
    assert_eq!(r[0].int(), 0, "the monthly quota is spent");
    assert_eq!(r[3].int(), MARCH_1 + 5 * HOUR - LEAP_NOON);
    // A peek and a policy with the same grid see the same window.
    let peek = c
        .cmd(&format!(
            "RL.PEEK {{u}}:mo FIXED 2 1mo ALIGN OFFSET -05:00 {}",
            at(LEAP_NOON)
        ))
        .ints();
    assert_eq!(peek[..3], [0, 2, 0]);
    assert_eq!(
        c.cmd("RL.POLICY SET paid FIXED 100000 1mo ALIGN OFFSET -05:00")
            .text(),
        "OK"
    );
    assert_eq!(
        c.cmd("RL.POLICY GET paid").texts(),
        ["FIXED", "100000", "1mo", "ALIGN", "OFFSET", "-05:00"]
    );
    assert_eq!(
        c.cmd("RL.POLICY SET utc FIXED 9 1d ALIGN OFFSET Z").text(),
        "OK"
    );
    assert_eq!(
        c.cmd("RL.POLICY GET utc").texts(),
        ["FIXED", "9", "1d", "ALIGN"]
    );
    let check = c
        .cmd(&format!("RL.CHECK paid acct:7 {}", at(LEAP_NOON)))
        .ints();
    assert_eq!(
        check,
        [1, 100_000, 99_999, 0, MARCH_1 + 5 * HOUR - LEAP_NOON]
    );

    // Changing the grid applies to the stored window: d1's day, read at
    // UTC, ends at midnight UTC.
    let d1 = c
        .cmd(&format!("RL.FIXED d1 10 1d ALIGN {}", at(LEAP_NOON)))
        .ints();
    assert_eq!(d1[..3], [1, 10, 8]);
    assert_eq!(d1[4], 12 * HOUR);

    // Without AT, the reset is the next midnight UTC, bracketed by the
    // server's clock before and after the call.
    let now_ms = |c: &mut Client| common::time_ms(&c.cmd("TIME"));
    let before = now_ms(&mut c);
    let r = c.cmd("RL.FIXED wall 5 1d ALIGN").ints();
    let after = now_ms(&mut c);
    let midnight = (before / DAY + 1) * DAY;
    if midnight == (after / DAY + 1) * DAY {
        assert!(
            (midnight - after..=midnight - before).contains(&r[4]),
            "{r:?}"
        );
    }
}

#[test]
fn aligned_window_errors_are_precise() {
    let s = Server::start();
    let mut c = s.client();
    for (line, want) in [
        (
            "RL.FIXED k 10 1mo",
            "ERR a window in months needs ALIGN: FIXED limit 1mo ALIGN",
        ),
        ("RL.FIXED k 10 1d ALIGN OFFSET", "ERR OFFSET needs a value"),
        (
            "RL.FIXED k 10 1d ALIGN OFFSET +24:00",
            "ERR OFFSET must be +hh:mm or -hh:mm (at most 23:59) or Z, got '+24:00'",
        ),
        (
            "RL.FIXED k 10 1d ALIGN OFFSET 0500",
            "ERR OFFSET must be +hh:mm or -hh:mm (at most 23:59) or Z, got '0500'",
        ),
        (
            "RL.FIXED k 10 1d OFFSET +01:00",
            "ERR OFFSET needs ALIGN before it: FIXED limit window ALIGN OFFSET +hh:mm",
        ),
        (
            "RL.FIXED k 10 1d COST 1 ALIGN",
            "ERR ALIGN [OFFSET +hh:mm] is only for FIXED, right after its window",
        ),
        (
            "RL.SLIDING k 10 1d ALIGN",
            "ERR ALIGN [OFFSET +hh:mm] is only for FIXED, right after its window",
        ),
        (
            "RL.LOG k 10 1mo",
            "ERR a window in months is only for FIXED with ALIGN, not LOG",
        ),
        (
            "RL.FIXED k 10 0mo ALIGN",
            "ERR window must be greater than 0",
        ),
        (
            "RL.FIXED k 10 10001d ALIGN",
            "ERR an aligned window is at most 10000 days (use mo for longer)",
        ),
        (
            "RL.FIXED k 10 1201mo ALIGN",
            "ERR window is too long (at most 1200mo)",
        ),
        (
            "RL.FIXED k 10 1month ALIGN",
            "ERR window has an unknown unit 'month' (use us, ms, s, m, h, d, or mo with ALIGN)",
        ),
        (
            "RL.ALL 1 k FIXED 10 1mo COST 1",
            "ERR limit 1 (FIXED): a window in months needs ALIGN: FIXED limit 1mo ALIGN",
        ),
        (
            "RL.POLICY SET p FIXED 10 1mo ALIGN OFFSET",
            "ERR OFFSET needs a value",
        ),
    ] {
        assert_eq!(c.cmd(line).err(), want, "{line}");
    }
    assert_eq!(c.cmd("EXISTS k").int(), 0);
}

/// Aligned windows reach a replica as effects and survive `DEBUG RELOAD`
/// and a restart from the AOF, digests and expiries equal.
#[test]
fn aligned_windows_replicate_and_persist() {
    let mut master = Server::start_with(&["--appendonly", "yes"]);
    let mut m = master.client();
    let replica = common::start_replica(&master, &[]);
    assert_eq!(
        m.cmd("RL.POLICY SET q FIXED 50 3mo ALIGN OFFSET +09:00")
            .text(),
        "OK"
    );
    for i in 0..40i64 {
        let ms = LEAP_NOON + i * 7 * HOUR;
        m.cmd(&format!("RL.FIXED a{} 3 1mo ALIGN AT {ms}", i % 4));
        m.cmd(&format!(
            "RL.ALL 2 {{b}}:1 {{b}}:2 FIXED 4 1d ALIGN OFFSET -03:30 TOKEN 9 1 1h AT {ms}"
        ));
        m.cmd(&format!("RL.CHECK q c{} AT {ms}", i % 3));
    }
    common::sync(&mut m, 1);
    let mut keys = common::keys(&mut m);
    keys.sort();
    assert_eq!(keys.len(), 9, "{keys:?}");
    let want = common::snapshot(&mut m, &keys);
    let mut r = replica.client();
    assert_eq!(common::snapshot(&mut r, &keys), want);
    assert_eq!(m.cmd("DEBUG RELOAD").text(), "OK");
    assert_eq!(common::snapshot(&mut m, &keys), want);
    drop(m);
    master.restart();
    let mut m = master.client();
    assert_eq!(common::snapshot(&mut m, &keys), want);
    assert_eq!(rl_info_field(&mut m, "c0", "window_months"), 3);
    assert_eq!(rl_info_field(&mut m, "c0", "offset_minutes"), 540);
}
