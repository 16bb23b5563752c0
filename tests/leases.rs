//! Concurrency leases (`RL.ACQUIRE`, `RL.RELEASE`, `RL.RENEW`).
//!
//! Work in flight capped, leases that expire by themselves, racing clients,
//! precise errors, and replicas that replay leases at the master's pace.

mod common;

use common::{
    allowed, commandstat, lease, pipeline, ratelimit_stat, rl_info_field, snapshot, start_replica,
    sync, usec_per_call, Client, Server, T1,
};

#[test]
fn leases_cap_work_in_flight_and_expire_by_themselves() {
    let s = Server::start();
    let mut c = s.client();
    let at = |ms: i64| format!("AT {}", T1 + ms);
    // Two slots; the server makes up ids unless given.
    let (d, a) = lease(&mut c, &format!("RL.ACQUIRE jobs 2 30s {}", at(0)));
    assert_eq!(d, vec![1, 2, 1, 0, 30_000]);
    let a = a.unwrap();
    assert_eq!(a.len(), 32);
    let (d, b) = lease(&mut c, &format!("RL.ACQUIRE jobs 2 30s ID w2 {}", at(1000)));
    assert_eq!((d, b.as_deref()), (vec![1, 2, 0, 0, 30_000], Some("w2")));
    // Full: denied, told when the first lease ends, no id.
    let (d, none) = lease(&mut c, &format!("RL.ACQUIRE jobs 2 30s {}", at(2000)));
    assert_eq!((d, none), (vec![0, 2, 0, 28_000, 29_000], None));
    // The same id again renews its lease instead of taking a slot.
    let (d, b) = lease(&mut c, &format!("RL.ACQUIRE jobs 2 30s ID w2 {}", at(2000)));
    assert_eq!((d, b.as_deref()), (vec![1, 2, 0, 0, 30_000], Some("w2")));
    assert_eq!(c.cmd("PEXPIRETIME jobs").int(), T1 + 32_000);
    assert_eq!(rl_info_field(&mut c, "jobs", "leases"), 2);
    assert_eq!(rl_info_field(&mut c, "jobs", "held"), 2);
    // Release frees a slot once; unknown ids free nothing.
    assert_eq!(c.cmd(&format!("RL.RELEASE jobs {a}")).int(), 1);
    assert_eq!(c.cmd(&format!("RL.RELEASE jobs {a}")).int(), 0);
    assert_eq!(c.cmd("RL.RELEASE jobs nobody").int(), 0);
    assert_eq!(c.cmd("RL.RELEASE missing w2").int(), 0);
    assert_eq!(c.cmd("RL.RENEW missing w2 1s").int(), 0);
    let (d, _) = lease(&mut c, &format!("RL.ACQUIRE jobs 2 10s ID w3 {}", at(2000)));
    assert_eq!(d[..3], [1, 2, 0]);
    // Renew moves one lease's end; the key lives as long as the last.
    assert_eq!(c.cmd("RL.RENEW jobs w3 1h").int(), 1);
    assert_eq!(c.cmd("PEXPIRETIME jobs").int(), T1 + 2000 + 3_600_000);
    // A crashed worker's lease expires by itself: at w2's end its slot is
    // free again (AT moves the limiter's clock).
    let (d, _) = lease(
        &mut c,
        &format!("RL.ACQUIRE jobs 2 1s ID w4 {}", at(32_000)),
    );
    assert_eq!(d[..3], [1, 2, 0]);
    assert_eq!(c.cmd("RL.RELEASE jobs w2").int(), 0, "w2 has expired");
    // COST takes several slots; more than the limit can never pass.
    let (d, _) = lease(&mut c, &format!("RL.ACQUIRE big 5 1m COST 3 {}", at(0)));
    assert_eq!(d[..3], [1, 5, 2]);
    let (d, _) = lease(&mut c, &format!("RL.ACQUIRE big 5 1m COST 3 {}", at(0)));
    assert_eq!(d, vec![0, 5, 2, 60_000, 60_000]);
    let (d, _) = lease(&mut c, &format!("RL.ACQUIRE big 5 1m COST 6 {}", at(0)));
    assert_eq!(d[3], -1);
    // Releasing the last lease deletes the key.
    let (_, id) = lease(&mut c, "RL.ACQUIRE once 1 1h");
    assert_eq!(c.cmd(&format!("RL.RELEASE once {}", id.unwrap())).int(), 1);
    assert_eq!(c.cmd("EXISTS once").int(), 0);
    let info = c.cmd("INFO ratelimit");
    // a, w2 twice (the renewal counts), w3, w4, big, once.
    assert_eq!(info.info_int("ratelimit_leases_acquired"), 7);
    assert_eq!(info.info_int("ratelimit_leases_denied"), 3);
    assert_eq!(info.info_int("ratelimit_leases_released"), 2);
    assert_eq!(info.info_int("ratelimit_leases_renewed"), 1);
}

#[test]
fn lease_errors_are_precise_and_lease_max_bounds_memory() {
    let s = Server::start();
    let mut c = s.client();
    c.cmd("SET str x");
    c.cmd("RL.FIXED lim 5 1m");
    c.cmd("RL.ACQUIRE sem 5 1m ID a");
    for (line, want) in [
        ("RL.ACQUIRE k 5", "ERR wrong number of arguments for 'RL.ACQUIRE' command"),
        ("RL.ACQUIRE k 0 1s", "ERR limit must be greater than 0"),
        (
            "RL.ACQUIRE k 10001 1s",
            "ERR limit is too large for RL.ACQUIRE (at most 10000, see ratelimit.lease-max)",
        ),
        ("RL.ACQUIRE k 5 0", "ERR ttl must be greater than 0"),
        ("RL.ACQUIRE k 5 1s ID", "ERR ID needs a value"),
        ("RL.ACQUIRE k 5 1s ID a ID b", "ERR ID given more than once"),
        ("RL.ACQUIRE k 5 1s PENALTY 1s", "ERR unknown option 'PENALTY' (expected ID, COST or AT)"),
        ("RL.RELEASE k", "ERR wrong number of arguments for 'RL.RELEASE' command"),
        ("RL.RENEW k a", "ERR wrong number of arguments for 'RL.RENEW' command"),
        ("RL.RENEW k a 0", "ERR ttl must be greater than 0"),
        ("RL.RENEW k a 1s COST 1", "ERR unknown option 'COST' (expected AT)"),
        ("RL.RELEASE k a x", "ERR unknown option 'x' (expected AT)"),
        ("RL.RELEASE k a AT", "ERR AT needs a value"),
        ("RL.ACQUIRE lim 5 1s", "ERR the key holds a FIXED limiter, not concurrency leases: use another key, or DEL it"),
        ("RL.RELEASE lim a", "ERR the key holds a FIXED limiter, not concurrency leases: use another key, or DEL it"),
        ("RL.FIXED sem 5 1m", "ERR the key holds concurrency leases, not a FIXED limiter: use another key, or DEL it"),
        ("RL.ALL 1 sem TOKEN 5 1 1s", "ERR the key holds concurrency leases, not a TOKEN limiter: use another key, or DEL it"),
        ("RL.PEEK sem FIXED 5 1m", "ERR the key holds concurrency leases, not a FIXED limiter: use another key, or DEL it"),
        ("RL.REFUND sem 1", "ERR the key holds concurrency leases, which RL.REFUND does not apply to: use another key"),
        ("RL.ACQUIRE str 5 1s", "WRONGTYPE Operation against a key holding the wrong kind of value"),
    ] {
        assert_eq!(c.cmd(line).err(), want, "{line}");
    }
    let long = "x".repeat(65);
    assert_eq!(
        c.cmd(&format!("RL.ACQUIRE k 5 1s ID {long}")).err(),
        "ERR lease_id must be 1 to 64 bytes"
    );
    assert_eq!(c.cmd("EXISTS k").int(), 0);
    // lease-max is a live setting.
    assert_eq!(c.cmd("CONFIG SET ratelimit.lease-max 3").text(), "OK");
    assert!(c.cmd("RL.ACQUIRE k 4 1s").err().contains("at most 3"));
    assert_eq!(c.cmd("INFO ratelimit").info_int("ratelimit_lease_max"), 3);
    // Memory: a full key of 1,000 leases with 32-byte ids: 32 bytes a
    // lease, its id, and a slot of the id index (12 bytes and a control
    // byte, in a table at most 7/8 full), 87 in all.
    assert_eq!(c.cmd("CONFIG SET ratelimit.lease-max 10000").text(), "OK");
    for _ in 0..1000 {
        assert!(!c.cmd("RL.ACQUIRE mem 1000 1h").is_error());
    }
    let per_lease = c.cmd("MEMORY USAGE mem").int() / 1000;
    assert!(
        (40..=88).contains(&per_lease),
        "{per_lease} bytes per lease"
    );
}

/// `RL.RENEW` and `RL.RELEASE` at a time of the caller's (`AT`), as
/// `RL.ACQUIRE`: a lease renewed on that clock outlives its first ttl there,
/// and is no longer held once that clock passes its end.
#[test]
fn renew_and_release_decide_at_the_callers_time() {
    let s = Server::start();
    let mut c = s.client();
    let at = |ms: i64| format!("AT {}", T1 + ms);
    let (d, _) = lease(&mut c, &format!("RL.ACQUIRE sem 1 300ms ID w {}", at(0)));
    assert_eq!(d[0], 1, "{d:?}");
    // Renewed every 100 ms of that clock: held at 900 ms, three ttls on.
    for ms in [100, 200, 300, 400, 500, 600, 700, 800, 900] {
        assert_eq!(
            c.cmd(&format!("RL.RENEW sem w 300ms {}", at(ms))).int(),
            1,
            "{ms}"
        );
    }
    assert_eq!(c.cmd("PEXPIRETIME sem").int(), T1 + 1200);
    let (d, _) = lease(&mut c, &format!("RL.ACQUIRE sem 1 300ms ID v {}", at(1000)));
    assert_eq!(d[0], 0, "the slot is still held: {d:?}");
    // Past its end on that clock, it is not held: not renewed, not released.
    assert_eq!(
        c.cmd(&format!("RL.RENEW sem w 300ms {}", at(1200))).int(),
        0
    );
    assert_eq!(c.cmd(&format!("RL.RELEASE sem w {}", at(1200))).int(), 0);
    let (d, _) = lease(&mut c, &format!("RL.ACQUIRE sem 1 300ms ID w {}", at(1300)));
    assert_eq!(d[0], 1, "{d:?}");
    assert_eq!(c.cmd(&format!("RL.RELEASE sem w {}", at(1400))).int(), 1);
    assert_eq!(c.cmd("EXISTS sem").int(), 0);
}

/// 50 clients racing for 10 slots get exactly 10 leases.
#[test]
fn racing_clients_get_exactly_the_limit() {
    let s = Server::start();
    let port = s.port;
    let threads: Vec<_> = (0..50)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Client::connect(port).unwrap();
                let (d, id) = lease(&mut c, "RL.ACQUIRE race 10 1h");
                assert_eq!(d[0] == 1, id.is_some());
                id
            })
        })
        .collect();
    let ids: Vec<String> = threads
        .into_iter()
        .filter_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(ids.len(), 10);
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 10, "ids are unique");
    let mut c = s.client();
    assert_eq!(rl_info_field(&mut c, "race", "held"), 10);
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
    assert_eq!(ratelimit_stat(&mut r, "replay_errors"), 0);
    assert_eq!(commandstat(&mut r, "rl.apply"), 4000);
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
