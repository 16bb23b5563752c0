//! Refunds (`RL.REFUND`): giving back what a call spent, by each algorithm's rule.

mod common;

use common::{Server, ALGORITHMS, T0};

#[test]
fn refunds_give_back_by_each_algorithms_rule() {
    let s = Server::start();
    let mut c = s.client();
    // Each spends 3 of its 5, then a refund of 2 leaves 4.
    for (cmd, params) in ALGORITHMS {
        let k = format!("r:{cmd}");
        let d = c.cmd(&format!("{cmd} {k} {params} COST 3 AT {T0}")).ints();
        assert_eq!(&d[..3], &[1, 5, 2], "{cmd}");
        let ttl_before = c.cmd(&format!("PEXPIRETIME {k}")).int();
        assert_eq!(c.cmd(&format!("RL.REFUND {k} 2 AT {T0}")).int(), 2, "{cmd}");
        let d = c.cmd(&format!("{cmd} {k} {params} COST 0 AT {T0}")).ints();
        assert_eq!(&d[..3], &[1, 5, 4], "{cmd} after the refund");
        // The key's life follows what it holds: never longer than before
        // (it still holds a unit for an hour).
        let ttl_after = c.cmd(&format!("PEXPIRETIME {k}")).int();
        assert!(ttl_after > 0 && ttl_after <= ttl_before, "{cmd}");
        // Only what is there comes back.
        assert_eq!(
            c.cmd(&format!("RL.REFUND {k} 10 AT {T0}")).int(),
            1,
            "{cmd}"
        );
        assert_eq!(
            c.cmd(&format!("RL.REFUND {k} 10 AT {T0}")).int(),
            0,
            "{cmd}"
        );
        let d = c.cmd(&format!("{cmd} {k} {params} COST 0 AT {T0}")).ints();
        assert_eq!(d, vec![1, 5, 5, 0, 0], "{cmd} is empty again");
        // Empty, it expires a millisecond later: gone (-2) by now, or soon.
        let ttl_empty = c.cmd(&format!("PEXPIRETIME {k}")).int();
        assert!(
            ttl_empty == -2 || (0..=ttl_after).contains(&ttl_empty),
            "{cmd}"
        );
    }
    // A refund never creates a key, and answers 0.
    assert_eq!(c.cmd("RL.REFUND nothing 5").int(), 0);
    assert_eq!(c.cmd("EXISTS nothing").int(), 0);
    assert_eq!(c.cmd("RL.REFUND nothing 0").int(), 0);
    // Not into a closed window.
    c.cmd(&format!("RL.FIXED w 5 1s COST 2 AT {T0}"));
    assert_eq!(c.cmd(&format!("RL.REFUND w 1 AT {}", T0 + 1000)).int(), 0);
    assert_eq!(c.cmd(&format!("RL.REFUND w 1 AT {}", T0 + 999)).int(), 1);
    // The counters.
    let info = c.cmd("INFO ratelimit");
    assert_eq!(info.info_int("ratelimit_refunds"), 13);
    assert_eq!(info.info_int("ratelimit_refunded_units"), 19);
}

#[test]
fn refund_errors_are_precise() {
    let s = Server::start();
    let mut c = s.client();
    c.cmd("SET str x");
    for (line, want) in [
        (
            "RL.REFUND",
            "ERR wrong number of arguments for 'RL.REFUND' command",
        ),
        (
            "RL.REFUND k",
            "ERR wrong number of arguments for 'RL.REFUND' command",
        ),
        (
            "RL.REFUND k x",
            "ERR n must be a non-negative integer, got 'x'",
        ),
        ("RL.REFUND k -1", "ERR n must not be negative"),
        (
            "RL.REFUND k 1 COST 1",
            "ERR unknown option 'COST' (expected AT)",
        ),
        ("RL.REFUND k 1 AT", "ERR AT needs a value"),
        (
            "RL.REFUND k 1 AT -5",
            "ERR AT must be between 0 and 253402300799999",
        ),
        (
            "RL.REFUND str 1",
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (
            "RL.FIXED k 1 1s PENALTY 0",
            "ERR PENALTY must be greater than 0",
        ),
        (
            "RL.FIXED k 1 1s PENALTY 1x",
            "ERR PENALTY has an unknown unit 'x' (use us, ms, s, m, h or d)",
        ),
        (
            "RL.PEEK k FIXED 1 1s PENALTY 1s",
            "ERR unknown option 'PENALTY' (expected COST or AT)",
        ),
        (
            "RL.ALL 1 k FIXED 1 1s PENALTY 1s PENALTY 2s",
            "ERR PENALTY given more than once",
        ),
    ] {
        assert_eq!(c.cmd(line).err(), want, "{line}");
    }
    assert_eq!(c.cmd("EXISTS k").int(), 0);
}
