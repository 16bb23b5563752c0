//! Trust under pressure: lease ids nobody can derive, replicas that replay
//! leases at the master's pace, `INFO` that stays linear in the number of
//! policies, raised settings that survive a restart and a replica, and
//! policy writes that only an operator's grant reaches.

mod common;

use common::{snapshot, start_replica, sync, Client, Server, Value};

fn info(c: &mut Client, field: &str) -> i64 {
    c.cmd("INFO ratelimit")
        .info_int(&format!("ratelimit_{field}"))
}

/// `usec_per_call` of `command` in `INFO commandstats`, in µs.
fn usec_per_call(c: &mut Client, command: &str) -> f64 {
    // Module commands keep their case there (cmdstat_RL.APPLY).
    let text = c.cmd("INFO commandstats").text().to_lowercase();
    let prefix = format!("cmdstat_{}:", command.to_lowercase());
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {command} in {text}"));
    line.split(',')
        .find_map(|f| f.strip_prefix("usec_per_call="))
        .unwrap()
        .parse()
        .unwrap()
}

/// A decision's first integer: 1 if allowed.
fn allowed(reply: &Value) -> i64 {
    match reply {
        Value::Array(items) => items[0].int(),
        other => panic!("not a decision: {other:?}"),
    }
}

fn pipeline(c: &mut Client, lines: &[String]) -> Vec<Value> {
    for l in lines {
        let args: Vec<Vec<u8>> = l.split(' ').map(|w| w.as_bytes().to_vec()).collect();
        c.send(&args);
    }
    lines.iter().map(|_| c.read()).collect()
}

// SplitMix64 and its inverse: what the ids of 0.3.0 were made with (a
// counter times a constant plus a secret seed), to show that the attack on
// them no longer works.
fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn unshift(z: u64, s: u32) -> u64 {
    let mut x = z;
    for _ in 0..(64 / s) {
        x = z ^ (x >> s);
    }
    x
}

fn inverse(a: u64) -> u64 {
    // The inverse of an odd number modulo 2^64, by Newton's iteration.
    let mut x = a;
    for _ in 0..6 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
    }
    x
}

fn unsplitmix64(z: u64) -> u64 {
    let z = unshift(z, 31).wrapping_mul(inverse(0x94d0_49bb_1331_11eb));
    let z = unshift(z, 27).wrapping_mul(inverse(0xbf58_476d_1ce4_e5b9));
    unshift(z, 30)
}

#[test]
fn lease_ids_cannot_be_derived_from_other_ids() {
    // The inversion is right: it undoes SplitMix64.
    for x in [1u64, 0x1234_5678_9abc_def1, u64::MAX] {
        assert_eq!(unsplitmix64(splitmix64(x)), x);
    }
    let s = Server::start();
    let mut c = s.client();
    let lines: Vec<String> = (0..2000)
        .map(|_| "RL.ACQUIRE jobs 5000 1h".to_string())
        .collect();
    let ids: Vec<String> = pipeline(&mut c, &lines)
        .iter()
        .map(|r| match r {
            Value::Array(v) => v[5].text(),
            other => panic!("{other:?}"),
        })
        .collect();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());
    for id in &ids {
        assert_eq!(id.len(), 32, "{id}");
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
    // The attack on 0.3.0: invert one id to the counter's value, step the
    // counter, mix again. Tried on each 64-bit half of each id, it must not
    // predict any part of any other id handed out.
    const STEP: u64 = 0x9e37_79b9_7f4a_7c15;
    let halves: std::collections::HashSet<u64> = ids
        .iter()
        .flat_map(|id| [&id[..16], &id[16..]])
        .map(|h| u64::from_str_radix(h, 16).unwrap())
        .collect();
    for &h in &halves {
        let base = unsplitmix64(h);
        for step in [1u64, 2, 3, u64::MAX, u64::MAX - 1] {
            let guess = splitmix64(base.wrapping_add(step.wrapping_mul(STEP)));
            assert!(
                !halves.contains(&guess),
                "id half {h:016x} predicts {guess:016x}"
            );
        }
    }
    // Every bit is set in about half the ids: nothing is constant.
    for bit in 0..128 {
        let ones = ids
            .iter()
            .filter(|id| u128::from_str_radix(id, 16).unwrap() >> bit & 1 == 1)
            .count();
        assert!(
            (800..=1200).contains(&ones),
            "bit {bit} set in {ones} of 2000"
        );
    }
    // And a guess releases nothing.
    assert_eq!(
        c.cmd("RL.RELEASE jobs 00000000000000000000000000000001")
            .int(),
        0
    );
    assert_eq!(common::rl_info_field(&mut c, "jobs", "leases"), 2000);
}

#[test]
fn a_replica_replays_leases_as_fast_as_its_master_decides_them() {
    let master = Server::start();
    let replica = start_replica(&master, &[]);
    let mut m = master.client();
    let mut r = replica.client();
    // 10,000 leases held on one key.
    for chunk in (0..10_000).collect::<Vec<u32>>().chunks(1000) {
        let lines: Vec<String> = chunk
            .iter()
            .map(|i| format!("RL.ACQUIRE jobs 10000 1h ID w{i}"))
            .collect();
        for reply in pipeline(&mut m, &lines) {
            assert_eq!(allowed(&reply), 1, "{reply:?}");
        }
    }
    sync(&mut m, 1);
    assert_eq!(m.cmd("CONFIG RESETSTAT").text(), "OK");
    assert_eq!(r.cmd("CONFIG RESETSTAT").text(), "OK");
    // Renewals (each moves a lease to the end), then releases and acquires.
    let mut lines: Vec<String> = (0..2000)
        .map(|i| format!("RL.RENEW jobs w{} 2h", (i * 7) % 10_000))
        .collect();
    for i in 0..1000 {
        lines.push(format!("RL.RELEASE jobs w{i}"));
        lines.push(format!("RL.ACQUIRE jobs 10000 1h ID n{i}"));
    }
    for reply in pipeline(&mut m, &lines) {
        assert!(!reply.is_error(), "{reply:?}");
    }
    sync(&mut m, 1);
    assert_eq!(info(&mut r, "replay_errors"), 0);
    let calls = |c: &mut Client, name: &str| {
        let text = c.cmd("INFO commandstats").text().to_lowercase();
        let prefix = format!("cmdstat_{}:calls=", name.to_lowercase());
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|l| l.split(',').next())
            .map_or(0, |n| n.parse::<u64>().unwrap())
    };
    assert_eq!(calls(&mut r, "rl.apply"), 4000);
    let on_master = (usec_per_call(&mut m, "rl.renew") * 2000.0
        + usec_per_call(&mut m, "rl.release") * 1000.0
        + usec_per_call(&mut m, "rl.acquire") * 1000.0)
        / 4000.0;
    let on_replica = usec_per_call(&mut r, "rl.apply");
    // 0.3.0 copied the 10,000 leases for every replayed op: about 10x.
    assert!(
        on_replica < on_master * 3.0,
        "a replayed lease op costs {on_replica} µs, the master's {on_master} µs"
    );
    assert_eq!(
        snapshot(&mut m, &["jobs".to_string()]),
        snapshot(&mut r, &["jobs".to_string()])
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

#[test]
fn raised_settings_survive_kill_9_with_the_aof() {
    let mut s = Server::start_with(&["--appendonly", "yes"]);
    let mut c = s.client();
    assert_eq!(c.cmd("CONFIG SET ratelimit.lease-max 20000").text(), "OK");
    assert_eq!(c.cmd("CONFIG SET ratelimit.log-max 20000").text(), "OK");
    assert_eq!(allowed(&c.cmd("RL.ACQUIRE jobs 15000 1h ID w1")), 1);
    assert_eq!(allowed(&c.cmd("RL.LOG logk 15000 1h COST 14000")), 1);
    let before = snapshot(&mut c, &["jobs".to_string(), "logk".to_string()]);
    drop(c);
    s.crash();
    assert!(s.start_again(), "{}", s.log());
    let mut c = s.client();
    // The restarted server has the default settings again, and still every
    // key the master accepted.
    assert_eq!(info(&mut c, "lease_max"), 10_000);
    assert_eq!(info(&mut c, "replay_errors"), 0);
    assert_eq!(info(&mut c, "replayed_above_settings"), 2);
    assert_eq!(
        snapshot(&mut c, &["jobs".to_string(), "logk".to_string()]),
        before
    );
    assert_eq!(common::rl_info_field(&mut c, "jobs", "limit"), 15_000);
    assert!(
        s.log()
            .contains("above this server's ratelimit.lease-max of 10000: applied"),
        "{}",
        s.log()
    );
    // Settings bind clients only: a new call above them is refused.
    assert!(c
        .cmd("RL.ACQUIRE jobs 15000 1h ID w2")
        .err()
        .contains("see ratelimit.lease-max"));
}

#[test]
fn a_replica_with_lower_settings_replays_what_its_master_accepted() {
    let master = Server::start_with(&["lease-max", "20000", "log-max", "20000"]);
    let mut m = master.client();
    assert_eq!(allowed(&m.cmd("RL.ACQUIRE jobs 15000 1h ID w1")), 1);
    let replica = start_replica(&master, &[]);
    let mut r = replica.client();
    // After the full sync: ops above the replica's own settings.
    assert_eq!(allowed(&m.cmd("RL.ACQUIRE jobs 15000 1h ID w2")), 1);
    assert_eq!(allowed(&m.cmd("RL.LOG logk 15000 1h COST 14000")), 1);
    assert_eq!(m.cmd("RL.RELEASE jobs w1").int(), 1);
    sync(&mut m, 1);
    assert_eq!(info(&mut r, "replay_errors"), 0);
    assert_eq!(info(&mut r, "replayed_above_settings"), 2);
    let keys = ["jobs".to_string(), "logk".to_string()];
    assert_eq!(snapshot(&mut m, &keys), snapshot(&mut r, &keys));
    assert_eq!(common::rl_info_field(&mut r, "logk", "entries"), 14_000);
    // Above the hard ceiling is still refused (the codec's bound).
    assert!(replica.log().contains("ratelimit.lease-max of 10000"));
}

fn as_user(s: &Server, user: &str) -> Client {
    let mut c = s.client();
    assert_eq!(c.cmd(&format!("AUTH {user} pw")).text(), "OK");
    c
}

fn denied(reply: &Value) -> bool {
    reply.is_error() && reply.err().starts_with("NOPERM")
}

#[test]
fn only_an_operators_grant_changes_policies() {
    let s = Server::start();
    let mut admin = s.client();
    let v = common::server_version(&mut admin);
    let has_own_category = admin
        .cmd("ACL CAT")
        .texts()
        .iter()
        .any(|c| c == "ratelimit");
    assert_eq!(admin.cmd("RL.POLICY SET free FIXED 10 1m").text(), "OK");
    // The application's grant: deciding, with policies too, and reading
    // them; never writing them.
    let app = if has_own_category {
        "~rl:* +@ratelimit"
    } else {
        "~rl:* +rl.check +rl.fixed +rl.all +rl.policy|get +rl.policy|list"
    };
    assert_eq!(
        admin.cmd(&format!("ACL SETUSER app on >pw {app}")).text(),
        "OK"
    );
    let mut a = as_user(&s, "app");
    assert_eq!(allowed(&a.cmd("RL.CHECK free rl:k")), 1);
    assert_eq!(allowed(&a.cmd("RL.ALL 1 rl:k POLICY free")), 1);
    assert_eq!(a.cmd("RL.POLICY GET free").texts()[0], "FIXED");
    assert!(denied(&a.cmd("RL.POLICY SET free FIXED 1000 1m")));
    assert!(denied(&a.cmd("RL.POLICY DEL free")));
    if v >= (7, 2) {
        // Where a module can set its commands' categories, the broad grants
        // an application gets don't reach policy writes either.
        for grant in ["~rl:* +@write +@read", "~* +@all -@dangerous -@admin"] {
            admin.cmd("ACL DELUSER broad");
            assert_eq!(
                admin
                    .cmd(&format!("ACL SETUSER broad on >pw {grant}"))
                    .text(),
                "OK"
            );
            let mut b = as_user(&s, "broad");
            assert!(
                denied(&b.cmd("RL.POLICY SET free FIXED 1000 1m")),
                "{grant}"
            );
            assert!(denied(&b.cmd("RL.POLICY DEL free")), "{grant}");
            assert_eq!(allowed(&b.cmd("RL.CHECK free rl:k")), 1, "{grant}");
        }
        let info = format!("{:?}", admin.cmd("COMMAND INFO RL.POLICY"));
        assert!(
            info.contains("@admin") && info.contains("@dangerous"),
            "{info}"
        );
    }
    // The operator's grant: the application's plus the two policy writes.
    assert_eq!(
        admin
            .cmd(&format!(
                "ACL SETUSER ops on >pw {app} +rl.policy|set +rl.policy|del"
            ))
            .text(),
        "OK"
    );
    let mut o = as_user(&s, "ops");
    assert_eq!(o.cmd("RL.POLICY SET free FIXED 20 1m").text(), "OK");
    assert_eq!(o.cmd("RL.POLICY DEL free").int(), 1);
}

#[test]
fn a_replica_refuses_policy_writes_from_clients() {
    let master = Server::start();
    let replica = start_replica(&master, &[]);
    let mut r = replica.client();
    assert!(r
        .cmd("RL.POLICY SET free FIXED 10 1m")
        .err()
        .starts_with("READONLY"));
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
    assert_eq!(info(&mut c, "penalties"), 1);
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
    assert_eq!(info(&mut r, "replay_errors"), 0);
    let keys = common::keys(&mut c);
    assert!(keys.len() >= 6, "{keys:?}");
    assert_eq!(snapshot(&mut c, &keys), snapshot(&mut r, &keys));
}
