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
