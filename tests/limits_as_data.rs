//! Limits as data, against a real server: shadow mode (`SHADOW`).

mod common;

use common::{Client, Server, Value};

/// A time ahead of the wall clock (2096), so `AT` calls decide there.
const T1: i64 = 4_000_000_000_000;

use common::rl_info_field as info_field;

#[test]
fn shadow_mode_applies_the_real_decision_and_answers_allowed() {
    let s = Server::start_with(&["--notify-keyspace-events", "Kd"]);
    let mut c = s.client();
    let mut sub = s.client();
    assert!(matches!(
        sub.cmd("PSUBSCRIBE __keyspace@0__:*"),
        Value::Array(_)
    ));
    let at = format!("AT {T1}");
    let fixed =
        |c: &mut Client, extra: &str| c.cmd(&format!("RL.FIXED sh 2 1m {extra} {at}")).ints();
    assert_eq!(fixed(&mut c, "SHADOW"), vec![1, 2, 1, 0, 60_000]);
    assert_eq!(fixed(&mut c, "SHADOW"), vec![1, 2, 0, 0, 60_000]);
    // Would be denied: answered allowed, with the real remaining; nothing
    // spent, and no block even with a PENALTY.
    let before = c.cmd("DUMP sh");
    assert_eq!(fixed(&mut c, "SHADOW PENALTY 1h"), vec![1, 2, 0, 0, 60_000]);
    assert_eq!(c.cmd("DUMP sh"), before);
    assert_eq!(info_field(&mut c, "sh", "count"), 2);
    assert_eq!(info_field(&mut c, "sh", "blocked_until_ms"), 0);
    // The same call enforced is denied.
    assert_eq!(fixed(&mut c, ""), vec![0, 2, 0, 60_000, 60_000]);
    let info = c.cmd("INFO ratelimit");
    assert_eq!(info.info_int("ratelimit_fixed_calls"), 4);
    assert_eq!(info.info_int("ratelimit_fixed_allowed"), 2);
    assert_eq!(info.info_int("ratelimit_fixed_shadow_denied"), 1);
    assert_eq!(info.info_int("ratelimit_fixed_denied"), 1);
    assert_eq!(info.info_int("ratelimit_penalties"), 0);
    // One rl.shadow event, then the enforced call's rl.denied.
    let mut events = Vec::new();
    while events.len() < 2 {
        let Value::Array(m) = sub.read() else {
            panic!()
        };
        events.push(m[3].text());
    }
    assert_eq!(events, ["rl.shadow", "rl.denied"]);

    // RL.ALL: the call is answered allowed, each denying limit too; none
    // is spent.
    let all = |c: &mut Client| {
        c.cmd(&format!(
            "RL.ALL 2 {{a}}:m {{a}}:d TOKEN 1 1 1m FIXED 100 1d SHADOW {at}"
        ))
    };
    all(&mut c);
    let Value::Array(r) = all(&mut c) else {
        panic!()
    };
    let head: Vec<i64> = r[..5].iter().map(Value::int).collect();
    assert_eq!(head, vec![1, 1, 0, 0, 60_000]);
    assert_eq!(r[5].ints(), vec![1, 1, 0, 0, 60_000]);
    assert_eq!(info_field(&mut c, "{a}:d", "count"), 1);
    let info = c.cmd("INFO ratelimit");
    assert_eq!(info.info_int("ratelimit_all_shadow_denied"), 1);
    assert_eq!(info.info_int("ratelimit_token_shadow_denied"), 1);
    // SHADOW is a flag: given twice is an error.
    assert_eq!(
        c.cmd("RL.FIXED k 1 1s SHADOW SHADOW").err(),
        "ERR SHADOW given more than once"
    );
}

#[test]
fn policies_are_named_limits_kept_in_the_server() {
    let s = Server::start();
    let mut c = s.client();
    assert_eq!(c.cmd("RL.POLICY SET free TOKEN 10 5 1s").text(), "OK");
    assert_eq!(
        c.cmd("RL.POLICY SET login FIXED 5 60s PENALTY 900s SHADOW")
            .text(),
        "OK"
    );
    assert_eq!(c.cmd("RL.POLICY SET paid:v2 GCRA 99 100 1m").text(), "OK");
    assert_eq!(
        c.cmd("RL.POLICY LIST").texts(),
        ["free", "login", "paid:v2"]
    );
    assert_eq!(
        c.cmd("RL.POLICY GET free").texts(),
        ["TOKEN", "10", "5", "1s"]
    );
    assert_eq!(
        c.cmd("RL.POLICY GET login").texts(),
        ["FIXED", "5", "1m", "PENALTY", "15m", "SHADOW"]
    );
    assert_eq!(c.cmd("RL.POLICY GET nope"), Value::Null);

    // RL.CHECK answers exactly what the algorithm's own command would.
    for i in 0..12 {
        let at = T1 + i * 100;
        let own = c.cmd(&format!("RL.TOKEN own 10 5 1s AT {at}"));
        let via = c.cmd(&format!("RL.CHECK free via AT {at}"));
        assert_eq!(via, own, "call {i}");
    }
    assert_eq!(
        c.cmd("DEBUG DIGEST-VALUE own"),
        c.cmd("DEBUG DIGEST-VALUE via")
    );
    let own = c.cmd(&format!("RL.GCRA g1 99 100 1m COST 7 AT {T1}"));
    assert_eq!(c.cmd(&format!("RL.CHECK paid:v2 g2 COST 7 AT {T1}")), own);

    // Changing a policy applies to existing keys on their next call.
    assert_eq!(c.cmd("RL.POLICY SET free TOKEN 100 5 1s").text(), "OK");
    let d = c.cmd(&format!("RL.CHECK free via AT {}", T1 + 1100)).ints();
    assert_eq!(&d[..2], &[1, 100]);
    assert_eq!(info_field(&mut c, "via", "capacity"), 100);

    // A policy's PENALTY and SHADOW apply: denials answered allowed.
    for _ in 0..6 {
        assert_eq!(c.cmd(&format!("RL.CHECK login ip:1 AT {T1}")).ints()[0], 1);
    }
    assert_eq!(info_field(&mut c, "ip:1", "count"), 5);
    assert_eq!(info_field(&mut c, "ip:1", "blocked_until_ms"), 0);

    // RL.ALL takes POLICY name wherever it takes ALGO params.
    let r = c.cmd(&format!(
        "RL.ALL 2 {{u}}:s {{u}}:d POLICY free FIXED 1000 1d AT {T1}"
    ));
    let Value::Array(items) = r else { panic!() };
    assert_eq!(items[5].ints()[..2], [1, 100]);
    assert_eq!(
        c.cmd("RL.ALL 1 k POLICY ghost").err(),
        "ERR no such policy 'ghost'"
    );

    // Per-policy counters.
    let info = c.cmd("INFO ratelimit").text();
    assert!(info.contains("ratelimit_policies:3"), "{info}");
    assert!(
        info.contains("name=login,calls=6,allowed=5,denied=0,shadow_denied=1"),
        "{info}"
    );
    assert!(
        info.contains("name=free,calls=14,allowed=14,denied=0,shadow_denied=0"),
        "{info}"
    );

    assert_eq!(c.cmd("RL.POLICY DEL paid:v2").int(), 1);
    assert_eq!(c.cmd("RL.POLICY DEL paid:v2").int(), 0);
    assert_eq!(
        c.cmd("RL.CHECK paid:v2 k").err(),
        "ERR no such policy 'paid:v2'"
    );
    assert_eq!(c.cmd("EXISTS k").int(), 0);
}

#[test]
fn policy_errors_are_precise() {
    let s = Server::start();
    let mut c = s.client();
    for (line, want) in [
        (
            "RL.POLICY",
            "ERR wrong number of arguments for 'RL.POLICY' command",
        ),
        (
            "RL.POLICY FROB",
            "ERR unknown subcommand 'FROB'. Try RL.POLICY HELP.",
        ),
        (
            "RL.POLICY SET",
            "ERR wrong number of arguments for 'RL.POLICY|SET' command",
        ),
        (
            "RL.POLICY SET a/b TOKEN 1 1 1s",
            "ERR a policy name is 1 to 64 of A-Z a-z 0-9 _ . : -, got 'a/b'",
        ),
        (
            "RL.POLICY SET p",
            "ERR RL.POLICY SET needs an algorithm and its parameters",
        ),
        (
            "RL.POLICY SET p BUCKET 1 1",
            "ERR the algorithm must be FIXED, SLIDING, LOG, TOKEN, LEAKY or GCRA, got 'BUCKET'",
        ),
        (
            "RL.POLICY SET p TOKEN 1 1",
            "ERR TOKEN needs capacity, rate, period",
        ),
        (
            "RL.POLICY SET p TOKEN 0 1 1s",
            "ERR capacity must be greater than 0",
        ),
        (
            "RL.POLICY SET p LOG 10001 1s",
            "ERR limit is too large for RL.LOG (at most 10000, see ratelimit.log-max)",
        ),
        (
            "RL.POLICY SET p FIXED 1 1s COST 2",
            "ERR unknown option 'COST' (expected PENALTY or SHADOW)",
        ),
        (
            "RL.POLICY SET p POLICY q",
            "ERR a policy can't be defined by another policy",
        ),
        (
            "RL.POLICY GET",
            "ERR wrong number of arguments for 'RL.POLICY|GET' command",
        ),
        (
            "RL.POLICY DEL a b",
            "ERR wrong number of arguments for 'RL.POLICY|DEL' command",
        ),
        (
            "RL.POLICY LIST x",
            "ERR wrong number of arguments for 'RL.POLICY|LIST' command",
        ),
        (
            "RL.CHECK p",
            "ERR wrong number of arguments for 'RL.CHECK' command",
        ),
        ("RL.CHECK nope k", "ERR no such policy 'nope'"),
        (
            "RL.CHECK a{b} k",
            "ERR a policy name is 1 to 64 of A-Z a-z 0-9 _ . : -, got 'a{b}'",
        ),
        ("RL.PEEK k POLICY nope", "ERR no such policy 'nope'"),
    ] {
        assert_eq!(c.cmd(line).err(), want, "{line}");
    }
    // A name that can't be shown as it is still gets an error saying why
    // it is not a name, never one about numbers.
    let head = "ERR a policy name is 1 to 64 of A-Z a-z 0-9 _ . : -, got";
    for (name, got) in [
        (&b"bad name"[..], " a name with a space"),
        (b"new\nline", " a name with the byte 0x0a"),
        (&[b'p'; 65], " a name of 65 bytes"),
    ] {
        for sub in [&b"SET"[..], b"GET", b"DEL"] {
            let mut args = vec![b"RL.POLICY".to_vec(), sub.to_vec(), name.to_vec()];
            if sub == b"SET" {
                args.extend(["TOKEN", "10", "5", "1s"].map(|a| a.as_bytes().to_vec()));
            }
            assert_eq!(
                c.call(&args).err(),
                format!("{head}{got}"),
                "{sub:?} {name:?}"
            );
        }
        let check = [b"RL.CHECK".to_vec(), name.to_vec(), b"k".to_vec()];
        assert_eq!(c.call(&check).err(), format!("{head}{got}"), "{name:?}");
    }
    assert_eq!(c.cmd("RL.POLICY SET p FIXED 1 1s").text(), "OK");
    assert_eq!(
        c.cmd("RL.CHECK p k PENALTY 1s").err(),
        "ERR unknown option 'PENALTY' (expected COST or AT)"
    );
    // A log policy set under a higher log-max is refused once the ceiling
    // is lowered, wherever it is used: a log's memory stays bounded.
    assert_eq!(c.cmd("RL.POLICY SET big LOG 5000 1m").text(), "OK");
    assert_eq!(c.cmd("RL.CHECK big k1").ints()[..3], [1, 5000, 4999]);
    assert_eq!(c.cmd("CONFIG SET ratelimit.log-max 100").text(), "OK");
    let want =
        "ERR policy 'big': limit is too large for RL.LOG (at most 100, see ratelimit.log-max)";
    for line in [
        "RL.CHECK big k2",
        "RL.ALL 1 k3 POLICY big",
        "RL.PEEK k1 POLICY big",
    ] {
        assert_eq!(c.cmd(line).err(), want, "{line}");
    }
    assert_eq!(c.cmd("EXISTS k2 k3").int(), 0);
    // Defining one is refused too, with the command's own message.
    assert_eq!(
        c.cmd("RL.POLICY SET big2 LOG 101 1m").err(),
        "ERR limit is too large for RL.LOG (at most 100, see ratelimit.log-max)"
    );
}

/// Policies are server state: they reach replicas (as commands and in a
/// full sync), survive failover, `DEBUG RELOAD`, and a restart from the
/// AOF (AOF rewrites: tests/policy_persistence.rs).
#[test]
fn policies_survive_replication_failover_and_restarts() {
    let mut master = Server::start_with(&["--appendonly", "yes"]);
    let mut m = master.client();
    assert_eq!(m.cmd("RL.POLICY SET early TOKEN 10 5 1s").text(), "OK");
    // A replica that syncs afterwards gets them with the RDB payload.
    let replica = common::start_replica(&master, &[]);
    assert_eq!(m.cmd("RL.POLICY SET late FIXED 5 1m SHADOW").text(), "OK");
    assert_eq!(m.cmd("RL.POLICY SET gone FIXED 5 1m").text(), "OK");
    assert_eq!(m.cmd("RL.POLICY DEL gone").int(), 1);
    common::sync(&mut m, 1);
    let mut r = replica.client();
    assert_eq!(r.cmd("RL.POLICY LIST").texts(), ["early", "late"]);
    assert_eq!(
        r.cmd("RL.POLICY GET late").texts(),
        ["FIXED", "5", "1m", "SHADOW"]
    );
    // A replica refuses to change them.
    assert!(r
        .cmd("RL.POLICY SET x FIXED 1 1s")
        .err()
        .starts_with("READONLY"));
    // Failover: the promoted replica decides with them.
    assert_eq!(r.cmd("REPLICAOF NO ONE").text(), "OK");
    assert_eq!(r.cmd("RL.CHECK early k").ints()[..2], [1, 10]);

    assert_eq!(m.cmd("DEBUG RELOAD").text(), "OK");
    assert_eq!(m.cmd("RL.POLICY LIST").texts(), ["early", "late"]);
    drop(m);
    master.restart();
    let mut m = master.client();
    assert_eq!(m.cmd("RL.POLICY LIST").texts(), ["early", "late"]);
    assert_eq!(m.cmd("FLUSHALL").text(), "OK");
    assert_eq!(
        m.cmd("RL.POLICY LIST").texts(),
        ["early", "late"],
        "not keys"
    );
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
    assert_eq!(info_field(&mut c, "q", "window_months"), 1);
    assert_eq!(info_field(&mut c, "q", "align"), 1);
    assert_eq!(info_field(&mut c, "q", "offset_minutes"), 0);
    assert_eq!(info_field(&mut c, "q", "window_start_us"), FEB_1 * 1000);
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
    assert_eq!(info_field(&mut c, "d1", "offset_minutes"), -300);
    assert_eq!(info_field(&mut c, "d2", "window_us"), DAY * 1000);
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
    assert_eq!(info_field(&mut m, "c0", "window_months"), 3);
    assert_eq!(info_field(&mut m, "c0", "offset_minutes"), 540);
}

#[test]
fn rl_all_counts_each_named_policy_once_per_limit() {
    // Policies looked up once per call: the counters each POLICY limit
    // counts into are the ones its name resolved to, in order, with ALGO
    // limits between them and a shadow policy (its own path) among them.
    let s = Server::start();
    let mut c = s.client();
    c.cmd("RL.POLICY SET one FIXED 1 1d");
    c.cmd("RL.POLICY SET two FIXED 5 1d");
    c.cmd("RL.POLICY SET quiet FIXED 1 1d SHADOW");
    let call = |c: &mut Client, tail: &str| {
        c.cmd(&format!(
            "RL.ALL 4 {{p}}:a {{p}}:b {{p}}:c {{p}}:d POLICY one TOKEN 9 1 1s POLICY two {tail} AT {T1}"
        ))
    };
    call(&mut c, "FIXED 9 1d");
    call(&mut c, "FIXED 9 1d"); // "one" denies: the call is denied
    call(&mut c, "POLICY quiet");
    let info = c.cmd("INFO ratelimit").text();
    for want in [
        "name=one,calls=3,allowed=1,denied=2,shadow_denied=0",
        "name=two,calls=3,allowed=3,denied=0,shadow_denied=0",
        "name=quiet,calls=1,allowed=1,denied=0,shadow_denied=0",
    ] {
        assert!(info.contains(want), "{want}: {info}");
    }
}
