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
//!   (allowed, remaining, retry and reset for the exact algorithms, and the
//!   instant it was made at), and the algorithm's guarantee holds on the
//!   accepted history: the log never has more than `limit` units in any
//!   window, the fixed window never more than `limit` per window, the
//!   sliding counter stays within its documented bound, the buckets stay
//!   between empty and full, GCRA is the textbook GCRA;
//! - always: a request writes exactly when it spends something (cost > 0,
//!   allowed) or carries other parameters than the stored ones (cost > 0,
//!   even denied); a request that does not write changes nothing, and a
//!   write stores the parameters in force; the decision is the one made at
//!   its instant `at`; the state keeps its invariants and survives an
//!   encode/decode round trip; `retry_after` is exact (retrying that much
//!   after `at` succeeds, 1 µs earlier does not, so the millisecond figure of
//!   the reply is exact too); after `reset_after` the limiter is as good as
//!   a new one (that is when the key expires).
//!
//! Since a denial under other parameters writes (it re-bases the state
//! under them, so a tightened limit is remembered), one property checks
//! that such a write spends nothing: later requests are never allowed more
//! than if it had not written.
//!
//! A last group simulates the module's key expiry (a key dies once its
//! state is as good as absent, counted from the limiter's time or the wall
//! clock, whichever is later) under parameter changes, `AT` times ahead of
//! or behind the wall clock and a wall clock that steps back, and checks
//! that expiry never forgets a state that still matters.
//!
//! Case counts are small so `cargo test` stays fast; set `PROPTEST_CASES`
//! (e.g. `PROPTEST_CASES=20000 cargo test --test properties`) to dig deeper.

use super::{bucket_params, config, t, window_params, Us, EPOCH};
use proptest::prelude::*;

use ratelimit::algo::{
    sliding, Algorithm, BucketParams, Decision, Duration, FixedWindow, Instant, Limiter, Params,
    SlidingState, Verdict, WindowParams, MAX_COUNT, MAX_DURATION_US, MAX_TIME_US,
};
use ratelimit::codec;

fn wp(limit: u64, window_us: u64) -> WindowParams {
    WindowParams::new(limit, window_us).expect("window parameters in bounds")
}

fn bp(capacity: u64, rate: u64, period_us: u64) -> BucketParams {
    BucketParams::new(capacity, rate, period_us).expect("bucket parameters in bounds")
}

/// The parameters of `algo` (`Algorithm::ALL[algo]`) from window or bucket
/// figures (GCRA's capacity is `max_burst + 1`).
fn params_of(algo: usize, w: WindowParams, b: BucketParams) -> Params {
    let a = Algorithm::ALL[algo];
    Params::window(a, w)
        .or_else(|| Params::bucket(a, b))
        .expect("every algorithm is a window or a bucket one")
}

fn is_bucket(p: &Params) -> bool {
    matches!(p, Params::Token(_) | Params::Leaky(_) | Params::Gcra(_))
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

/// What the reference models need: the accepted requests (allowed, cost >
/// 0), in order, at the time the limiter used for them.
#[derive(Default)]
struct History {
    accepted: Vec<(Us, u64)>,
}

impl History {
    fn latest(&self) -> Us {
        self.accepted.last().map_or(0, |a| a.0)
    }
}

/// Whether a request writes, by the module's rule: it spends something, or
/// it brings other parameters than the stored ones; a peek never writes.
fn writes_by_rule(stored: &Params, p: &Params, cost: u64, allowed: bool) -> bool {
    cost > 0 && (allowed || stored != p)
}

/// Checks that hold for every algorithm, whatever the parameters did before.
/// `before` is the state the decision was made on, `v` what evaluating the
/// request on it gave, `after` the state once installed.
fn check_common(
    before: &Limiter,
    after: &Limiter,
    p: &Params,
    cost: u64,
    now: Instant,
    v: &Verdict,
) {
    let d = &v.decision;
    let limit = p.limit();
    assert_eq!(d.limit, limit);
    assert!(d.remaining <= limit, "remaining above the limit: {d:?}");
    let writes = writes_by_rule(&before.params(), p, cost, d.allowed);
    assert_eq!(v.writes, writes, "the write rule: {d:?}");
    if !writes {
        assert_eq!(
            before, after,
            "a request that does not write changed the state"
        );
    } else {
        assert_eq!(after.params(), *p, "a write stores the parameters in force");
    }
    if cost > limit {
        assert!(!d.allowed && d.retry_after.is_none(), "{d:?}");
    } else {
        assert!(d.retry_after.is_some(), "{d:?}");
    }
    assert!(after.is_valid(), "invariants broken: {after:?} after {d:?}");
    let bytes = codec::encode(after);
    assert_eq!(
        codec::decode(&bytes, codec::ENCODING_VERSION).as_ref(),
        Ok(after),
        "round trip"
    );
    // A key that holds nothing is decided on a fresh state: the same as a
    // new limiter's, without allocating.
    let fresh = Limiter::evaluate_fresh(p, cost, now);
    let new = Limiter::new(p).evaluate(p, cost, now).unwrap();
    assert_eq!(fresh, new, "evaluate_fresh is a new limiter's evaluate");

    // The decision is made at `at`: never before the request's time, and the
    // same as the one the limiter makes for the request at `at` itself.
    assert!(d.at >= now, "decided before the request's time: {d:?}");
    assert_eq!(
        before.evaluate(p, cost, d.at).unwrap().decision,
        *d,
        "not the decision at `at`"
    );
    // Only instants the module accepts (a bucket's wait can be reported
    // capped, beyond year 9999, which nothing can retry at).
    let within = |wait: Duration| {
        let at = d.at.as_micros().checked_add(wait.as_micros())?;
        (at <= MAX_TIME_US).then_some(t(at))
    };
    // A bucket whose drain takes longer than `MAX_WAIT_US` reports that
    // (documented); the real wait is longer, so only "not earlier" holds.
    let capped = |wait: Duration| is_bucket(p) && wait == Duration::MAX_WAIT;
    if !d.allowed {
        if let Some(wait) = d.retry_after {
            if let Some(at) = within(wait).filter(|_| !capped(wait)) {
                let again = after.clone().decide(p, cost, at).unwrap();
                assert!(
                    again.allowed,
                    "not allowed after retry_after {wait:?}: {again:?}"
                );
            }
            let us = wait.as_micros();
            if us > 0 && within(wait).is_some() {
                let early = after
                    .clone()
                    .decide(p, cost, t(d.at.as_micros() + us - 1))
                    .unwrap();
                assert!(!early.allowed, "allowed 1 µs before retry_after {wait:?}");
                // The reply rounds up to whole ms: 1 ms before that is early.
                let ms = wait.ceil_millis() * 1000;
                let early = after
                    .clone()
                    .decide(p, cost, t(d.at.as_micros() + ms - 1000))
                    .unwrap();
                assert!(!early.allowed, "allowed 1 ms before retry_after_ms");
            }
        }
    }
    // After reset_after the limiter is as good as a new one: the key may
    // expire then without granting anything more.
    let Some(at) = within(d.reset_after) else {
        return;
    };
    if !capped(d.reset_after) {
        let fresh = Limiter::new(p).decide(p, limit, at).unwrap();
        let seen = after.clone().decide(p, limit, at).unwrap();
        assert_eq!(
            seen, fresh,
            "not back to new after reset_after {:?}",
            d.reset_after
        );
    }
    let us = d.reset_after.as_micros();
    if us > 0 && writes {
        let just_before = after
            .clone()
            .decide(p, 0, t(d.at.as_micros() + us - 1))
            .unwrap();
        assert!(
            just_before.remaining < limit || !just_before.allowed,
            "reset_after is later than needed"
        );
    }
}

/// Runs `steps` from `start`, choosing the parameters with `pick`, calling
/// `model` (the reference) before each decision and `check` after it.
fn run(
    start: Us,
    steps: &[Step],
    pick: impl Fn(usize) -> Params,
    mut model: impl FnMut(&History, &Params, u64, Us, &Decision),
) {
    let mut limiter = Limiter::new(&pick(steps[0].params));
    let mut history = History::default();
    let mut now = start;
    for s in steps {
        now = now.saturating_add_signed(s.dt).min(MAX_TIME_US);
        let p = pick(s.params);
        let cost = s.cost % (p.limit() + 2);
        let before = limiter.clone();
        let v = before.evaluate(&p, cost, t(now)).unwrap();
        let d = limiter.decide(&p, cost, t(now)).unwrap();
        assert_eq!(d, v.decision, "decide is evaluate then apply");
        check_common(&before, &limiter, &p, cost, t(now), &v);
        model(&history, &p, cost, now, &d);
        if d.allowed && cost > 0 {
            history.accepted.push((now.max(history.latest()), cost));
        }
    }
}

/// (limit, window in µs)
fn window(p: &Params) -> (u64, Us) {
    match p {
        Params::Fixed(f) => match f.window() {
            FixedWindow::FirstHit(w) => (f.limit.get(), w.micros()),
            FixedWindow::Aligned(..) => unreachable!("not generated here"),
        },
        Params::Sliding(w) | Params::Log(w) => (w.limit.get(), w.window.micros()),
        _ => unreachable!(),
    }
}

fn bucket(p: &Params) -> BucketParams {
    match p {
        Params::Token(b) | Params::Leaky(b) => *b,
        Params::Gcra(g) => g.bucket(),
        _ => unreachable!(),
    }
}

fn retry_us(d: &Decision) -> Option<Us> {
    d.retry_after.map(Duration::as_micros)
}

// ---------------------------------------------------------------- fixed ---

/// Fixed windows rebuilt from the accepted requests: a window opens at the
/// first request after the previous one closed. Returns (start, count) of
/// the last window.
fn fixed_windows(h: &History, w: Us) -> Vec<(Us, u64)> {
    let mut out: Vec<(Us, u64)> = Vec::new();
    for &(t, c) in &h.accepted {
        match out.last_mut() {
            Some((s, n)) if t < *s + w => *n += c,
            _ => out.push((t, c)),
        }
    }
    out
}

fn fixed_model(h: &History, p: &Params, cost: u64, now: Us, d: &Decision) {
    let (limit, w) = window(p);
    let windows = fixed_windows(h, w);
    for &(_, n) in &windows {
        assert!(n <= limit, "a fixed window holds {n} > {limit}");
    }
    let (start, count) = match windows.last() {
        Some(&(s, n)) if now.max(s) < s + w => (s, n),
        _ => (now, 0),
    };
    let now = now.max(start);
    assert_eq!(d.at, t(now));
    let allowed = cost <= limit && count + cost <= limit;
    let after = if allowed { count + cost } else { count };
    assert_eq!(d.allowed, allowed);
    assert_eq!(d.remaining, limit - after);
    assert_eq!(
        d.reset_after.as_micros(),
        if after > 0 { start + w - now } else { 0 }
    );
    if !allowed && cost <= limit {
        assert_eq!(retry_us(d), Some(start + w - now));
    }
}

// ------------------------------------------------------------------ log ---

fn log_model(h: &History, p: &Params, cost: u64, now: Us, d: &Decision) {
    let (limit, w) = window(p);
    // One timestamp per unit.
    let units: Vec<Us> = h
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
    assert_eq!(d.at, t(now));
    let live: Vec<Us> = units.iter().copied().filter(|&u| u + w > now).collect();
    let n = live.len() as u64;
    let allowed = cost <= limit && n + cost <= limit;
    assert_eq!(d.allowed, allowed);
    let after = if allowed { n + cost } else { n };
    assert_eq!(d.remaining, limit - after);
    if !allowed && cost <= limit {
        // The oldest live units must leave until the cost fits.
        let leave = (n + cost - limit) as usize;
        assert_eq!(retry_us(d), Some(live[leave - 1] + w - now));
    }
    let newest = if allowed && cost > 0 {
        Some(now)
    } else {
        live.last().copied()
    };
    assert_eq!(d.reset_after.as_micros(), newest.map_or(0, |t| t + w - now));
}

// -------------------------------------------------------------- sliding ---

/// The sliding counter's documented bound, checked on the accepted history:
/// at most `limit` units in any of its consecutive windows, hence at most
/// `2 * limit` in any interval of length W.
fn sliding_model(h: &History, p: &Params, cost: u64, now: Us, d: &Decision) {
    let (limit, w) = window(p);
    // Its windows: consecutive from the first request, restarting at a
    // request after a whole empty window.
    let mut windows: Vec<(Us, u64)> = Vec::new();
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
    assert_eq!(d.at, t(now));
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
fn bucket_level(h: &History, b: &BucketParams, now: Us) -> u128 {
    let mut level: i128 = 0;
    let mut since: i128 = 0;
    for &(t, c) in h.accepted.iter().rev() {
        since += c as i128 * b.period.micros() as i128;
        level = level.max(since - b.rate.get() as i128 * (now as i128 - t as i128));
    }
    level as u128
}

fn bucket_model(h: &History, p: &Params, cost: u64, now: Us, d: &Decision) {
    let b = bucket(p);
    let (cap, per, rate) = (b.capacity.wide(), b.period.wide(), b.rate.wide());
    let now = now.max(h.latest());
    assert_eq!(d.at, t(now));
    let level = bucket_level(h, &b, now);
    assert!(level <= cap * per, "bucket above capacity");
    let need = cost as u128 * per;
    let allowed = cost <= b.capacity.get() && level + need <= cap * per;
    assert_eq!(d.allowed, allowed);
    let after = if allowed { level + need } else { level };
    assert_eq!(d.remaining as u128, (cap * per - after) / per);
    assert_eq!(d.reset_after.as_micros() as u128, after.div_ceil(rate));
    match (allowed, p) {
        (false, _) if cost <= b.capacity.get() => {
            assert_eq!(
                retry_us(d),
                Some((level + need - cap * per).div_ceil(rate) as Us)
            );
        }
        // The leaky bucket's queue: wait for the units ahead to drain.
        (true, Params::Leaky(_)) => {
            assert_eq!(retry_us(d), Some(level.div_ceil(rate) as Us));
        }
        (true, _) => assert_eq!(retry_us(d), Some(0)),
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
    fn decide(&mut self, b: &BucketParams, n: u64, t: Us, d: &Decision) {
        let (rate, per) = (b.rate.wide(), b.period.wide());
        let t_r = t as u128 * rate;
        let new_tat = self.tat.max(t_r) + n as u128 * per;
        let allow_at = new_tat.saturating_sub(b.capacity.wide() * per);
        let allowed = n <= b.capacity.get() && allow_at <= t_r;
        assert_eq!(d.allowed, allowed, "GCRA");
        if allowed {
            assert_eq!(retry_us(d), Some(0));
            if n > 0 {
                self.tat = new_tat;
            }
        } else if n <= b.capacity.get() {
            assert_eq!(retry_us(d), Some((allow_at - t_r).div_ceil(rate) as Us));
        }
    }
}

// ---------------------------------------------------------------- tests ---

fn gcra(b: BucketParams) -> Params {
    Params::bucket(Algorithm::Gcra, b).unwrap()
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn fixed_window_matches_the_reference(p in window_params(), s in steps(30)) {
        run(EPOCH, &s, |_| Params::Fixed(p.into()), fixed_model);
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
        let mut reference = Gcra { tat: 0 };
        run(EPOCH, &s, |_| gcra(p), |h, params, cost, now, d| {
            bucket_model(h, params, cost, now, d);
            reference.decide(&bucket(params), cost, now.max(h.latest()), d);
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
        run(EPOCH, &s, |i| params_of(algo, w[i], b[i]), |_, _, _, _, _| {});
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
        let w = wp(if algo == 2 { log_limit } else { limit }, period);
        let b = bp(limit, rate, period);
        let steps: Vec<Step> = raw
            .into_iter()
            .map(|(dt, cost)| Step { dt: dt >> (dt as u8 % 64), cost, params: 0 })
            .collect();
        run(start, &steps, |_| params_of(algo, w, b), |_, _, _, _, _| {});
    }
}

/// A request that spends nothing frees nothing: a denial under other
/// parameters now writes (it re-bases the state under them), and later
/// requests, under any parameters, must not be allowed more than if it had
/// not written. The reference is the same limiter where only spending
/// writes. Time only goes forward here: a re-based limiter has seen the
/// denial's time, which a clock stepping back then would not undo.
fn run_denials_free_nothing(steps: &[Step], pick: impl Fn(usize) -> Params) {
    let mut limiter = Limiter::new(&pick(steps[0].params));
    let mut reference = limiter.clone();
    let mut now = EPOCH;
    for s in steps {
        now += s.dt.unsigned_abs();
        let p = pick(s.params);
        let cost = s.cost % (p.limit() + 2);
        let d = limiter.decide(&p, cost, t(now)).unwrap();
        let v = reference.evaluate(&p, cost, t(now)).unwrap();
        let r = v.decision;
        assert!(
            !d.allowed || r.allowed,
            "allowed after a denial re-based the state: {p:?} cost {cost} at {now}: {d:?}, \
             without the denial's write {r:?}"
        );
        if d.allowed == r.allowed {
            assert!(
                d.remaining <= r.remaining,
                "more remaining after a denial re-based the state: {p:?} cost {cost} at {now}: \
                 {d:?}, without the denial's write {r:?}"
            );
        }
        if r.allowed && cost > 0 {
            reference.apply(&v.next);
        }
        // Stricter than the reference (a re-based bucket rounds its level
        // up): the reference spent what the limiter did not; carry on from
        // the limiter's state.
        if r.allowed != d.allowed {
            reference = limiter.clone();
        }
    }
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn a_denial_under_other_parameters_frees_nothing(
        algo in 0usize..6,
        w in prop::array::uniform3(window_params()),
        b in prop::array::uniform3(bucket_params()),
        s in steps(30),
    ) {
        run_denials_free_nothing(&s, |i| params_of(algo, w[i], b[i]));
    }
}

#[test]
fn sliding_estimate_is_exposed_for_the_bound() {
    // `sliding::estimate` rounds the weighted previous window up: with 10
    // units in the previous 10 s window and 1 s into the current one, 9.
    let p = wp(10, 10_000_000);
    let mut l = Limiter::new(&Params::Sliding(p));
    assert!(l.decide(&Params::Sliding(p), 10, t(0)).unwrap().allowed);
    let Limiter::Sliding(st) = &l else {
        unreachable!()
    };
    let st: &SlidingState = st;
    assert_eq!(sliding::estimate(st, t(11_000_000)), 9);
    assert_eq!(sliding::estimate(st, t(11_000_001)), 9);
    assert_eq!(sliding::estimate(st, t(25_000_000)), 0);
}

/// Regression: lowering a sliding limit below the previous window's count
/// stored a state that `is_valid` (and so the RDB/RESTORE decoder) rejected.
#[test]
fn sliding_state_with_a_lowered_limit_survives_a_round_trip() {
    let s = 1_000_000;
    let big = wp(10, 10 * s);
    let small = wp(2, 10 * s);
    let mut l = Limiter::new(&Params::Sliding(big));
    assert!(l.decide(&Params::Sliding(big), 10, t(0)).unwrap().allowed);
    // 19.9 s: previous window (10 units) weighs 0.01 -> 0.1 units.
    let d = l.decide(&Params::Sliding(small), 1, t(19_900_000)).unwrap();
    assert!(d.allowed);
    assert!(l.is_valid(), "{l:?}");
    let bytes = codec::encode(&l);
    assert_eq!(codec::decode(&bytes, codec::ENCODING_VERSION), Ok(l));
}

/// A denial under a lowered limit writes the new parameters with the count
/// it found: the stored state must still be one the decoder (RDB, RESTORE,
/// replicas) accepts.
#[test]
fn a_denial_under_a_lowered_limit_stores_a_valid_state() {
    let s = 1_000_000;
    for (high, low) in [
        (
            Params::Fixed(wp(3, s).into()),
            Params::Fixed(wp(1, s).into()),
        ),
        (
            Params::Sliding(wp(3, 10 * s)),
            Params::Sliding(wp(1, 10 * s)),
        ),
    ] {
        let mut l = Limiter::new(&high);
        assert!(l.decide(&high, 2, t(EPOCH)).unwrap().allowed);
        assert!(!l.decide(&low, 1, t(EPOCH)).unwrap().allowed);
        assert_eq!(l.params(), low);
        assert!(l.is_valid(), "{l:?}");
        let bytes = codec::encode(&l);
        assert_eq!(codec::decode(&bytes, codec::ENCODING_VERSION), Ok(l));
    }
}

// --------------------------------------------------------------- expiry ---
//
// The module keeps a limiter in a key that expires when the state is as
// good as absent (src/module/command.rs, `expiry_ms`): after each write,
// `expire_at_ms = max(ceil_ms(max(at, wall) + reset_after), wall_ms + 1)`,
// never earlier than the key's current expiry for a write that spends
// nothing (a denial keeping new parameters), and a key whose expiry is not
// after the wall clock is gone: the next
// request is decided on a fresh state. The reference is the same limiter
// kept forever.

/// The module's expiry of a key written with decision `d` at `wall_ms`.
fn expiry_ms(d: &Decision, wall_ms: u64) -> u64 {
    let wall = Instant::from_millis(wall_ms as i64);
    let at = (d.at.max(wall) + d.reset_after).ceil_millis();
    at.max(wall.ceil_millis() + 1)
}

/// One key as the module handles it: a limiter with an absolute expiry.
#[derive(Default)]
struct Key {
    held: Option<(Limiter, u64)>,
}

impl Key {
    /// Drops the key if it has expired at `wall_ms`; returns what it held.
    fn expire(&mut self, wall_ms: u64) -> Option<(Limiter, u64)> {
        match self.held {
            Some((_, at)) if at <= wall_ms => self.held.take(),
            _ => None,
        }
    }

    /// A request at `now` with the wall clock at `wall_ms`: decide on what
    /// the key holds (a fresh state if nothing), install and set the expiry
    /// when it writes. Returns the decision and whether it wrote.
    fn request(&mut self, wall_ms: u64, p: &Params, cost: u64, now: Instant) -> (Decision, bool) {
        let v = match &self.held {
            Some((l, _)) => l.evaluate(p, cost, now).unwrap(),
            None => Limiter::evaluate_fresh(p, cost, now),
        };
        if v.writes {
            let at = expiry_ms(&v.decision, wall_ms);
            match &mut self.held {
                Some((l, exp)) => {
                    l.apply(&v.next);
                    *exp = if v.spends { at } else { at.max(*exp) };
                }
                None => self.held = Some((Limiter::create(p, &v.next), at)),
            }
        }
        (v.decision, v.writes)
    }

    fn limiter(&self) -> Option<&Limiter> {
        self.held.as_ref().map(|(l, _)| l)
    }
}

/// The reference: the same limiter, never expired.
#[derive(Default)]
struct Forever {
    held: Option<Limiter>,
}

impl Forever {
    fn request(&mut self, p: &Params, cost: u64, now: Instant) -> (Decision, bool) {
        let v = match &self.held {
            Some(l) => l.evaluate(p, cost, now).unwrap(),
            None => Limiter::evaluate_fresh(p, cost, now),
        };
        if v.writes {
            match &mut self.held {
                Some(l) => l.apply(&v.next),
                None => self.held = Some(Limiter::create(p, &v.next)),
            }
        }
        (v.decision, v.writes)
    }
}

/// The key and its reference, side by side.
///
/// A key that expired is forgotten while the reference keeps its state, so
/// they can only be compared where the module promises that forgetting it
/// changes nothing: for requests under the parameters the limiter last
/// spent (or tried to spend) under, at or after the key's expiry. Two kinds
/// of request fall outside and are not compared, as no expiry could serve
/// them (the reference then takes the key's state again):
/// - a time before the expiry, after the key is gone (`AT` behind, or the
///   wall clock stepped back): the reference still sees its old state;
/// - parameters the limiter had not spent under last: the reference
///   reinterprets its old state under them (1/1s for a while, then 1/1h),
///   the module never kept it for them.
///
/// Before that, and once a covered request wrote both again, the key and
/// the reference hold the same state and every decision must be the same.
struct ExpirySim {
    wall_ms: u64,
    key: Key,
    forever: Forever,
    /// The parameters of the latest request with a cost, allowed or not.
    spent: Option<Params>,
    /// The key expired while the reference still holds a state: the
    /// parameters spent under last and the key's expiry.
    forgotten: Option<(Params, Instant)>,
    stats: ExpiryStats,
}

/// What a run exercised.
#[derive(Clone, Copy, Debug, Default)]
struct ExpiryStats {
    expired: usize,
    compared_after_expiry: usize,
    not_comparable: usize,
}

impl ExpirySim {
    fn new(wall_ms: u64) -> Self {
        ExpirySim {
            wall_ms,
            key: Key::default(),
            forever: Forever::default(),
            spent: None,
            forgotten: None,
            stats: ExpiryStats::default(),
        }
    }

    /// The key expires at `wall_ms`: it must have been as good as absent
    /// from its expiry on, under the parameters spent under last.
    fn expire(&mut self, wall_ms: u64) {
        let Some((gone, expiry_ms)) = self.key.expire(wall_ms) else {
            return;
        };
        self.stats.expired += 1;
        assert!(
            self.forgotten.is_none(),
            "a key expired twice without a write"
        );
        assert_eq!(
            Some(&gone),
            self.forever.held.as_ref(),
            "the key and its reference parted"
        );
        let p = self
            .spent
            .expect("a key is only written by a request with a cost");
        for at in [expiry_ms, wall_ms] {
            let at = Instant::from_millis(at as i64);
            for cost in 0..=p.limit() + 1 {
                let kept = gone.evaluate(&p, cost, at).unwrap().decision;
                let fresh = Limiter::evaluate_fresh(&p, cost, at).decision;
                assert_eq!(
                    kept, fresh,
                    "expired at {expiry_ms} ms (wall {wall_ms} ms) while it mattered at {at:?}: {gone:?}"
                );
            }
        }
        self.forgotten = Some((p, Instant::from_millis(expiry_ms as i64)));
    }

    /// Moves the wall clock to `wall_ms` (backwards too), decides one
    /// request at `now` on the key and on the reference, and compares.
    fn request(&mut self, wall_ms: u64, p: &Params, cost: u64, now: Instant) -> Decision {
        self.wall_ms = wall_ms;
        self.expire(wall_ms);
        let (d, wrote) = self.key.request(wall_ms, p, cost, now);
        let (m, m_wrote) = self.forever.request(p, cost, now);
        let case = || {
            format!(
                "{p:?} cost {cost} at {now:?} (wall {wall_ms} ms): with expiry {d:?}, never expired {m:?}"
            )
        };
        let comparable = match self.forgotten {
            None => true,
            Some((spent, expiry)) => *p == spent && now >= expiry,
        };
        if comparable {
            assert_eq!(d, m, "expiry changed a decision: {}", case());
            assert_eq!(
                wrote,
                m_wrote,
                "expiry changed whether a request writes: {}",
                case()
            );
            if self.forgotten.is_some() {
                self.stats.compared_after_expiry += 1;
                if wrote {
                    self.forgotten = None;
                }
            }
            if self.forgotten.is_none() {
                assert_eq!(
                    self.key.limiter(),
                    self.forever.held.as_ref(),
                    "the key and its reference parted: {}",
                    case()
                );
            }
        } else {
            self.stats.not_comparable += 1;
            self.forever.held = self.key.limiter().cloned();
            self.forgotten = None;
        }
        if cost > 0 {
            self.spent = Some(*p);
        }
        d
    }
}

/// One request of an expiry run.
#[derive(Clone, Debug)]
struct ExpiryStep {
    /// Wall clock step in ms: usually forward, sometimes back.
    dt_ms: i64,
    /// `AT` relative to the wall clock in ms, or the wall clock itself.
    at_ms: Option<i64>,
    cost: u64,
    params: usize,
}

fn expiry_step() -> impl Strategy<Value = ExpiryStep> {
    let dt_ms = prop_oneof![
        2 => Just(0i64),
        8 => 1i64..=1_500,
        2 => 1_500i64..=6_000,
        1 => 60_000i64..=700_000,
        2 => -3_000i64..=-1,
    ];
    // Minutes ahead or behind, with some jitter so times interleave.
    let at_ms = prop_oneof![
        5 => Just(None),
        2 => (prop::sample::select(vec![60_000i64, 300_000]), 0i64..=2_000)
            .prop_map(|(m, j)| Some(m + j)),
        2 => (prop::sample::select(vec![60_000i64, 300_000]), 0i64..=2_000)
            .prop_map(|(m, j)| Some(-m - j)),
    ];
    (dt_ms, at_ms, 0u64..1000, 0usize..3).prop_map(|(dt_ms, at_ms, cost, params)| ExpiryStep {
        dt_ms,
        at_ms,
        cost,
        params,
    })
}

/// Windows and periods from 1 µs to 10 minutes, mostly around a second,
/// so keys expire within a run.
fn expiry_span() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => 1u64..=1_000,
        6 => 1_000u64..=3_000_000,
        1 => 3_000_000u64..=600_000_000,
    ]
}

fn expiry_params(algo: usize) -> impl Strategy<Value = Params> {
    (1u64..=4, 1u64..=4, expiry_span()).prop_map(move |(limit, rate, span)| {
        params_of(algo, wp(limit, span), bp(limit, rate, span))
    })
}

/// The wall clock of the expiry runs starts at a plausible present, in ms.
const WALL_MS: u64 = EPOCH / 1000;

fn run_expiry(sets: &[Params], steps: &[ExpiryStep]) -> ExpiryStats {
    let mut sim = ExpirySim::new(WALL_MS);
    for s in steps {
        let wall_ms = sim.wall_ms.saturating_add_signed(s.dt_ms);
        let now = Instant::from_millis(wall_ms as i64 + s.at_ms.unwrap_or(0));
        let p = sets[s.params % sets.len()];
        let cost = s.cost % (p.limit() + 2);
        sim.request(wall_ms, &p, cost, now);
    }
    sim.stats
}

/// An expiry run: two or three parameter sets of one algorithm, and the
/// requests.
fn expiry_case() -> impl Strategy<Value = (Vec<Params>, Vec<ExpiryStep>)> {
    (0usize..6).prop_flat_map(|algo| {
        (
            prop::collection::vec(expiry_params(algo), 2..=3),
            prop::collection::vec(expiry_step(), 1..80),
        )
    })
}

proptest! {
    #![proptest_config(config(256))]

    /// Expiry never grants extra: with parameters changing (tightened and
    /// loosened), `AT` minutes ahead of or behind the wall clock and the
    /// wall clock stepping back, every decision is the never-expired
    /// limiter's wherever forgetting the key is promised to change nothing
    /// (see `ExpirySim`), and a key only expires once its state is as good
    /// as absent.
    #[test]
    fn expiry_never_grants_extra((sets, s) in expiry_case()) {
        run_expiry(&sets, &s);
    }
}

/// The expiry runs do exercise expired keys: keys expire, and requests are
/// compared with the never-expired limiter after that.
#[test]
fn expiry_runs_reach_expired_keys() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let (mut expired, mut compared) = (0, 0);
    for _ in 0..100 {
        let (sets, steps) = expiry_case().new_tree(&mut runner).unwrap().current();
        let stats = run_expiry(&sets, &steps);
        expired += stats.expired;
        compared += stats.compared_after_expiry;
    }
    assert!(
        expired >= 100 && compared >= 100,
        "{expired} keys expired, {compared} comparisons after expiry"
    );
}

/// The two cases of the issue: a denied request under tightened
/// parameters keeps the key alive under them.
#[test]
fn a_tightened_limit_outlives_the_old_expiry() {
    let s = 1_000_000;
    let wall = |ms: u64| (WALL_MS + ms, Instant::from_millis((WALL_MS + ms) as i64));

    // FIXED 1/1s, then 1/1h (denied at +0.5 s): at +1.05 s still denied.
    let per_second = Params::Fixed(wp(1, s).into());
    let per_hour = Params::Fixed(wp(1, 3600 * s).into());
    let mut sim = ExpirySim::new(WALL_MS);
    let (ms, now) = wall(0);
    assert!(sim.request(ms, &per_second, 1, now).allowed);
    let (ms, now) = wall(500);
    assert!(!sim.request(ms, &per_hour, 1, now).allowed);
    let (ms, now) = wall(1050);
    let d = sim.request(ms, &per_hour, 1, now);
    assert!(!d.allowed, "{d:?}");
    assert!(
        sim.key.limiter().is_some(),
        "the key expired under the old window"
    );

    // TOKEN 10 at 10/s COST 10, then 10 at 1/s COST 5 (denied): at +1.05 s
    // COST 5 still denied (9.5 units left to drain at 1/s).
    let fast = Params::Token(bp(10, 10, s));
    let slow = Params::Token(bp(10, 1, s));
    let mut sim = ExpirySim::new(WALL_MS);
    let (ms, now) = wall(0);
    assert!(sim.request(ms, &fast, 10, now).allowed);
    let (ms, now) = wall(500);
    assert!(!sim.request(ms, &slow, 5, now).allowed);
    let (ms, now) = wall(1050);
    let d = sim.request(ms, &slow, 5, now);
    assert!(!d.allowed, "{d:?}");
    assert!(
        sim.key.limiter().is_some(),
        "the key expired under the old rate"
    );
}

/// A limiter whose time is ahead of the wall clock (`AT` in the future)
/// keeps its key that much longer.
#[test]
fn a_limiter_ahead_of_the_wall_clock_keeps_its_key() {
    let s = 1_000_000;
    let p = Params::Fixed(wp(1, s).into());
    let ahead = 300_000;
    let mut sim = ExpirySim::new(WALL_MS);
    let at = |ms: u64| Instant::from_millis((WALL_MS + ms) as i64);
    assert!(sim.request(WALL_MS, &p, 1, at(ahead)).allowed);
    // Two seconds later on the wall clock, half a second later for AT.
    let d = sim.request(WALL_MS + 2_000, &p, 1, at(ahead + 500));
    assert!(!d.allowed, "{d:?}");
    assert_eq!(d.retry_after, Some(Duration::from_micros(500_000)));
}
