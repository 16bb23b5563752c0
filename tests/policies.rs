//! Limits as data: named policies (`RL.POLICY`, `RL.CHECK`) and `SHADOW`.
//!
//! Their errors and `INFO`, a policy's `SHADOW` and `PENALTY` in `RL.ALL`,
//! and policies as server state, not keys: replication, failover, restarts
//! and every way an AOF rewrite starts (BGREWRITEAOF, the automatic
//! rewrite, turning the AOF on, while writes are paused) keep them, and a
//! rewrite sends replicas nothing.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    pipeline, ratelimit_stat, rl_info_field, snapshot, start_replica, sync, usec_per_call, Client,
    KeyspaceEvents, Server, Value, T1,
};

#[test]
fn shadow_mode_applies_the_real_decision_and_answers_allowed() {
    let s = Server::start_with(&["--notify-keyspace-events", "Kd"]);
    let mut c = s.client();
    let mut events = KeyspaceEvents::subscribe(&s);
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
    assert_eq!(rl_info_field(&mut c, "sh", "count"), 2);
    assert_eq!(rl_info_field(&mut c, "sh", "blocked_until_ms"), 0);
    // The same call enforced is denied.
    assert_eq!(fixed(&mut c, ""), vec![0, 2, 0, 60_000, 60_000]);
    let info = c.cmd("INFO ratelimit");
    assert_eq!(info.info_int("ratelimit_fixed_calls"), 4);
    assert_eq!(info.info_int("ratelimit_fixed_allowed"), 2);
    assert_eq!(info.info_int("ratelimit_fixed_shadow_denied"), 1);
    assert_eq!(info.info_int("ratelimit_fixed_denied"), 1);
    assert_eq!(info.info_int("ratelimit_penalties"), 0);
    // One rl.shadow event, then the enforced call's rl.denied.
    assert_eq!([events.next(), events.next()], ["rl.shadow", "rl.denied"]);

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
    assert_eq!(rl_info_field(&mut c, "{a}:d", "count"), 1);
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
    assert_eq!(rl_info_field(&mut c, "via", "capacity"), 100);

    // A policy's PENALTY and SHADOW apply: denials answered allowed.
    for _ in 0..6 {
        assert_eq!(c.cmd(&format!("RL.CHECK login ip:1 AT {T1}")).ints()[0], 1);
    }
    assert_eq!(rl_info_field(&mut c, "ip:1", "count"), 5);
    assert_eq!(rl_info_field(&mut c, "ip:1", "blocked_until_ms"), 0);

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
/// AOF (AOF rewrites: the `policies_survive_*` tests below).
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

#[test]
fn info_stays_linear_in_the_number_of_policies() {
    let s = Server::start();
    let mut c = s.client();
    let mut per_call = Vec::new();
    for n in [1_000usize, 10_000] {
        let have = c.cmd("RL.POLICY LIST").texts().len();
        let lines: Vec<String> = (have..n)
            .map(|i| format!("RL.POLICY SET p{i:05} FIXED 10 1m"))
            .collect();
        for reply in pipeline(&mut c, &lines) {
            assert_eq!(reply.text(), "OK");
        }
        assert_eq!(c.cmd("CONFIG RESETSTAT").text(), "OK");
        for _ in 0..10 {
            let text = c.cmd("INFO ratelimit").text();
            assert!(text.contains(&format!("ratelimit_policies:{n}\r\n")));
            assert!(text.contains(&format!("ratelimit_policy_{}:name=p{:05},", n - 1, n - 1)));
        }
        per_call.push(usec_per_call(&mut c, "info"));
    }
    eprintln!("INFO µs per call at 1,000 and 10,000 policies: {per_call:?}");
    // Ten times the policies: about ten times the work (0.3.0: a hundred).
    assert!(
        per_call[1] < per_call[0] * 30.0,
        "INFO took {} µs at 1,000 policies, {} µs at 10,000",
        per_call[0],
        per_call[1]
    );
}

const T: i64 = 1_800_000_000_000;

/// An `RL.ALL` reply: the combined five integers, then each key's five.
fn all_reply(v: &Value) -> (Vec<i64>, Vec<Vec<i64>>) {
    let Value::Array(items) = v else {
        panic!("not an RL.ALL reply: {v:?}")
    };
    let head = items[..5].iter().map(Value::int).collect();
    (head, items[5..].iter().map(Value::ints).collect())
}

fn policy_counts(c: &mut Client, name: &str) -> String {
    let text = c.cmd("INFO ratelimit").text();
    let needle = format!("name={name},");
    text.lines()
        .find(|l| l.contains(&needle))
        .unwrap_or_else(|| panic!("{name} not in {text}"))
        .split_once(&needle)
        .unwrap()
        .1
        .to_string()
}

#[test]
fn a_shadow_policy_is_never_enforced_in_rl_all_and_a_policys_penalty_applies() {
    let master = Server::start();
    let replica = start_replica(&master, &[]);
    let mut c = master.client();
    for def in [
        "free FIXED 10 1m",
        "tight FIXED 1 1m SHADOW",
        "one FIXED 1 1m",
        "login FIXED 1 1m PENALTY 15m",
    ] {
        assert_eq!(c.cmd(&format!("RL.POLICY SET {def}")).text(), "OK");
    }
    // Trialling a tighter limit inside a tier: the tier's answer is free's
    // alone, and tight's entry reads allowed while it counts its denials.
    for (i, remaining) in [9, 8, 7].into_iter().enumerate() {
        let (head, each) = all_reply(&c.cmd(&format!(
            "RL.ALL 2 {{u}}:a {{u}}:b POLICY free POLICY tight AT {}",
            T + i as i64
        )));
        assert_eq!(head[..3], [1, 10, remaining], "call {i}");
        assert_eq!(each[1][..3], [1, 1, 0], "call {i}");
    }
    assert_eq!(
        policy_counts(&mut c, "tight"),
        "calls=3,allowed=1,denied=0,shadow_denied=2"
    );
    assert_eq!(common::rl_info_field(&mut c, "{u}:b", "count"), 1);
    // When the enforced limits deny, the shadow limit is only looked at.
    let (head, _) = all_reply(&c.cmd(&format!(
        "RL.ALL 2 {{v}}:a {{v}}:b POLICY one POLICY tight AT {T}"
    )));
    assert_eq!(head[0], 1);
    let (head, each) = all_reply(&c.cmd(&format!(
        "RL.ALL 2 {{v}}:a {{v}}:b POLICY one POLICY tight AT {}",
        T + 1
    )));
    assert_eq!((head[0], each[0][0], each[1][0]), (0, 0, 1));
    assert_eq!(common::rl_info_field(&mut c, "{v}:b", "count"), 1);
    // A policy's penalty blocks its own key, and only that one.
    let call = |c: &mut Client, at: i64| {
        all_reply(&c.cmd(&format!(
            "RL.ALL 2 {{w}}:login {{w}}:ip POLICY login FIXED 100 1m AT {}",
            T + at
        )))
    };
    assert_eq!(call(&mut c, 0).0[0], 1);
    let (head, each) = call(&mut c, 1);
    assert_eq!(head[0], 0);
    assert_eq!(each[0][3], 15 * 60_000, "{each:?}");
    assert_eq!(
        common::rl_info_field(&mut c, "{w}:login", "blocked_until_ms"),
        T + 1 + 15 * 60_000
    );
    assert_eq!(
        common::rl_info_field(&mut c, "{w}:ip", "blocked_until_ms"),
        0
    );
    assert_eq!(ratelimit_stat(&mut c, "penalties"), 1);
    // Blocked: denied a minute later still, when the window has reset.
    assert_eq!(call(&mut c, 61_000).0[0], 0);
    // A PENALTY given to the call applies to every key instead.
    for at in [0, 1] {
        c.cmd(&format!(
            "RL.ALL 2 {{x}}:login {{x}}:ip POLICY login FIXED 100 1m PENALTY 1m AT {}",
            T + at
        ));
    }
    assert_eq!(
        common::rl_info_field(&mut c, "{x}:login", "blocked_until_ms"),
        T + 1 + 60_000
    );
    // The replica holds exactly the master's state.
    sync(&mut c, 1);
    let mut r = replica.client();
    assert_eq!(ratelimit_stat(&mut r, "replay_errors"), 0);
    let keys = common::keys(&mut c);
    assert!(keys.len() >= 6, "{keys:?}");
    assert_eq!(snapshot(&mut c, &keys), snapshot(&mut r, &keys));
}

const LIMIT: Duration = Duration::from_secs(60);

/// Every policy with its definition, in name order.
fn policies(c: &mut Client) -> Vec<(String, Vec<String>)> {
    c.cmd("RL.POLICY LIST")
        .texts()
        .into_iter()
        .map(|name| {
            let def = c.cmd(&format!("RL.POLICY GET {name}")).texts();
            (name, def)
        })
        .collect()
}

fn policy(name: &str, def: &str) -> (String, Vec<String>) {
    (
        name.to_string(),
        def.split_whitespace().map(String::from).collect(),
    )
}

fn persistence(c: &mut Client) -> Value {
    c.cmd("INFO persistence")
}

/// Waits until no rewrite runs or waits to run, and `aof_rewrites` has
/// reached `at_least`; the last one must have succeeded.
fn wait_rewritten(c: &mut Client, at_least: i64) {
    common::wait_until("the AOF rewrite to finish", LIMIT, || {
        common::aof_rewrite_idle(c) && persistence(c).info_int("aof_rewrites") >= at_least
    });
    let status = persistence(c).text();
    assert!(
        status.contains("aof_last_bgrewrite_status:ok"),
        "the rewrite failed: {status}"
    );
}

/// BGREWRITEAOF, and waits until it is done.
fn rewrite(c: &mut Client) {
    let n = persistence(c).info_int("aof_rewrites");
    let reply = c.cmd("BGREWRITEAOF").text();
    assert!(reply.contains("rewriting"), "{reply}");
    wait_rewritten(c, n + 1);
}

/// The current base AOF file's bytes (as the manifest names it).
fn base_aof(dir: &Path) -> Vec<u8> {
    let dir = dir.join("appendonlydir");
    let manifest = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".manifest"))
        .expect("an AOF manifest");
    let manifest = std::fs::read_to_string(manifest).unwrap();
    let base = manifest
        .lines()
        .find(|l| l.ends_with("type b"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no base in the manifest:\n{manifest}"));
    std::fs::read(dir.join(base)).unwrap()
}

/// A command's line in `INFO commandstats`, whatever its case.
fn calls_of(stats: &str, cmd: &str) -> Option<String> {
    let field = format!("cmdstat_{cmd}:");
    stats
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with(&field))
        .map(str::to_string)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `RL.CHECK name key AT T1`'s allowed flag and remaining count.
fn check(c: &mut Client, name: &str, key: &str) -> [i64; 2] {
    let d = c.cmd(&format!("RL.CHECK {name} {key} AT {T1}")).ints();
    [d[0], d[2]]
}

#[test]
fn policies_survive_aof_rewrites_with_and_without_the_rdb_preamble() {
    for preamble in ["no", "yes"] {
        let mut s =
            Server::start_with(&["--appendonly", "yes", "--aof-use-rdb-preamble", preamble]);
        let mut c = s.client();
        assert_eq!(c.cmd("RL.POLICY SET free TOKEN 10 5 1s").text(), "OK");
        assert_eq!(
            c.cmd("RL.POLICY SET login FIXED 5 60s PENALTY 900s SHADOW")
                .text(),
            "OK"
        );
        assert_eq!(c.cmd("RL.POLICY SET gone GCRA 1 1 1s").text(), "OK");
        assert_eq!(c.cmd("RL.POLICY DEL gone").int(), 1);
        assert_eq!(check(&mut c, "free", "k"), [1, 9]);
        let want = vec![
            policy("free", "TOKEN 10 5 1s"),
            policy("login", "FIXED 5 1m PENALTY 15m SHADOW"),
        ];

        rewrite(&mut c);
        let base = base_aof(&s.dir);
        // Commands start with `*`; an RDB with its magic (REDIS, VALKEY).
        assert_eq!(!base.starts_with(b"*"), preamble == "yes", "{preamble}");
        if preamble == "no" {
            // The case this is about: the base alone would lose them.
            assert!(!contains(&base, b"RL.POLICY"), "policies in the base");
        }
        s.restart();
        let mut c = s.client();
        assert_eq!(policies(&mut c), want, "preamble {preamble}");
        // The limiter and its policy carry on where they were.
        assert_eq!(check(&mut c, "free", "k"), [1, 8]);

        // Again: each rewrite writes them after its own base, so a second
        // one (whose base replaces the file holding the first's) keeps
        // them too.
        rewrite(&mut c);
        s.restart();
        let mut c = s.client();
        assert_eq!(
            policies(&mut c),
            want,
            "second rewrite, preamble {preamble}"
        );
        assert_eq!(check(&mut c, "free", "k"), [1, 7]);
        assert!(s.log().contains("DB loaded from append only file"));
    }
}

#[test]
fn policies_changed_during_a_rewrite_end_up_right() {
    let mut s = Server::start_with(&["--appendonly", "yes", "--aof-use-rdb-preamble", "no"]);
    let mut c = s.client();
    for line in [
        "RL.POLICY SET kept FIXED 1 1s",
        "RL.POLICY SET changed FIXED 2 1s",
        "RL.POLICY SET deleted FIXED 3 1s",
    ] {
        assert_eq!(c.cmd(line).text(), "OK");
    }
    for i in 0..10 {
        assert_eq!(c.cmd(&format!("SET k{i} v")).text(), "OK");
    }
    // The child sleeps this long (µs) before each key: a rewrite that
    // lasts about a second, whatever the machine.
    assert_eq!(c.cmd("CONFIG SET rdb-key-save-delay 100000").text(), "OK");
    let n = persistence(&mut c).info_int("aof_rewrites");
    assert!(c.cmd("BGREWRITEAOF").text().contains("rewriting"));
    // The child has its own copy of the setting.
    assert_eq!(c.cmd("CONFIG SET rdb-key-save-delay 0").text(), "OK");
    assert_eq!(c.cmd("RL.POLICY SET changed TOKEN 20 2 1m").text(), "OK");
    assert_eq!(c.cmd("RL.POLICY DEL deleted").int(), 1);
    assert_eq!(c.cmd("RL.POLICY SET added GCRA 4 1 1s").text(), "OK");
    assert_eq!(
        persistence(&mut c).info_int("aof_rewrite_in_progress"),
        1,
        "the changes must land while the rewrite runs"
    );
    wait_rewritten(&mut c, n + 1);
    s.restart();
    let mut c = s.client();
    assert_eq!(
        policies(&mut c),
        vec![
            policy("added", "GCRA 4 1 1s"),
            policy("changed", "TOKEN 20 2 1m"),
            policy("kept", "FIXED 1 1s"),
        ]
    );
    assert_eq!(common::keys(&mut c).len(), 10);
}

#[test]
fn policies_survive_a_rewrite_started_while_writes_are_paused() {
    // A paused server must not propagate anything (it would crash): the
    // policies wait for the pause to end.
    let mut s = Server::start_with(&["--appendonly", "yes", "--aof-use-rdb-preamble", "no"]);
    let mut c = s.client();
    assert_eq!(c.cmd("RL.POLICY SET p TOKEN 10 5 1s").text(), "OK");
    assert_eq!(c.cmd("RL.POLICY SET q FIXED 3 1h").text(), "OK");
    assert_eq!(c.cmd("CLIENT PAUSE 60000 WRITE").text(), "OK");
    rewrite(&mut c);
    assert_eq!(c.cmd("PING").text(), "PONG");
    assert!(s.log().contains("while writes are paused"), "{}", s.log());
    assert_eq!(c.cmd("CLIENT UNPAUSE").text(), "OK");
    common::wait_until("the policies to be written", LIMIT, || {
        s.log().contains("the policies are written to the AOF")
    });
    s.restart();
    let mut c = s.client();
    assert_eq!(
        policies(&mut c),
        vec![policy("p", "TOKEN 10 5 1s"), policy("q", "FIXED 3 1h")]
    );
}

#[test]
fn policies_survive_the_automatic_rewrite() {
    let mut s = Server::start_with(&[
        "--appendonly",
        "yes",
        "--aof-use-rdb-preamble",
        "no",
        "--auto-aof-rewrite-percentage",
        "100",
        "--auto-aof-rewrite-min-size",
        "4kb",
    ]);
    let mut c = s.client();
    assert_eq!(c.cmd("RL.POLICY SET p SLIDING 7 1m").text(), "OK");
    let mut i = 0;
    while persistence(&mut c).info_int("aof_rewrites") == 0 {
        assert!(i < 100_000, "no automatic rewrite");
        assert_eq!(c.cmd(&format!("SET key:{i} {i:0>64}")).text(), "OK");
        i += 1;
    }
    // One is enough: no more from here.
    assert_eq!(
        c.cmd("CONFIG SET auto-aof-rewrite-percentage 0").text(),
        "OK"
    );
    wait_rewritten(&mut c, 1);
    assert!(!contains(&base_aof(&s.dir), b"RL.POLICY"));
    s.restart();
    let mut c = s.client();
    assert_eq!(policies(&mut c), vec![policy("p", "SLIDING 7 1m")]);
}

#[test]
fn policies_survive_turning_the_aof_on() {
    // CONFIG SET appendonly yes starts a rewrite that makes the first base.
    let mut s = Server::start();
    let mut c = s.client();
    assert_eq!(c.cmd("RL.POLICY SET p LEAKY 5 1 1s").text(), "OK");
    assert_eq!(c.cmd("RL.POLICY SET q LOG 3 1m").text(), "OK");
    assert_eq!(c.cmd("SET k v").text(), "OK");
    assert_eq!(c.cmd("CONFIG SET aof-use-rdb-preamble no").text(), "OK");
    assert_eq!(c.cmd("CONFIG SET appendonly yes").text(), "OK");
    wait_rewritten(&mut c, 1);
    assert_eq!(c.cmd("RL.POLICY DEL q").int(), 1);
    assert!(!contains(&base_aof(&s.dir), b"RL.POLICY"));
    s.restart_with(&["--appendonly", "yes", "--aof-use-rdb-preamble", "no"]);
    let mut c = s.client();
    assert_eq!(policies(&mut c), vec![policy("p", "LEAKY 5 1 1s")]);
    assert_eq!(c.cmd("GET k").text(), "v");
}

#[test]
fn a_rewrite_sends_replicas_nothing_they_would_act_on() {
    // The policies go to the rewriting server's own AOF only: a replica
    // gets neither them nor the command that started the rewrite, and
    // stays in step. A replica with its own AOF rewrites it after each
    // full sync, and writes its set there the same way.
    let aof = ["--appendonly", "yes", "--aof-use-rdb-preamble", "no"];
    let master = Server::start_with(&aof);
    let mut m = master.client();
    assert_eq!(m.cmd("RL.POLICY SET p TOKEN 10 5 1s").text(), "OK");
    assert_eq!(m.cmd("RL.POLICY SET q FIXED 3 1h").text(), "OK");
    let replica = common::start_replica(&master, &aof);
    let mut r = replica.client();
    wait_rewritten(&mut r, 1);
    common::wait_until("the replica's AOF to hold its policies", LIMIT, || {
        let dir = replica.dir.join("appendonlydir");
        std::fs::read_dir(&dir).unwrap().any(|e| {
            let path = e.unwrap().path();
            path.to_string_lossy().ends_with(".incr.aof")
                && contains(&std::fs::read(&path).unwrap_or_default(), b"RL.POLICY")
        })
    });
    // One through the stream, so the replica counts RL.POLICY|SET.
    assert_eq!(m.cmd("RL.POLICY SET r GCRA 1 1 1s").text(), "OK");
    common::sync(&mut m, 1);
    let rewrites = persistence(&mut r).info_int("aof_rewrites");
    let before = r.cmd("INFO commandstats").text();
    rewrite(&mut m);
    // Anything sent since has reached the replica once a later write has.
    assert_eq!(m.cmd("SET after-rewrite 1").text(), "OK");
    common::sync(&mut m, 1);
    let after = r.cmd("INFO commandstats").text();
    // Servers differ in the case of module command names here. (With two
    // or more policies the server wraps them in MULTI/EXEC, which replicas
    // do get, empty.)
    for cmd in ["bgrewriteaof", "rl.policy|set", "config|set"] {
        assert_eq!(
            calls_of(&after, cmd),
            calls_of(&before, cmd),
            "{cmd} on the replica"
        );
    }
    assert!(calls_of(&before, "rl.policy|set").is_some(), "{before}");
    assert_eq!(persistence(&mut r).info_int("aof_rewrites"), rewrites);
    assert_eq!(
        policies(&mut r),
        vec![
            policy("p", "TOKEN 10 5 1s"),
            policy("q", "FIXED 3 1h"),
            policy("r", "GCRA 1 1 1s"),
        ]
    );
}

/// A log policy made under a higher `log-max` still loads from the AOF, and
/// reaches a replica, once the ceiling is lowered: the server must start.
/// Using it is then refused, naming the setting.
#[test]
fn a_log_policy_above_a_lowered_log_max_still_loads() {
    let mut s = Server::start_with(&["--appendonly", "yes", "--aof-use-rdb-preamble", "no"]);
    let mut c = s.client();
    assert_eq!(c.cmd("RL.POLICY SET big LOG 5000 1m").text(), "OK");
    assert_eq!(c.cmd("CONFIG SET ratelimit.log-max 100").text(), "OK");
    let replica = common::start_replica(&s, &[]);
    common::sync(&mut c, 1);
    assert_eq!(
        c.cmd("RL.POLICY SET big2 LOG 200 1m").err(),
        "ERR limit is too large for RL.LOG (at most 100, see ratelimit.log-max)"
    );
    // The replica got it from the full sync; one set afterwards reaches it
    // as a command, under the replica's own lowered ceiling.
    assert_eq!(c.cmd("CONFIG SET ratelimit.log-max 10000").text(), "OK");
    assert_eq!(c.cmd("RL.POLICY SET big3 LOG 300 1m").text(), "OK");
    let mut r = replica.client();
    assert_eq!(r.cmd("CONFIG SET ratelimit.log-max 100").text(), "OK");
    assert_eq!(c.cmd("RL.POLICY SET big4 LOG 400 1m").text(), "OK");
    common::sync(&mut c, 1);
    assert_eq!(r.cmd("RL.POLICY LIST").texts(), ["big", "big3", "big4"]);
    drop(c);
    s.restart_with(&["--ratelimit.log-max", "100"]);
    let mut c = s.client();
    assert_eq!(c.cmd("RL.POLICY GET big").texts(), ["LOG", "5000", "1m"]);
    assert_eq!(
        c.cmd("RL.CHECK big k").err(),
        "ERR policy 'big': limit is too large for RL.LOG (at most 100, see ratelimit.log-max)"
    );
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
