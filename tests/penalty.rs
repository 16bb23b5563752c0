//! The penalty box (`PENALTY d`): a denial blocks its key until the block ends.

mod common;

use common::{rl_info_field, Client, KeyspaceEvents, Server, Value, T1};

/// The five integers of the combined decision of an `RL.ALL` reply.
fn combined(v: &Value) -> Vec<i64> {
    let Value::Array(items) = v else {
        panic!("{v:?}")
    };
    items[..5].iter().map(Value::int).collect()
}

#[test]
fn a_penalty_blocks_a_key_until_it_ends() {
    let s = Server::start_with(&["--notify-keyspace-events", "Kd"]);
    let mut c = s.client();
    let mut events = KeyspaceEvents::subscribe(&s);

    let at = |ms: i64| format!("AT {}", T1 + ms);
    let fixed = |c: &mut Client, ms: i64, pen: &str| {
        c.cmd(&format!("RL.FIXED login:1 2 1m {pen} {}", at(ms)))
            .ints()
    };
    assert_eq!(fixed(&mut c, 0, "PENALTY 15m"), vec![1, 2, 1, 0, 60_000]);
    assert_eq!(fixed(&mut c, 0, "PENALTY 15m"), vec![1, 2, 0, 0, 60_000]);
    // Denied with a penalty: blocked for 15 minutes from now.
    assert_eq!(
        fixed(&mut c, 1000, "PENALTY 15m"),
        vec![0, 2, 0, 900_000, 900_000]
    );
    assert_eq!(
        rl_info_field(&mut c, "login:1", "blocked_until_ms"),
        T1 + 1000 + 900_000
    );
    // The window has reset, but the block holds, and is not extended.
    assert_eq!(
        fixed(&mut c, 120_000, "PENALTY 15m"),
        vec![0, 2, 0, 781_000, 781_000]
    );
    assert_eq!(fixed(&mut c, 120_000, ""), vec![0, 2, 0, 781_000, 781_000]);
    // A peek sees it, and RL.PEEK too.
    assert_eq!(
        c.cmd(&format!("RL.FIXED login:1 2 1m COST 0 {}", at(900_000)))
            .ints(),
        vec![0, 2, 0, 1000, 1000]
    );
    assert_eq!(
        c.cmd(&format!("RL.PEEK login:1 FIXED 2 1m {}", at(900_000)))
            .ints(),
        vec![0, 2, 0, 1000, 1000]
    );
    // It ends exactly at its end.
    assert_eq!(fixed(&mut c, 901_000, ""), vec![1, 2, 1, 0, 60_000]);
    assert_eq!(rl_info_field(&mut c, "login:1", "blocked_until_ms"), 0);
    assert_eq!(c.cmd("INFO ratelimit").info_int("ratelimit_penalties"), 1);

    // One rl.penalty event, when the block started.
    let mut seen = Vec::new();
    c.cmd("PING");
    loop {
        let event = events.next();
        let last = event == "rl.penalty" || seen.len() > 20;
        seen.push(event);
        if last {
            break;
        }
    }
    assert_eq!(seen, ["rl.denied", "rl.penalty"]);

    // Without a penalty a denial changes nothing; a call that can never
    // pass blocks nothing.
    c.cmd(&format!("RL.FIXED plain 1 1m {}", at(0)));
    let before = c.cmd("DUMP plain");
    assert_eq!(
        c.cmd(&format!("RL.FIXED plain 1 1m {}", at(1))).ints()[0],
        0
    );
    assert_eq!(
        c.cmd(&format!("RL.FIXED plain 1 1m COST 5 PENALTY 1h {}", at(1)))
            .ints()[3],
        -1
    );
    assert_eq!(c.cmd("DUMP plain"), before);
}

#[test]
fn a_block_keeps_its_key_alive_and_is_lifted_by_del() {
    let s = Server::start();
    let mut c = s.client();
    // Wall-clock calls: the key would expire within 10 s without the
    // block (and the second call is denied unless 10 s pass between the
    // two); with it, it lives the whole hour.
    c.cmd("RL.TOKEN b 1 1 10s");
    let d = c.cmd("RL.TOKEN b 1 1 10s PENALTY 1h").ints();
    assert_eq!((d[0], d[3]), (0, 3_600_000));
    let ttl = c.cmd("PTTL b").int();
    assert!(ttl > 3_500_000 && ttl <= 3_600_000, "{ttl}");
    assert_eq!(c.cmd("DEL b").int(), 1);
    assert_eq!(c.cmd("RL.TOKEN b 1 1 1s").ints()[0], 1);
}

#[test]
fn rl_all_blocks_the_keys_that_denied() {
    let s = Server::start();
    let mut c = s.client();
    let all = |c: &mut Client, ms: i64| {
        c.cmd(&format!(
            "RL.ALL 2 {{u}}:min {{u}}:day TOKEN 2 2 1m FIXED 100 1d PENALTY 10m AT {}",
            T1 + ms
        ))
    };
    assert_eq!(combined(&all(&mut c, 0))[0], 1);
    assert_eq!(combined(&all(&mut c, 0))[0], 1);
    let d = combined(&all(&mut c, 0));
    assert_eq!(&d[..5], &[0, 2, 0, 600_000, 600_000]);
    assert_eq!(
        rl_info_field(&mut c, "{u}:min", "blocked_until_ms"),
        T1 + 600_000
    );
    assert_eq!(rl_info_field(&mut c, "{u}:day", "blocked_until_ms"), 0);
    // A minute later the bucket is full again, but the block holds.
    let d = combined(&all(&mut c, 60_000));
    assert_eq!(&d[..5], &[0, 2, 0, 540_000, 540_000]);
    assert_eq!(combined(&all(&mut c, 600_000))[0], 1);
    // The daily quota counted only the allowed calls.
    assert_eq!(rl_info_field(&mut c, "{u}:day", "count"), 3);
}
