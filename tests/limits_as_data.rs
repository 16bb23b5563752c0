//! Limits as data, against a real server: shadow mode (`SHADOW`).

mod common;

use common::{Client, Server, Value};

/// A time ahead of the wall clock (2096), so `AT` calls decide there.
const T1: i64 = 4_000_000_000_000;

fn info_field(c: &mut Client, key: &str, field: &str) -> i64 {
    let Value::Array(items) = c.call(&args!["RL.INFO", key]) else {
        panic!("RL.INFO {key}")
    };
    items
        .chunks(2)
        .find(|kv| kv[0].text() == field)
        .map(|kv| kv[1].int())
        .unwrap_or_else(|| panic!("{field} missing"))
}

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

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().map(Value::text).collect(),
        other => panic!("{other:?}"),
    }
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
        strings(&c.cmd("RL.POLICY LIST")),
        ["free", "login", "paid:v2"]
    );
    assert_eq!(
        strings(&c.cmd("RL.POLICY GET free")),
        ["TOKEN", "10", "5", "1s"]
    );
    assert_eq!(
        strings(&c.cmd("RL.POLICY GET login")),
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
    assert_eq!(c.cmd("RL.POLICY SET p FIXED 1 1s").text(), "OK");
    assert_eq!(
        c.cmd("RL.CHECK p k PENALTY 1s").err(),
        "ERR unknown option 'PENALTY' (expected COST or AT)"
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
    assert_eq!(strings(&r.cmd("RL.POLICY LIST")), ["early", "late"]);
    assert_eq!(
        strings(&r.cmd("RL.POLICY GET late")),
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
    assert_eq!(strings(&m.cmd("RL.POLICY LIST")), ["early", "late"]);
    drop(m);
    master.restart();
    let mut m = master.client();
    assert_eq!(strings(&m.cmd("RL.POLICY LIST")), ["early", "late"]);
    assert_eq!(m.cmd("FLUSHALL").text(), "OK");
    assert_eq!(
        strings(&m.cmd("RL.POLICY LIST")),
        ["early", "late"],
        "not keys"
    );
}
