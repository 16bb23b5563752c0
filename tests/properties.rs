//! Property tests of the pure algorithms (`ratelimit::algo`) against
//! reference models computed by brute force from the full list of accepted
//! requests.
//!
//! Every run is a random sequence of requests: time steps that go forward,
//! stay equal or go backwards, costs from 0 (peek) to above the limit, and,
//! in the "changing" runs, a different parameter set on any request. After
//! each request the test checks:
//!
//! - with constant parameters, the decision is the reference model's
//!   (allowed, remaining, retry and reset for the exact algorithms), and the
//!   algorithm's guarantee holds on the accepted history: the log never has
//!   more than `limit` units in any window, the fixed window never more than
//!   `limit` per window, the sliding counter stays within its documented
//!   bound, the buckets stay between empty and full, GCRA is the textbook
//!   GCRA;
//! - always: a denied request or a peek changes nothing; the state keeps its
//!   invariants and survives an encode/decode round trip; `retry_after` is
//!   exact (retrying that much later succeeds, 1 µs earlier does not, so the
//!   millisecond figure of the reply is exact too); after `reset_after` the
//!   limiter is as good as a new one (that is when the key expires).
//!
//! Case counts are small so `cargo test` stays fast; set `PROPTEST_CASES`
//! (e.g. `PROPTEST_CASES=20000 cargo test --test properties`) to dig deeper.

use proptest::prelude::*;
use proptest::test_runner::Config;

use ratelimit::algo::{
    sliding, BucketParams, Decision, Limiter, Micros, Params, WindowParams, MAX_COUNT,
    MAX_DURATION_US, MAX_TIME_US,
};
use ratelimit::codec;

/// A plausible present (Nov 2023) in µs, so products are realistic too.
const EPOCH: Micros = 1_700_000_000_000_000;

fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// One request of a generated run.
#[derive(Clone, Debug)]
struct Step {
    /// Time step in µs: may be zero or negative.
    dt: i64,
    /// Cost, taken modulo `limit + 2` so it ranges from 0 to limit + 1.
    cost: u64,
    /// Which parameter set (only used by the changing runs).
    params: usize,
}

fn step(scale: i64) -> impl Strategy<Value = Step> {
    let dt = prop_oneof![
        3 => Just(0i64),
        6 => 1..=scale,
        2 => scale..=4 * scale,
        2 => -scale..=-1,
        1 => Just(1i64),
    ];
    (dt, 0u64..1000, 0usize..3).prop_map(|(dt, cost, params)| Step { dt, cost, params })
}

fn steps(scale: i64) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(scale), 1..60)
}

fn window_params() -> impl Strategy<Value = WindowParams> {
    (1u64..=8, 1u64..=40).prop_map(|(limit, window)| WindowParams { limit, window })
}

fn bucket_params() -> impl Strategy<Value = BucketParams> {
    (1u64..=8, 1u64..=5, 1u64..=40).prop_map(|(capacity, rate, period)| BucketParams {
        capacity,
        rate,
        period,
    })
}

fn limit_of(p: &Params) -> u64 {
    match p {
        Params::Fixed(w) | Params::Sliding(w) | Params::Log(w) => w.limit,
        Params::Token(b) | Params::Leaky(b) | Params::Gcra(b) => b.capacity,
    }
}

/// What the reference models need: the accepted requests, in order, at the
/// time the limiter used for them.
#[derive(Default)]
struct History {
    accepted: Vec<(Micros, u64)>,
}

impl History {
    fn latest(&self) -> Micros {
        self.accepted.last().map_or(0, |a| a.0)
    }
}

/// Checks that hold for every algorithm, whatever the parameters did before.
/// `before` is the state the decision was made on, `latest` the latest time
/// of an accepted request so far.
fn check_common(
    before: &Limiter,
    after: &Limiter,
    p: &Params,
    cost: u64,
    now: Micros,
    latest: Micros,
    d: &Decision,
) {
    let limit = limit_of(p);
    assert_eq!(d.limit, limit);
    assert!(d.remaining <= limit, "remaining above the limit: {d:?}");
    assert_eq!(d.changed, d.allowed && cost > 0);
    if !d.changed {
        assert_eq!(
            before, after,
            "a denied request or a peek changed the state"
        );
    } else {
        assert_eq!(after.params(), *p, "a write stores the parameters in force");
    }
    if cost > limit {
        assert!(!d.allowed && d.retry_after.is_none(), "{d:?}");
    } else {
        assert!(d.retry_after.is_some(), "{d:?}");
    }
    assert!(after.is_valid(), "invariants broken: {after:?}");
    let bytes = codec::encode(after);
    assert_eq!(
        codec::decode(&bytes, codec::ENCODING_VERSION).as_ref(),
        Ok(after),
        "round trip"
    );

    // The limiter never works at a time before the latest one it accepted.
    let base = now.max(latest);
    // Only instants the module accepts (the largest buckets can report a
    // wait beyond year 9999, which nothing can retry at).
    let within = |wait: Micros| base.checked_add(wait).filter(|&t| t <= MAX_TIME_US);
    if !d.allowed {
        if let Some(at) = d.retry_after.and_then(within) {
            let wait = at - base;
            let mut later = before.clone();
            let again = later.decide(p, cost, at).unwrap();
            assert!(
                again.allowed,
                "not allowed after retry_after {wait}: {again:?}"
            );
            if now >= latest && wait > 0 {
                let early = before.clone().decide(p, cost, now + wait - 1).unwrap();
                assert!(!early.allowed, "allowed 1 µs before retry_after {wait}");
                // The reply rounds up to whole ms: 1 ms before that is early.
                let ms = wait.div_ceil(1000) * 1000;
                let early = before.clone().decide(p, cost, now + ms - 1000).unwrap();
                assert!(!early.allowed, "allowed 1 ms before retry_after_ms");
            }
        }
    }
    // After reset_after the limiter is as good as a new one: the key may
    // expire then without granting anything more.
    let Some(at) = within(d.reset_after) else {
        return;
    };
    let mut reset = after.clone();
    let fresh = Limiter::new(p).decide(p, limit, at).unwrap();
    let seen = reset.decide(p, limit, at).unwrap();
    assert_eq!(
        seen, fresh,
        "not back to new after reset_after {}",
        d.reset_after
    );
    if now >= latest && d.reset_after > 0 && d.changed {
        let just_before = after.clone().decide(p, 0, now + d.reset_after - 1).unwrap();
        assert!(
            just_before.remaining < limit || !just_before.allowed,
            "reset_after is later than needed"
        );
    }
}

/// Runs `steps` from `start`, choosing the parameters with `pick`, calling
/// `model` (the reference) before each decision and `check` after it.
fn run(
    start: Micros,
    steps: &[Step],
    pick: impl Fn(usize) -> Params,
    mut model: impl FnMut(&History, &Params, u64, Micros, &Decision),
) {
    let mut limiter = Limiter::new(&pick(steps[0].params));
    let mut history = History::default();
    let mut now = start;
    for s in steps {
        now = now.saturating_add_signed(s.dt).min(MAX_TIME_US);
        let p = pick(s.params);
        let cost = s.cost % (limit_of(&p) + 2);
        let before = limiter.clone();
        let d = limiter.decide(&p, cost, now).unwrap();
        check_common(&before, &limiter, &p, cost, now, history.latest(), &d);
        model(&history, &p, cost, now, &d);
        if d.changed {
            history.accepted.push((now.max(history.latest()), cost));
        }
    }
}

fn window(p: &Params) -> WindowParams {
    match p {
        Params::Fixed(w) | Params::Sliding(w) | Params::Log(w) => *w,
        _ => unreachable!(),
    }
}

fn bucket(p: &Params) -> BucketParams {
    match p {
        Params::Token(b) | Params::Leaky(b) | Params::Gcra(b) => *b,
        _ => unreachable!(),
    }
}

// ---------------------------------------------------------------- fixed ---

/// Fixed windows rebuilt from the accepted requests: a window opens at the
/// first request after the previous one closed. Returns (start, count) of
/// the last window.
fn fixed_windows(h: &History, w: Micros) -> Vec<(Micros, u64)> {
    let mut out: Vec<(Micros, u64)> = Vec::new();
    for &(t, c) in &h.accepted {
        match out.last_mut() {
            Some((s, n)) if t < *s + w => *n += c,
            _ => out.push((t, c)),
        }
    }
    out
}

fn fixed_model(h: &History, p: &Params, cost: u64, now: Micros, d: &Decision) {
    let WindowParams { limit, window: w } = window(p);
    let windows = fixed_windows(h, w);
    for &(_, n) in &windows {
        assert!(n <= limit, "a fixed window holds {n} > {limit}");
    }
    let (start, count) = match windows.last() {
        Some(&(s, n)) if now.max(s) < s + w => (s, n),
        _ => (now, 0),
    };
    let now = now.max(start);
    let allowed = cost <= limit && count + cost <= limit;
    let after = if allowed { count + cost } else { count };
    assert_eq!(d.allowed, allowed);
    assert_eq!(d.remaining, limit - after);
    assert_eq!(d.reset_after, if after > 0 { start + w - now } else { 0 });
    if !allowed && cost <= limit {
        assert_eq!(d.retry_after, Some(start + w - now));
    }
}

// ------------------------------------------------------------------ log ---

fn log_model(h: &History, p: &Params, cost: u64, now: Micros, d: &Decision) {
    let WindowParams { limit, window: w } = window(p);
    // One timestamp per unit.
    let units: Vec<Micros> = h
        .accepted
        .iter()
        .flat_map(|&(t, c)| std::iter::repeat_n(t, c as usize))
        .collect();
    // No window of length W ever held more than `limit` units.
    for &t in &units {
        let inside = units.iter().filter(|&&u| u <= t && u + w > t).count() as u64;
        assert!(
            inside <= limit,
            "{inside} units within one window > {limit}"
        );
    }
    let now = now.max(h.latest());
    let live: Vec<Micros> = units.iter().copied().filter(|&u| u + w > now).collect();
    let n = live.len() as u64;
    let allowed = cost <= limit && n + cost <= limit;
    assert_eq!(d.allowed, allowed);
    let after = if allowed { n + cost } else { n };
    assert_eq!(d.remaining, limit - after);
    if !allowed && cost <= limit {
        // The oldest live units must leave until the cost fits.
        let leave = (n + cost - limit) as usize;
        assert_eq!(d.retry_after, Some(live[leave - 1] + w - now));
    }
    let newest = if allowed && cost > 0 {
        Some(now)
    } else {
        live.last().copied()
    };
    assert_eq!(d.reset_after, newest.map_or(0, |t| t + w - now));
}

// -------------------------------------------------------------- sliding ---

/// The sliding counter's documented bound, checked on the accepted history:
/// at most `limit` units in any of its consecutive windows, hence at most
/// `2 * limit` in any interval of length W.
fn sliding_model(h: &History, p: &Params, cost: u64, now: Micros, d: &Decision) {
    let WindowParams { limit, window: w } = window(p);
    // Its windows: consecutive from the first request, restarting at a
    // request after a whole empty window.
    let mut windows: Vec<(Micros, u64)> = Vec::new();
    for &(t, c) in &h.accepted {
        match windows.last_mut() {
            Some((s, n)) if t < *s + w => *n += c,
            Some((s, _)) if t < *s + 2 * w => {
                let next = *s + w;
                windows.push((next, c));
            }
            _ => windows.push((t, c)),
        }
    }
    for &(_, n) in &windows {
        assert!(n <= limit, "a sliding-counter window holds {n} > {limit}");
    }
    for &(t, _) in &h.accepted {
        let inside: u64 = h
            .accepted
            .iter()
            .filter(|&&(u, _)| u >= t && u < t + w)
            .map(|a| a.1)
            .sum();
        assert!(inside <= 2 * limit, "{inside} units within W > 2 * {limit}");
    }
    // The decision is the documented estimate: prev weighted by the part
    // of the previous window still inside the sliding one.
    let (prev, curr, start) = match windows.last() {
        None => (0, 0, now),
        Some(&(s, n)) => {
            let at = now.max(s);
            if at < s + w {
                let prev = match windows.len() {
                    k if k >= 2 && windows[k - 2].0 + w == s => windows[k - 2].1,
                    _ => 0,
                };
                (prev, n, s)
            } else if at < s + 2 * w {
                (n, 0, s + w)
            } else {
                (0, 0, now)
            }
        }
    };
    let now = now.max(start);
    let e = (now - start) as u128;
    let (w, l) = (w as u128, limit as u128);
    let used = prev as u128 * (w - e) + curr as u128 * w;
    let allowed = cost <= limit && used + cost as u128 * w <= l * w;
    assert_eq!(d.allowed, allowed, "prev={prev} curr={curr} e={e}");
    let used = if allowed {
        used + cost as u128 * w
    } else {
        used
    };
    assert_eq!(d.remaining as u128, (l * w).saturating_sub(used) / w);
}

// -------------------------------------------------------------- buckets ---

/// Level of a bucket that drains `rate` units per `period` and starts
/// empty, at `now`, times the period: the closed form of "drain, then
/// add", `max(0, max over i of (units since i) * P - rate * (now - t_i))`.
fn bucket_level(h: &History, b: &BucketParams, now: Micros) -> u128 {
    let mut level: i128 = 0;
    let mut since: i128 = 0;
    for &(t, c) in h.accepted.iter().rev() {
        since += c as i128 * b.period as i128;
        level = level.max(since - b.rate as i128 * (now as i128 - t as i128));
    }
    level as u128
}

fn bucket_model(h: &History, p: &Params, cost: u64, now: Micros, d: &Decision) {
    let b = bucket(p);
    let (cap, per, rate) = (b.capacity as u128, b.period as u128, b.rate as u128);
    let now = now.max(h.latest());
    let level = bucket_level(h, &b, now);
    assert!(level <= cap * per, "bucket above capacity");
    let need = cost as u128 * per;
    let allowed = cost <= b.capacity && level + need <= cap * per;
    assert_eq!(d.allowed, allowed);
    let after = if allowed { level + need } else { level };
    assert_eq!(d.remaining as u128, (cap * per - after) / per);
    assert_eq!(d.reset_after as u128, after.div_ceil(rate));
    match (allowed, p) {
        (false, _) if cost <= b.capacity => {
            assert_eq!(
                d.retry_after,
                Some((level + need - cap * per).div_ceil(rate) as Micros)
            );
        }
        // The leaky bucket's queue: wait for the units ahead to drain.
        (true, Params::Leaky(_)) => {
            assert_eq!(d.retry_after, Some(level.div_ceil(rate) as Micros));
        }
        (true, _) => assert_eq!(d.retry_after, Some(0)),
        _ => {}
    }
}

/// The textbook GCRA (virtual scheduling), with the theoretical arrival
/// time kept multiplied by the rate so the emission interval `T = period /
/// rate` is exact: a request of `n` at `t` computes
/// `new_tat = max(tat, t) + n * T` and is allowed iff
/// `new_tat - (tau + T) <= t`, with `tau = max_burst * T`.
struct Gcra {
    tat: u128,
}

impl Gcra {
    fn decide(&mut self, b: &BucketParams, n: u64, t: Micros, d: &Decision) {
        let (rate, per) = (b.rate as u128, b.period as u128);
        let t_r = t as u128 * rate;
        let new_tat = self.tat.max(t_r) + n as u128 * per;
        let allow_at = new_tat.saturating_sub(b.capacity as u128 * per);
        let allowed = n <= b.capacity && allow_at <= t_r;
        assert_eq!(d.allowed, allowed, "GCRA");
        if allowed {
            assert_eq!(d.retry_after, Some(0));
            if n > 0 {
                self.tat = new_tat;
            }
        } else if n <= b.capacity {
            assert_eq!(
                d.retry_after,
                Some((allow_at - t_r).div_ceil(rate) as Micros)
            );
        }
    }
}

// ---------------------------------------------------------------- tests ---

fn fixed(w: WindowParams) -> Params {
    Params::Fixed(w)
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn fixed_window_matches_the_reference(p in window_params(), s in steps(30)) {
        run(EPOCH, &s, |_| fixed(p), fixed_model);
    }

    #[test]
    fn log_is_exact(p in window_params(), s in steps(30)) {
        run(EPOCH, &s, |_| Params::Log(p), log_model);
    }

    #[test]
    fn sliding_counter_stays_within_its_bound(p in window_params(), s in steps(30)) {
        run(EPOCH, &s, |_| Params::Sliding(p), sliding_model);
    }

    #[test]
    fn token_bucket_matches_the_reference(p in bucket_params(), s in steps(30)) {
        run(EPOCH, &s, |_| Params::Token(p), bucket_model);
    }

    #[test]
    fn leaky_bucket_matches_the_reference(p in bucket_params(), s in steps(30)) {
        run(EPOCH, &s, |_| Params::Leaky(p), bucket_model);
    }

    #[test]
    fn gcra_matches_the_textbook_gcra(p in bucket_params(), s in steps(30)) {
        let mut gcra = Gcra { tat: 0 };
        run(EPOCH, &s, |_| Params::Gcra(p), |h, params, cost, now, d| {
            bucket_model(h, params, cost, now, d);
            gcra.decide(&bucket(params), cost, now.max(h.latest()), d);
        });
    }

    /// Any algorithm, parameters changing between requests: only the checks
    /// that do not depend on a constant configuration.
    #[test]
    fn parameter_changes_keep_every_invariant(
        algo in 0usize..6,
        w in prop::array::uniform3(window_params()),
        b in prop::array::uniform3(bucket_params()),
        s in steps(30),
    ) {
        let pick = |i: usize| match algo {
            0 => Params::Fixed(w[i]),
            1 => Params::Sliding(w[i]),
            2 => Params::Log(w[i]),
            3 => Params::Token(b[i]),
            4 => Params::Leaky(b[i]),
            _ => Params::Gcra(b[i]),
        };
        run(EPOCH, &s, pick, |_, _, _, _, _| {});
    }

    /// Parameters and times anywhere in the accepted ranges: every product
    /// is computed without overflow (debug builds check) and the checks
    /// above still hold.
    #[test]
    fn extreme_values_compute(
        algo in 0usize..6,
        limit in prop_oneof![1u64..=3, Just(1u64 << 40), Just(MAX_COUNT), 1..=MAX_COUNT],
        rate in prop_oneof![Just(1u64), Just(MAX_COUNT), 1..=MAX_COUNT],
        period in prop_oneof![Just(1u64), Just(MAX_DURATION_US), 1..=MAX_DURATION_US],
        start in prop_oneof![Just(0u64), Just(MAX_TIME_US), 0..=MAX_TIME_US],
        raw in prop::collection::vec((any::<i64>(), any::<u64>()), 1..12),
    ) {
        // The log holds one entry per unit: keep it to what the module accepts.
        let log_limit = limit.min(10_000);
        let pick = |_| match algo {
            0 => Params::Fixed(WindowParams { limit, window: period }),
            1 => Params::Sliding(WindowParams { limit, window: period }),
            2 => Params::Log(WindowParams { limit: log_limit, window: period }),
            3 => Params::Token(BucketParams { capacity: limit, rate, period }),
            4 => Params::Leaky(BucketParams { capacity: limit, rate, period }),
            _ => Params::Gcra(BucketParams { capacity: limit, rate, period }),
        };
        let steps: Vec<Step> = raw
            .into_iter()
            .map(|(dt, cost)| Step { dt: dt >> (dt as u8 % 64), cost, params: 0 })
            .collect();
        run(start, &steps, pick, |_, _, _, _, _| {});
    }
}

#[test]
fn sliding_estimate_is_exposed_for_the_bound() {
    // `sliding::estimate` rounds the weighted previous window up: with 10
    // units in the previous 10 s window and 1 s into the current one, 9.
    let p = WindowParams {
        limit: 10,
        window: 10_000_000,
    };
    let mut st = ratelimit::algo::SlidingState::new(p);
    st.decide(&p, 10, 0);
    assert_eq!(sliding::estimate(&st, 11_000_000), 9);
    assert_eq!(sliding::estimate(&st, 11_000_001), 9);
    assert_eq!(sliding::estimate(&st, 25_000_000), 0);
}

/// Regression: lowering a sliding limit below the previous window's count
/// stored a state that `is_valid` (and so the RDB/RESTORE decoder) rejected.
#[test]
fn sliding_state_with_a_lowered_limit_survives_a_round_trip() {
    let s = 1_000_000;
    let big = WindowParams {
        limit: 10,
        window: 10 * s,
    };
    let small = WindowParams {
        limit: 2,
        window: 10 * s,
    };
    let mut l = Limiter::new(&Params::Sliding(big));
    assert!(l.decide(&Params::Sliding(big), 10, 0).unwrap().allowed);
    // 19.9 s: previous window (10 units) weighs 0.01 -> 0.1 units.
    let d = l.decide(&Params::Sliding(small), 1, 19_900_000).unwrap();
    assert!(d.allowed);
    assert!(l.is_valid(), "{l:?}");
    let bytes = codec::encode(&l);
    assert_eq!(codec::decode(&bytes, codec::ENCODING_VERSION), Ok(l));
}
