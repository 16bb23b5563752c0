//! Persistence: RDB, AOF (fsync always, rewrite), reload and keyspace operations.
//!
//! Every limiter is kept exactly, expiry included; corrupt data is refused
//! cleanly.

mod common;

use std::time::Duration;

use common::{aof_rewrite_idle, wait_until, Client, Server, Value, T0};

/// Every key's exact bytes and absolute expiry.
fn snapshot(c: &mut Client) -> Vec<(String, Value, Value)> {
    let keys = common::keys(c);
    assert!(!keys.is_empty());
    common::snapshot(c, &keys)
}

fn workload(c: &mut Client, tag: &str) {
    for i in 0..15 {
        let cost = 1 + i % 3;
        for line in [
            format!("RL.FIXED {tag}f 20 1h COST {cost}"),
            format!("RL.SLIDING {tag}s 20 1h COST {cost}"),
            format!("RL.LOG {tag}l 20 1h COST {cost}"),
            format!("RL.TOKEN {tag}t 20 1 1m COST {cost}"),
            format!("RL.LEAKY {tag}k 20 1 1m COST {cost}"),
            format!("RL.GCRA {tag}g 9 1 1m COST {cost}"),
            format!("RL.ALL 2 {{{tag}}}:a {{{tag}}}:b LOG 8 1h TOKEN 9 1 1h"),
        ] {
            assert!(matches!(c.cmd(&line), Value::Array(_)), "{line}");
        }
    }
}

#[test]
fn rdb_save_restart_and_debug_reload() {
    let mut s = Server::start();
    let mut c = s.client();
    workload(&mut c, "a");
    let before = snapshot(&mut c);
    assert_eq!(c.cmd("SAVE"), Value::Simple("OK".into()));
    s.restart();
    let mut c = s.client();
    assert_eq!(snapshot(&mut c), before, "changed by SAVE + restart");
    assert_eq!(c.cmd("DEBUG RELOAD"), Value::Simple("OK".into()));
    assert_eq!(snapshot(&mut c), before, "changed by DEBUG RELOAD");
    // And it keeps deciding from where it was.
    assert_eq!(c.cmd("RL.FIXED af 20 1h COST 0").ints()[2], 0);
}

#[test]
fn aof_always_then_rewrite_then_restart() {
    // Without the RDB preamble the rewrite goes through the type's own
    // AOF callback (RL.SETSTATE); with it, through the RDB encoding.
    for preamble in ["no", "yes"] {
        let mut s = Server::start_with(&[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--aof-use-rdb-preamble",
            preamble,
        ]);
        let mut c = s.client();
        workload(&mut c, "b");
        let before = snapshot(&mut c);
        s.restart();
        let mut c = s.client();
        assert_eq!(snapshot(&mut c), before, "AOF replay changed state");

        assert!(c.cmd("BGREWRITEAOF").text().contains("rewriting"));
        wait_until("the AOF rewrite ends", Duration::from_secs(60), || {
            aof_rewrite_idle(&mut c)
        });
        workload(&mut c, "c");
        let before = snapshot(&mut c);
        s.restart();
        let mut c = s.client();
        assert_eq!(
            snapshot(&mut c),
            before,
            "rewrite + replay changed state (preamble {preamble})"
        );
        if preamble == "no" {
            let dir = s.dir.join("appendonlydir");
            let base = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.to_string_lossy().contains(".base."))
                .expect("a base AOF file");
            let text = std::fs::read(&base).unwrap();
            let needle = b"RL.SETSTATE";
            assert!(
                text.windows(needle.len()).any(|w| w == needle),
                "the rewrite did not use RL.SETSTATE"
            );
        }
    }
}

#[test]
fn keyspace_operations_keep_the_state() {
    let s = Server::start();
    let mut c = s.client();
    workload(&mut c, "d");
    let digest = |c: &mut Client, k: &str| c.call(&args!["DEBUG", "DIGEST-VALUE", k]);
    let original = digest(&mut c, "dl");

    let Value::Bulk(dump) = c.cmd("DUMP dl") else {
        panic!()
    };
    // The digest covers whether a key has an expiry: restore it with the
    // same absolute one.
    let at = c.cmd("PEXPIRETIME dl").int().to_string();
    assert_eq!(
        c.call(&args![
            "RESTORE",
            "restored",
            at.as_str(),
            dump.clone(),
            "ABSTTL"
        ]),
        Value::Simple("OK".into())
    );
    assert_eq!(digest(&mut c, "restored"), original);
    assert_eq!(c.cmd("PEXPIRETIME restored").int().to_string(), at);
    assert_eq!(c.cmd("COPY dl copied").int(), 1);
    assert_eq!(digest(&mut c, "copied"), original);
    assert_eq!(c.cmd("RENAME copied renamed"), Value::Simple("OK".into()));
    assert_eq!(digest(&mut c, "renamed"), original);
    let ttl = c.cmd("PEXPIRETIME renamed");
    assert_eq!(c.cmd("MOVE renamed 1").int(), 1);
    c.cmd("SELECT 1");
    assert_eq!(digest(&mut c, "renamed"), original);
    assert_eq!(c.cmd("PEXPIRETIME renamed"), ttl, "MOVE lost the expiry");
    assert_eq!(c.cmd("TYPE renamed"), Value::Simple("ratelimit".into()));
    // A moved limiter keeps limiting.
    assert_eq!(c.cmd("RL.LOG renamed 20 1h COST 0").ints()[2], 0);
}

/// Redis' CRC-64 (Jones polynomial, reflected), as in DUMP payloads.
fn crc64(data: &[u8]) -> u64 {
    let mut crc = 0u64;
    for &b in data {
        crc ^= b as u64;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x95ac_9329_ac4b_c9b5
            } else {
                crc >> 1
            };
        }
    }
    crc
}

#[test]
fn corrupt_or_newer_payloads_are_refused() {
    let s = Server::start();
    let mut c = s.client();
    c.cmd("RL.TOKEN src 10 1 1m");
    let Value::Bulk(dump) = c.cmd("DUMP src") else {
        panic!()
    };
    // The layout: module type byte, 64-bit module id (name + encoding
    // version in its low 10 bits), the value, RDB version, CRC-64.
    let body = &dump[..dump.len() - 8];
    assert_eq!(
        crc64(body).to_le_bytes(),
        dump[dump.len() - 8..],
        "CRC model"
    );
    assert_eq!(dump[1], 0x81, "64-bit length marker before the module id");
    let id = u64::from_be_bytes(dump[2..10].try_into().unwrap());
    assert_eq!(id & 0x3ff, 2, "our encoding version");

    // A payload from a future version of the module: a clear error.
    let mut newer = body.to_vec();
    newer[2..10].copy_from_slice(&((id & !0x3ff) | 3).to_be_bytes());
    newer.extend_from_slice(&crc64(&newer).to_le_bytes());
    let reply = c.call(&args!["RESTORE", "newer", "0", newer]);
    assert!(reply.err().contains("Bad data format"), "{reply:?}");

    // Damaged bytes with a valid checksum reach our decoder: refused.
    for i in 10..body.len() {
        let mut bad = body.to_vec();
        bad[i] ^= 0xff;
        bad.extend_from_slice(&crc64(&bad).to_le_bytes());
        let reply = c.call(&args!["RESTORE", "bad", "0", bad]);
        if !reply.is_error() {
            // Some flips still decode to a valid limiter; it must then be
            // a usable one.
            assert!(matches!(c.cmd("RL.INFO bad"), Value::Array(_)));
            c.cmd("DEL bad");
        }
    }
    // Truncated payloads.
    for n in [1, 9, 12, body.len() - 1] {
        let mut cut = body[..n].to_vec();
        cut.extend_from_slice(&crc64(&cut).to_le_bytes());
        assert!(c.call(&args!["RESTORE", "cut", "0", cut]).is_error());
    }
    assert_eq!(c.cmd("PING"), Value::Simple("PONG".into()));
    assert!(!s.log().contains("BUG REPORT"), "{}", s.log());
}

#[test]
fn a_truncated_aof_is_an_error_not_a_crash() {
    for load_truncated in ["yes", "no"] {
        let mut s = Server::start_with(&[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--aof-load-truncated",
            load_truncated,
        ]);
        let mut c = s.client();
        workload(&mut c, "e");
        c.cmd("RL.FIXED last 5 1h");
        s.stop();
        let dir = s.dir.join("appendonlydir");
        let incr = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(".incr.aof"))
            .expect("an incremental AOF file");
        let len = std::fs::metadata(&incr).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&incr).unwrap();
        f.set_len(len - 7).unwrap();
        drop(f);

        let started = s.start_again();
        let log = s.log();
        assert!(!log.contains("BUG REPORT"), "{log}");
        if load_truncated == "yes" {
            assert!(started, "{log}");
            let mut c = s.client();
            // Everything but the cut-off last write is there.
            assert_eq!(c.cmd("EXISTS last").int(), 0);
            assert_eq!(c.cmd("TYPE ef"), Value::Simple("ratelimit".into()));
        } else {
            assert!(!started, "a truncated AOF must stop the load");
            assert!(
                log.contains("truncated") || log.contains("Unexpected end of file"),
                "{log}"
            );
        }
    }
}

#[test]
fn an_rdb_from_a_newer_module_version_is_refused_cleanly() {
    let mut s = Server::start();
    let mut c = s.client();
    c.cmd("RL.TOKEN k 10 1 1h");
    let Value::Bulk(dump) = c.cmd("DUMP k") else {
        panic!()
    };
    let id = dump[2..10].to_vec();
    assert_eq!(c.cmd("SAVE"), Value::Simple("OK".into()));
    s.stop();

    // Bump the encoding version inside the module id stored with the value,
    // then fix the file's trailing CRC-64 so only our decoder can object.
    let path = s.dir.join("dump.rdb");
    let mut rdb = std::fs::read(&path).unwrap();
    let at = rdb
        .windows(8)
        .position(|w| w == id.as_slice())
        .expect("the module id in the RDB file");
    let bumped = (u64::from_be_bytes(id.clone().try_into().unwrap()) & !0x3ff) | 3;
    rdb[at..at + 8].copy_from_slice(&bumped.to_be_bytes());
    let n = rdb.len() - 8;
    let crc = crc64(&rdb[..n]);
    rdb[n..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, rdb).unwrap();

    assert!(!s.start_again(), "a newer encoding must not load");
    let log = s.log();
    assert!(!log.contains("BUG REPORT"), "{log}");
    assert!(
        log.contains("ratelimit encoding version 3 is newer than this module (2)"),
        "the log should say why: {log}"
    );
}

/// Regression (src/algo/sliding.rs): a sliding limit lowered below the
/// previous window's count left a state that RDB loading rejected.
#[test]
fn lowered_sliding_limit_survives_a_reload() {
    let s = Server::start();
    let mut c = s.client();
    assert_eq!(
        c.cmd(&format!("RL.SLIDING k 10 10s COST 10 AT {T0}"))
            .ints()[0],
        1
    );
    assert_eq!(
        c.cmd(&format!("RL.SLIDING k 2 10s AT {}", T0 + 19_900))
            .ints()[0],
        1
    );
    let digest = c.cmd("DEBUG DIGEST-VALUE k");
    assert_eq!(c.cmd("DEBUG RELOAD").text(), "OK");
    assert_eq!(c.cmd("DEBUG DIGEST-VALUE k"), digest);
    let dump = c.cmd("DUMP k").bytes();
    assert_eq!(c.call(&args!["RESTORE", "k2", 0i64, dump]).text(), "OK");
}
