//! Peeks (`RL.PEEK`, `COST 0`): what a call would get, read-only.
//!
//! So dashboards and `/limits` endpoints can ask replicas and read-only
//! scripts.

mod common;

use common::{digest, rl, start_replica, sync, Server, Value, T0};

#[test]
fn peek_never_creates_or_changes_a_key() {
    let s = Server::start();
    let mut c = s.client();
    // Each key must outlive the five commands after it is made: the
    // buckets' periods are an hour (at 1 s they lived 2 s).
    for cmd in [
        "RL.FIXED p 5 10s",
        "RL.SLIDING p 5 10s",
        "RL.LOG p 5 10s",
        "RL.TOKEN p 5 1 1h",
        "RL.LEAKY p 5 1 1h",
        "RL.GCRA p 4 1 1h",
    ] {
        let r = rl(&mut c, &format!("{cmd} COST 0"), T0);
        assert_eq!(r, vec![1, 5, 5, 0, 0], "{cmd}");
        assert_eq!(c.cmd("EXISTS p").int(), 0, "{cmd}");
        rl(&mut c, &format!("{cmd} COST 2"), T0);
        let before = digest(&mut c, "p");
        let ttl = c.cmd("PEXPIRETIME p").int();
        let r = rl(&mut c, &format!("{cmd} COST 0"), T0 + 100);
        assert_eq!((r[0], r[2]), (1, 3), "{cmd}");
        assert_eq!(digest(&mut c, "p"), before, "{cmd}");
        assert_eq!(c.cmd("PEXPIRETIME p").int(), ttl, "{cmd}");
        c.cmd("DEL p");
    }
}

#[test]
fn peek_answers_like_the_call_and_writes_nothing() {
    let s = Server::start();
    let mut c = s.client();
    assert_eq!(
        c.cmd(&format!("RL.TOKEN t 10 1 1h COST 4 AT {T0}")).ints()[0],
        1
    );
    let dump = c.cmd("DUMP t");
    let ttl = c.cmd("PTTL t").int();
    for cost in [0, 1, 6, 7, 11] {
        let peek = c.cmd(&format!("RL.PEEK t TOKEN 10 1 1h COST {cost} AT {T0}"));
        let call = c.cmd(&format!("RL.TOKEN t 10 1 1h COST 0 AT {T0}"));
        assert_eq!(peek.ints().len(), 5, "{peek:?}");
        if cost == 0 {
            assert_eq!(peek, call);
        }
        // What spending would leave, without spending it.
        let allowed = cost <= 6;
        assert_eq!(peek.ints()[0], allowed as i64, "cost {cost}: {peek:?}");
        if allowed {
            assert_eq!(peek.ints()[2], 6 - cost, "cost {cost}");
        }
    }
    assert_eq!(c.cmd("DUMP t"), dump, "a peek changed the key");
    assert!(c.cmd("PTTL t").int() <= ttl);
    // A missing key answers as a fresh one and is not created.
    assert_eq!(
        c.cmd(&format!("RL.PEEK nokey FIXED 5 1m COST 2 AT {T0}"))
            .ints(),
        vec![1, 5, 3, 0, 60_000]
    );
    assert_eq!(c.cmd("EXISTS nokey").int(), 0);
    // Wrong algorithm, wrong type, bad input: the same errors as the calls.
    assert!(c
        .cmd("RL.PEEK t FIXED 5 1m")
        .err()
        .contains("holds a TOKEN limiter"));
    c.cmd("SET str x");
    assert!(c
        .cmd("RL.PEEK str FIXED 5 1m")
        .err()
        .starts_with("WRONGTYPE"));
    assert_eq!(
        c.cmd("RL.PEEK t BUCKET 5 1m").err(),
        "ERR the algorithm must be FIXED, SLIDING, LOG, TOKEN, LEAKY, GCRA or POLICY, got 'BUCKET'"
    );
    // `RL.PEEK key POLICY name` is four words, so the server's arity
    // check lets this through and the parser says what is missing.
    assert_eq!(
        c.cmd("RL.PEEK t FIXED 5").err(),
        "ERR FIXED needs limit, window"
    );
    assert_eq!(
        c.cmd("RL.PEEK t FIXED").err(),
        "ERR wrong number of arguments for 'RL.PEEK' command"
    );
    // Counted nowhere: a peek is not a request.
    let info = c.cmd("INFO ratelimit").text();
    assert!(info.contains("ratelimit_token_calls:6"), "{info}");
}

#[test]
fn peek_runs_where_writes_cannot() {
    let master = Server::start();
    let replica = start_replica(&master, &[]);
    let mut m = master.client();
    assert_eq!(m.cmd("RL.FIXED f 3 1h COST 2").ints()[0], 1);
    sync(&mut m, 1);
    let mut r = replica.client();
    // On a read-only replica a COST 0 call is a write command: refused.
    assert!(r
        .cmd("RL.FIXED f 3 1h COST 0")
        .err()
        .starts_with("READONLY"));
    let peek = r.cmd("RL.PEEK f FIXED 3 1h");
    assert_eq!(&peek.ints()[..3], &[1, 3, 0]);
    // In a read-only script, on the master.
    let script = "return redis.call('RL.PEEK', KEYS[1], 'FIXED', '3', '1h', 'COST', '2')";
    let eval = [
        b"EVAL_RO".to_vec(),
        script.into(),
        b"1".to_vec(),
        b"f".to_vec(),
    ];
    match m.call(&eval) {
        Value::Array(v) => assert_eq!(v[0], Value::Int(0)),
        other => panic!("{other:?}"),
    }
}
