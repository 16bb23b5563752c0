//! Policies are server state, not keys: an AOF rewrite must keep them in
//! every configuration, whatever starts it (BGREWRITEAOF, the automatic
//! rewrite, turning the AOF on), including while writes are paused, and
//! without sending anything to replicas.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Client, Server, Value};

/// A time ahead of the wall clock (2096), so `AT` calls decide there.
const T1: i64 = 4_000_000_000_000;

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
        let p = persistence(c);
        p.info_int("aof_rewrite_in_progress") == 0
            && p.info_int("aof_rewrite_scheduled") == 0
            && p.info_int("aof_rewrites") >= at_least
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
