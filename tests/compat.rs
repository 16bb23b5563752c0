//! Compatibility: the RDB, AOF and replication stream of every release load.
//!
//! Data written by released versions still loads: the fixtures in
//! `tests/fixtures/v<version>/` (an RDB file, an AOF directory without the
//! RDB preamble, and a replication stream, all written by that release on
//! Redis 7.0) are loaded by the module under test, and every key must show
//! what `expected.txt` recorded when that release wrote it: the same
//! digest, the same absolute expiry, the same `RL.INFO` state and the same
//! answers to peeks at fixed instants. Each test runs once per release
//! ([`RELEASES`]): 0.1.0, and 0.2.0 (whose AOF and stream hold
//! `RL.APPLYALL`).

mod common;

use std::path::{Path, PathBuf};

use common::{Client, FakeMaster, Server, Value};

/// Every release whose fixtures are in `tests/fixtures/v<version>/`; each
/// has a test per fixture below.
const RELEASES: [&str; 2] = ["0.1.0", "0.2.0"];

fn fixtures(version: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/v{version}"))
}

/// One check `expected.txt` makes on a key.
#[derive(Debug)]
enum Check {
    Type(String),
    Get(String),
    Digest(String),
    PExpireTime(i64),
    /// An `RL.INFO` field that does not depend on the clock.
    Info(String, String),
    /// A `COST 0 AT ...` command and its five integers.
    Peek(String, Vec<i64>),
}

#[derive(Debug, Default)]
struct Fixture {
    /// The release that wrote it.
    version: String,
    name: String,
    dbsize: i64,
    limiters: i64,
    replid: Option<String>,
    keys: Vec<(String, Vec<Check>)>,
}

/// Parses a release's `expected.txt` (its format is described in the
/// fixtures' README).
fn expected(version: &str) -> Vec<Fixture> {
    let path = fixtures(version).join("expected.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out: Vec<Fixture> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let bad = || -> ! { panic!("{}:{}: cannot read {raw:?}", path.display(), n + 1) };
        let int = |s: &str| s.parse::<i64>().unwrap_or_else(|_| bad());
        if word == "fixture" {
            out.push(Fixture {
                version: version.to_string(),
                name: rest.to_string(),
                ..Fixture::default()
            });
            continue;
        }
        let fixture = out.last_mut().unwrap_or_else(|| bad());
        match word {
            "dbsize" => fixture.dbsize = int(rest),
            "limiters" => fixture.limiters = int(rest),
            "replid" => fixture.replid = Some(rest.to_string()),
            "key" => fixture.keys.push((rest.to_string(), Vec::new())),
            _ => {
                let checks = &mut fixture.keys.last_mut().unwrap_or_else(|| bad()).1;
                checks.push(match word {
                    "type" => Check::Type(rest.to_string()),
                    "get" => Check::Get(rest.to_string()),
                    "digest" => Check::Digest(rest.to_string()),
                    "pexpiretime" => Check::PExpireTime(int(rest)),
                    "info" => {
                        let (name, value) = rest.split_once(' ').unwrap_or_else(|| bad());
                        Check::Info(name.to_string(), value.to_string())
                    }
                    "peek" => {
                        let (cmd, reply) = rest.split_once(" => ").unwrap_or_else(|| bad());
                        Check::Peek(cmd.to_string(), reply.split(' ').map(int).collect())
                    }
                    _ => bad(),
                });
            }
        }
    }
    out
}

fn fixture(version: &str, name: &str) -> Fixture {
    let f = expected(version)
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no fixture {name} in v{version}/expected.txt"));
    assert!(
        f.keys.len() > 10,
        "v{version} {name}: too few keys in expected.txt"
    );
    f
}

/// A reply as the text `expected.txt` holds.
fn as_text(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Bulk(_) | Value::Simple(_) => v.text(),
        other => format!("{other:?}"),
    }
}

/// Checks every key of `f` on the server; peeks are writes as far as a
/// replica is concerned (it refuses them), so they can be left out.
/// Collects every difference before failing, so one run shows them all.
fn check(c: &mut Client, f: &Fixture, peeks: bool) {
    let mut wrong = Vec::new();
    let dbsize = c.cmd("DBSIZE").int();
    if dbsize != f.dbsize {
        wrong.push(format!("DBSIZE is {dbsize}, not {}", f.dbsize));
    }
    let limiters = c.cmd("INFO ratelimit").info_int("ratelimit_keys");
    if limiters != f.limiters {
        wrong.push(format!("ratelimit_keys is {limiters}, not {}", f.limiters));
    }
    let mut checked = 0;
    for (key, checks) in &f.keys {
        let info = if checks.iter().any(|c| matches!(c, Check::Info(..))) {
            c.call(&args!["RL.INFO", key.as_str()])
        } else {
            Value::Null
        };
        for check in checks {
            let (what, want, got) = match check {
                Check::Type(t) => (
                    "TYPE",
                    t.clone(),
                    as_text(&c.call(&args!["TYPE", key.as_str()])),
                ),
                Check::Get(v) => (
                    "GET",
                    v.clone(),
                    as_text(&c.call(&args!["GET", key.as_str()])),
                ),
                Check::Digest(d) => {
                    let got = match c.call(&args!["DEBUG", "DIGEST-VALUE", key.as_str()]) {
                        Value::Array(items) if items.len() == 1 => as_text(&items[0]),
                        other => as_text(&other),
                    };
                    ("DEBUG DIGEST-VALUE", d.clone(), got)
                }
                Check::PExpireTime(t) => (
                    "PEXPIRETIME",
                    t.to_string(),
                    as_text(&c.call(&args!["PEXPIRETIME", key.as_str()])),
                ),
                Check::Info(name, value) => {
                    // The fields listed, each on its own: a later version
                    // may add fields to RL.INFO.
                    let got = match &info {
                        Value::Array(items) => items
                            .chunks(2)
                            .find(|kv| kv[0] == Value::Bulk(name.as_bytes().to_vec()))
                            .map(|kv| as_text(&kv[1]))
                            .unwrap_or_else(|| "(missing)".into()),
                        other => format!("{other:?}"),
                    };
                    (
                        "RL.INFO",
                        format!("{name} {value}"),
                        format!("{name} {got}"),
                    )
                }
                Check::Peek(cmd, reply) => {
                    if !peeks {
                        continue;
                    }
                    let got = match c.cmd(cmd) {
                        Value::Array(items) => {
                            format!("{:?}", items.iter().map(as_text).collect::<Vec<_>>())
                        }
                        other => format!("{other:?}"),
                    };
                    let want =
                        format!("{:?}", reply.iter().map(i64::to_string).collect::<Vec<_>>());
                    (
                        "peek",
                        format!("{cmd} => {want}"),
                        format!("{cmd} => {got}"),
                    )
                }
            };
            checked += 1;
            if want != got {
                wrong.push(format!("{key}: {what}: expected {want}, got {got}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "fixture {}: {} of {checked} checks differ from what {} wrote:\n  {}",
        f.name,
        wrong.len(),
        f.version,
        wrong.join("\n  ")
    );
}

/// The server log must show no value refused and no crash.
fn assert_clean_log(s: &Server) {
    let log = s.log();
    for needle in [
        "refusing",
        "ratelimit:",
        "BUG REPORT",
        "Bad data format",
        "Bad file format",
        "Short read",
        "Unrecoverable",
    ] {
        assert!(!log.contains(needle), "the log says {needle:?}:\n{log}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A server started with `extra` on the files `prepare` puts in its
/// directory: started once (which makes the directory and finds a port),
/// stopped, emptied, filled, and started again to load them.
fn server_on(extra: &[&str], prepare: impl FnOnce(&Path)) -> Server {
    let mut s = Server::start_with(extra);
    s.stop();
    for entry in std::fs::read_dir(&s.dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
    prepare(&s.dir);
    assert!(s.start_again(), "did not load the fixture: {}", s.log());
    s
}

/// `dump.rdb` loads at startup.
fn rdb_loads_exactly(version: &str) {
    let f = fixture(version, "dump.rdb");
    let s = server_on(&[], |dir| {
        std::fs::copy(fixtures(version).join("dump.rdb"), dir.join("dump.rdb")).unwrap();
    });
    assert!(s.log().contains("DB loaded from disk"), "{}", s.log());
    check(&mut s.client(), &f, true);
    assert_clean_log(&s);
}

/// `appendonlydir/` (base and incr files) loads at startup.
fn aof_loads_exactly(version: &str) {
    let f = fixture(version, "appendonlydir");
    let s = server_on(&["--appendonly", "yes"], |dir| {
        copy_dir(
            &fixtures(version).join("appendonlydir"),
            &dir.join("appendonlydir"),
        );
    });
    let log = s.log();
    assert!(
        log.contains("appendonly.aof.2.base.aof") && log.contains("appendonly.aof.2.incr.aof"),
        "the fixture's base and incr files were not both loaded:\n{log}"
    );
    check(&mut s.client(), &f, true);
    assert_clean_log(&s);
}

/// A replica fed `repl.rdb` and `repl.stream` by a fake master.
fn replica_applies(version: &str) {
    let f = fixture(version, "repl");
    let replid = f.replid.clone().expect("a replid in expected.txt");
    let rdb = std::fs::read(fixtures(version).join("repl.rdb")).unwrap();
    let stream = std::fs::read(fixtures(version).join("repl.stream")).unwrap();

    // The fake master: answers the handshake as a master of that release
    // on Redis 7.0 did, then sends what that master sent.
    let replica = Server::start();
    let mut c = replica.client();
    let master = FakeMaster::feed(&replica, &replid, &rdb, &stream);
    let handshake = master.handshake.clone();
    assert!(
        handshake.last().is_some_and(|h| h.starts_with("PSYNC")),
        "{handshake:?}"
    );
    check(&mut c, &f, false);

    // Peeks are refused on a replica: promote it, which closes the link.
    master.detach(&mut c);
    check(&mut c, &f, true);
    let log = replica.log();
    // (Valkey says PRIMARY.)
    assert!(
        log.contains("MASTER <-> REPLICA sync: Finished with success")
            || log.contains("PRIMARY <-> REPLICA sync: Finished with success"),
        "{log}"
    );
    assert_clean_log(&replica);
}

#[test]
fn an_rdb_written_by_0_1_0_loads_exactly() {
    rdb_loads_exactly("0.1.0");
}

#[test]
fn an_aof_written_by_0_1_0_loads_exactly() {
    aof_loads_exactly("0.1.0");
}

#[test]
fn a_replica_applies_what_a_0_1_0_master_sent() {
    replica_applies("0.1.0");
}

#[test]
fn an_rdb_written_by_0_2_0_loads_exactly() {
    rdb_loads_exactly("0.2.0");
}

#[test]
fn an_aof_written_by_0_2_0_loads_exactly() {
    aof_loads_exactly("0.2.0");
}

#[test]
fn a_replica_applies_what_a_0_2_0_master_sent() {
    replica_applies("0.2.0");
}

/// Every folder in `tests/fixtures/` is a release in [`RELEASES`], and each
/// of those has its three fixtures: none is left untested.
#[test]
fn every_release_with_fixtures_is_tested() {
    let mut folders: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
    folders.sort();
    let mut releases: Vec<String> = RELEASES.iter().map(|v| format!("v{v}")).collect();
    releases.sort();
    assert_eq!(folders, releases);
    for version in RELEASES {
        let names: Vec<String> = expected(version).into_iter().map(|f| f.name).collect();
        assert_eq!(names, ["dump.rdb", "appendonlydir", "repl"], "v{version}");
    }
}
