//! Trust and access control: who may change policies, and ids nobody can derive.
//!
//! Policy writes reach the server only through an operator's ACL grant,
//! replicas refuse them from clients, and a lease id tells nothing about
//! the others.

mod common;

use common::{allowed, pipeline, start_replica, Client, Server, Value};

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
