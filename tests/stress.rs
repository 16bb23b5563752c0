//! Load: many connections hammering many keys with every command at once.
//!
//! Every call carries the same `AT` instant, so no time passes for the
//! limiters and each key must grant exactly its limit, whichever connection
//! gets there first: the test keeps its own count of the units granted per
//! key and checks that no key ever granted more, that the server's state
//! agrees with the count to the unit, that no call failed, and that once the
//! keys have expired the server's memory is back to what it was before.
//!
//! Nothing depends on how fast the machine is. Key expiry follows the
//! server's clock, not `AT`, so the load uses windows of a day: no key can
//! expire while it is still being used, however long a batch takes (the
//! test checks that none did). Once the counts are checked, every key is
//! spent once more, at a later instant and with a 1 s window, which leaves
//! it full (as big as in the load) and expiring within 2 s; the test then
//! waits, with generous bounded polls, for the keys to go and the memory to
//! come back. Throughput is reported, not checked (benchmarks are
//! scripts/bench).
//!
//! `stress_always` (in `cargo test`): 200 connections, 100,000 calls over
//! 10,000 keys. `stress_full` (ignored; `cargo test --release --test stress
//! -- --ignored`, or `scripts/stress`): 200 connections, 1,000,000 calls
//! over 10,000 keys. `RL_STRESS_CALLS`, `RL_STRESS_KEYS`,
//! `RL_STRESS_CONNECTIONS` override the sizes of either.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{words, Client, Server, Value};

/// Window (and bucket period) of every key during the load. A key expires
/// when its state is as good as absent: for a window, a window after it
/// opened; for a bucket holding `n` units, `n / BUCKET_LIMIT` periods after
/// its last write, so at the earliest 12 hours here. A key expiring while
/// still in use would be granted its limit again; none can.
const LOAD_WINDOW: &str = "1d";

/// The window every key is spent with once more after the load, so that
/// they all expire soon (within two of them: the sliding counter's).
const EXPIRY_WINDOW: &str = "1s";

/// Capacity of the buckets.
const BUCKET_LIMIT: i64 = 2;

/// Calls per pipelined round trip on each connection.
const DEPTH: usize = 16;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The algorithm of key `i`, its parameters with window (or period) `w`
/// and the units it grants at a single instant: `limit` for the windows,
/// `BUCKET_LIMIT` for the buckets.
fn params(i: usize, limit: i64, w: &str) -> (&'static str, String, i64) {
    let b = BUCKET_LIMIT;
    match i % 6 {
        0 => ("FIXED", format!("{limit} {w}"), limit),
        1 => ("SLIDING", format!("{limit} {w}"), limit),
        2 => ("LOG", format!("{limit} {w}"), limit),
        3 => ("TOKEN", format!("{b} {b} {w}"), b),
        4 => ("LEAKY", format!("{b} {b} {w}"), b),
        _ => ("GCRA", format!("{} {b} {w}", b - 1), b),
    }
}

/// Deterministic per-connection pseudo-random numbers (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What a pipelined call was, to account for its reply.
enum Sent {
    /// A single-key call on `key` with `cost`.
    One { key: usize, cost: u64 },
    /// `RL.ALL` over two keys.
    All { keys: [usize; 2], cost: u64 },
    /// `RL.INFO`: only checked for not being an error.
    Info,
}

struct Counters {
    granted: Vec<AtomicU64>,
    calls: AtomicU64,
    denied: AtomicU64,
    errors: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

/// `MEMORY STATS` as one line of text, for failure messages.
fn memory_stats(c: &mut Client) -> String {
    fn flat(v: &Value) -> String {
        match v {
            Value::Array(items) => items.iter().map(flat).collect::<Vec<_>>().join(" "),
            Value::Int(i) => i.to_string(),
            Value::Bulk(_) | Value::Simple(_) => v.text(),
            other => format!("{other:?}"),
        }
    }
    flat(&c.cmd("MEMORY STATS"))
}

fn used_memory(c: &mut Client) -> i64 {
    c.cmd("INFO memory").info_int("used_memory")
}

/// Keys the server has expired since it started.
fn expired_keys(c: &mut Client) -> i64 {
    c.cmd("INFO stats").info_int("expired_keys")
}

/// Waits until only `admin` is connected: the server frees a closed
/// connection's memory when it notices the close, not at once.
fn wait_alone(admin: &mut Client) {
    common::wait_until(
        "the other connections are closed",
        Duration::from_secs(60),
        || admin.cmd("INFO clients").info_int("connected_clients") == 1,
    );
}

/// No key of `keys` granted more than its limit, and the server agrees with
/// the test's count: a peek shows exactly the units left. Returns how many
/// keys were spent at all.
fn check_batch(
    admin: &mut Client,
    counters: &Counters,
    keys: std::ops::Range<usize>,
    limit: i64,
    at: i64,
) -> usize {
    for key in keys.clone() {
        let (algo, p, _) = params(key, limit, LOAD_WINDOW);
        admin.send(&words(&format!("RL.{algo} s:{key} {p} COST 0 AT {at}")));
    }
    let mut spent = 0;
    for key in keys {
        let granted = counters.granted[key].load(Ordering::Relaxed) as i64;
        let (algo, _, limit) = params(key, limit, LOAD_WINDOW);
        assert!(
            granted <= limit,
            "key s:{key} granted {granted} > limit {limit}"
        );
        let peek = admin.read().ints();
        assert_eq!(peek[2], limit - granted, "key s:{key} ({})", algo);
        spent += usize::from(granted > 0);
    }
    spent
}

fn stress(calls: usize, keys: usize, connections: usize) {
    let server = Server::start();
    let mut admin = server.client();
    // A limit that every key reaches: a few times fewer units than calls.
    let limit = ((calls / keys) as i64 / 3).clamp(2, 50);
    let at = 1_700_000_000_000i64;
    // Measured with only this connection open, after the server has once
    // had as many clients as the load will open (its own structures for
    // clients grow with the first ones and stay); the load's connections
    // are all closed again before the final measurement.
    let warm: Vec<Client> = (0..connections)
        .map(|_| {
            let mut c = server.client();
            assert_eq!(c.cmd("PING"), Value::Simple("PONG".into()));
            c
        })
        .collect();
    drop(warm);
    // Redis 7 also allocates a latency histogram per command on its first
    // call (tens of KB each, kept for good): call each command once.
    for i in 0..6 {
        let (algo, p, _) = params(i, limit, LOAD_WINDOW);
        admin.cmd(&format!("RL.{algo} warm:{i} {p} AT {at}"));
    }
    admin.cmd(&format!(
        "RL.ALL 2 warm:0 warm:1 FIXED {limit} {LOAD_WINDOW} SLIDING {limit} {LOAD_WINDOW} AT {at}"
    ));
    admin.cmd("RL.INFO warm:0");
    admin.cmd("DEL warm:0 warm:1 warm:2 warm:3 warm:4 warm:5");
    for c in ["DBSIZE", "INFO stats", "MEMORY STATS", "PING"] {
        admin.cmd(c);
    }
    wait_alone(&mut admin);
    let baseline = used_memory(&mut admin);
    let baseline_stats = memory_stats(&mut admin);
    let expired_before = expired_keys(&mut admin);

    // Keys are processed in batches, so that each key's calls come close
    // together from many connections at once, and each batch is checked as
    // soon as it is done.
    let per_batch_keys = keys.min(env_or("RL_STRESS_BATCH_KEYS", 1_000)).max(1);
    let batches = keys.div_ceil(per_batch_keys);
    let counters = Arc::new(Counters {
        granted: (0..keys).map(|_| AtomicU64::new(0)).collect(),
        calls: AtomicU64::new(0),
        denied: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_error: std::sync::Mutex::new(None),
    });
    let started = Instant::now();
    let mut slowest_batch = Duration::ZERO;
    let mut expected_calls = 0;
    let mut spent_keys = 0;
    for batch in 0..batches {
        let lo = batch * per_batch_keys;
        let hi = ((batch + 1) * per_batch_keys).min(keys);
        let batch_calls = calls * (hi - lo) / keys;
        expected_calls += batch_calls;
        let t0 = Instant::now();
        let threads: Vec<_> = (0..connections)
            .map(|conn| {
                let counters = Arc::clone(&counters);
                let port = server.port;
                let n = batch_calls / connections + usize::from(conn < batch_calls % connections);
                std::thread::spawn(move || {
                    let mut c = Client::connect(port).expect("connect");
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((batch * 1000 + conn) as u64 + 1));
                    let mut done = 0;
                    while done < n {
                        let round = DEPTH.min(n - done);
                        let mut sent = Vec::with_capacity(round);
                        for _ in 0..round {
                            let key = lo + rng.below(hi - lo);
                            // Mostly cost 1, some peeks and some cost 2.
                            let cost = match rng.below(10) {
                                0 => 0,
                                1 => 2,
                                _ => 1,
                            };
                            let (algo, p, _) = params(key, limit, LOAD_WINDOW);
                            match rng.below(20) {
                                0 => {
                                    let other = lo + (key - lo + 1) % (hi - lo);
                                    if other == key {
                                        c.send(&words(&format!("RL.INFO s:{key}")));
                                        sent.push(Sent::Info);
                                        continue;
                                    }
                                    let (algo2, p2, _) = params(other, limit, LOAD_WINDOW);
                                    c.send(&words(&format!(
                                        "RL.ALL 2 s:{key} s:{other} {algo} {p} {algo2} {p2} COST {cost} AT {at}"
                                    )));
                                    sent.push(Sent::All {
                                        keys: [key, other],
                                        cost,
                                    });
                                }
                                1 => {
                                    c.send(&words(&format!("RL.INFO s:{key}")));
                                    sent.push(Sent::Info);
                                }
                                _ => {
                                    c.send(&words(&format!(
                                        "RL.{algo} s:{key} {p} COST {cost} AT {at}"
                                    )));
                                    sent.push(Sent::One { key, cost });
                                }
                            }
                        }
                        for s in sent {
                            let reply = c.read();
                            counters.calls.fetch_add(1, Ordering::Relaxed);
                            if let Value::Error(e) = &reply {
                                counters.errors.fetch_add(1, Ordering::Relaxed);
                                counters.first_error.lock().unwrap().get_or_insert(e.clone());
                                continue;
                            }
                            let (keys, cost) = match s {
                                Sent::Info => continue,
                                Sent::One { key, cost } => (vec![key], cost),
                                Sent::All { keys, cost } => (keys.to_vec(), cost),
                            };
                            let allowed = match &reply {
                                Value::Array(v) => v[0].int() == 1,
                                other => panic!("unexpected reply {other:?}"),
                            };
                            if allowed {
                                for k in keys {
                                    counters.granted[k].fetch_add(cost, Ordering::Relaxed);
                                }
                            } else {
                                counters.denied.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        done += round;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("load thread");
        }
        // Timed for the report only: no batch has a time budget.
        slowest_batch = slowest_batch.max(t0.elapsed());
        spent_keys += check_batch(&mut admin, &counters, lo..hi, limit, at);
    }
    let load_time = started.elapsed();
    let calls_done = counters.calls.load(Ordering::Relaxed);
    eprintln!(
        "stress: {calls_done} calls on {keys} keys from {connections} connections in {load_time:?} \
         ({:.0} calls/s, slowest batch {slowest_batch:?}; a report, not a check), {} denied",
        calls_done as f64 / load_time.as_secs_f64(),
        counters.denied.load(Ordering::Relaxed)
    );

    assert_eq!(
        counters.errors.load(Ordering::Relaxed),
        0,
        "first error: {:?}",
        counters.first_error.lock().unwrap()
    );
    assert_eq!(calls_done as usize, expected_calls);
    assert!(
        counters.denied.load(Ordering::Relaxed) > 0,
        "nothing was denied"
    );
    if calls >= 5 * keys {
        assert!(
            spent_keys > keys * 9 / 10,
            "only {spent_keys} keys were used"
        );
    }
    // The exact counts above assume that no key expired during the load (it
    // would have been granted its limit again); with day-long windows none
    // can, and none did.
    assert_eq!(
        expired_keys(&mut admin),
        expired_before,
        "keys expired during the load"
    );
    // A key exists exactly when something was granted on it.
    assert_eq!(admin.cmd("DBSIZE").int() as usize, spent_keys);

    // Spend every key once more, two days later with a 1 s window: each
    // takes its whole limit (a log as big as the load could make it) and
    // now expires within 2 s. Keys never spent are created, and expire
    // too.
    let later = at + 2 * 86_400_000;
    for chunk in (0..keys).collect::<Vec<_>>().chunks(1000) {
        for &key in chunk {
            let (algo, p, units) = params(key, limit, EXPIRY_WINDOW);
            admin.send(&words(&format!(
                "RL.{algo} s:{key} {p} COST {units} AT {later}"
            )));
        }
        for &key in chunk {
            let r = admin.read();
            let Value::Array(_) = r else {
                panic!("s:{key}: {r:?}")
            };
            let r = r.ints();
            assert_eq!((r[0], r[2]), (1, 0), "s:{key}: {r:?}");
        }
    }

    // Every key expires; then memory is back. Both are polled, with limits
    // far above what they take (about 2 s, and the server's next cron runs).
    let expiring = Instant::now();
    common::wait_until("every key expires", Duration::from_secs(120), || {
        admin.cmd("DBSIZE").int() == 0
    });
    let waited = expiring.elapsed();
    wait_alone(&mut admin);
    // RL.TOP's summaries of the denials above are server state, bounded by
    // ratelimit.top-size and not keys: emptied (a size of 0) so that what
    // is left to compare is what the keys held.
    assert_eq!(admin.cmd("CONFIG SET ratelimit.top-size 0").text(), "OK");
    // The keyspace's hash table shrinks back in the server's cron.
    let used = common::wait_for(
        "used_memory back to its baseline once every key expired",
        Duration::from_secs(60),
        || {
            let used = used_memory(&mut admin);
            if used <= baseline + 64 * 1024 {
                return Ok(used);
            }
            Err(format!(
                "used_memory {used}, baseline {baseline}\n\
                 before: {baseline_stats:?}\nafter: {:?}",
                memory_stats(&mut admin)
            ))
        },
    );
    eprintln!(
        "stress: keys gone {waited:?} after the last write; used_memory {used} (baseline {baseline})"
    );
    assert_eq!(admin.cmd("PING"), Value::Simple("PONG".into()));
}

#[test]
fn stress_always() {
    stress(
        env_or("RL_STRESS_CALLS", 100_000),
        env_or("RL_STRESS_KEYS", 10_000),
        env_or("RL_STRESS_CONNECTIONS", 200),
    );
}

#[test]
#[ignore = "takes a minute; run with --ignored (scripts/stress)"]
fn stress_full() {
    stress(
        env_or("RL_STRESS_CALLS", 1_000_000),
        env_or("RL_STRESS_KEYS", 10_000),
        env_or("RL_STRESS_CONNECTIONS", 200),
    );
}
