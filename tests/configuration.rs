//! Module configuration: load-time arguments, `CONFIG SET`, raised settings.
//!
//! Good and bad values, and raised settings that survive a restart and
//! reach a replica whose own are lower.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{allowed, free_port, ratelimit_stat, snapshot, start_replica, sync, Server, Value};

/// Starts redis-server with `module_args` on the loadmodule line and expects
/// it to refuse: returns what it logged.
fn refused(module_args: &[&str], config_lines: &str) -> String {
    let dir =
        std::env::temp_dir().join(format!("rl-refuse-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("redis.conf");
    let module = common::module_path();
    std::fs::write(
        &conf,
        format!(
            "port {}\nbind 127.0.0.1\nsave \"\"\nloadmodule {} {}\n{config_lines}\n",
            free_port(),
            module.display(),
            module_args.join(" ")
        ),
    )
    .unwrap();
    let mut child = Command::new(common::redis_server_binary())
        .arg(&conf)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A refusal exits within milliseconds; the deadline only stops a server
    // that wrongly accepted, so it can be generous for a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("redis-server accepted {module_args:?} {config_lines:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut log = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        log.push_str(&line.unwrap());
        log.push('\n');
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!status.success());
    log
}

#[test]
fn configuration_good_and_bad() {
    let s = Server::start_with(&["log-max", "20", "cell-compat", "no"]);
    let mut c = s.client();
    assert_eq!(
        c.cmd("RL.LOG l 21 1s"),
        Value::Error(
            "ERR limit is too large for RL.LOG (at most 20, see ratelimit.log-max)".into()
        )
    );
    assert_eq!(c.cmd("RL.LOG l 20 1s").ints()[0], 1);
    assert_eq!(
        c.cmd("CONFIG GET ratelimit.log-max"),
        Value::Array(vec![
            Value::Bulk(b"ratelimit.log-max".to_vec()),
            Value::Bulk(b"20".to_vec())
        ])
    );
    assert_eq!(
        c.cmd("CONFIG SET ratelimit.log-max 50"),
        Value::Simple("OK".into())
    );
    assert_eq!(c.cmd("RL.LOG l2 50 1s").ints()[0], 1);
    assert!(c.cmd("CONFIG SET ratelimit.log-max 0").is_error());
    assert!(c.cmd("CONFIG SET ratelimit.log-max 1000001").is_error());
    assert!(c.cmd("CONFIG SET ratelimit.cell-compat yes").is_error());
    // Compact replication ops: off unless asked for, and can be turned on
    // and off at run time (INFO says which).
    assert_eq!(
        c.cmd("CONFIG GET ratelimit.compact-ops"),
        Value::Array(vec![
            Value::Bulk(b"ratelimit.compact-ops".to_vec()),
            Value::Bulk(b"no".to_vec())
        ])
    );
    assert_eq!(c.cmd("INFO ratelimit").info_int("ratelimit_compact_ops"), 0);
    assert_eq!(c.cmd("CONFIG SET ratelimit.compact-ops yes").text(), "OK");
    assert_eq!(c.cmd("INFO ratelimit").info_int("ratelimit_compact_ops"), 1);
    assert!(c.cmd("CONFIG SET ratelimit.compact-ops maybe").is_error());
    assert_eq!(c.cmd("CONFIG SET ratelimit.compact-ops no").text(), "OK");
    assert!(c
        .cmd("CL.THROTTLE k 1 1 1")
        .err()
        .contains("unknown command"));
    drop(s);

    let cases: [(&[&str], &str, &str); 7] = [
        (
            &["log-max", "0"],
            "",
            "not loading: log-max must be greater than 0",
        ),
        (
            &["log-max", "ten"],
            "",
            "not loading: log-max must be a positive integer, got 'ten'",
        ),
        (
            &["log-max", "2000000"],
            "",
            "not loading: log-max is too large (at most 1000000)",
        ),
        (
            &["cell-compat", "maybe"],
            "",
            "not loading: cell-compat must be yes or no, got 'maybe'",
        ),
        (
            &["speed", "9"],
            "",
            "not loading: unknown module argument 'speed'",
        ),
        (
            &["log-max"],
            "",
            "not loading: module arguments come in 'name value' pairs",
        ),
        (&[], "ratelimit.log-max 0", "ratelimit.log-max"),
    ];
    for (args, conf, want) in cases {
        let log = refused(args, conf);
        assert!(
            log.contains(want),
            "{args:?} {conf:?}: expected '{want}' in\n{log}"
        );
    }
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
    assert_eq!(ratelimit_stat(&mut c, "lease_max"), 10_000);
    assert_eq!(ratelimit_stat(&mut c, "replay_errors"), 0);
    assert_eq!(ratelimit_stat(&mut c, "replayed_above_settings"), 2);
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
    assert_eq!(ratelimit_stat(&mut r, "replay_errors"), 0);
    assert_eq!(ratelimit_stat(&mut r, "replayed_above_settings"), 2);
    let keys = ["jobs".to_string(), "logk".to_string()];
    assert_eq!(snapshot(&mut m, &keys), snapshot(&mut r, &keys));
    assert_eq!(common::rl_info_field(&mut r, "logk", "entries"), 14_000);
    // Above the hard ceiling is still refused (the codec's bound).
    assert!(replica.log().contains("ratelimit.lease-max of 10000"));
}
