//! Fixed window counter.
//!
//! A window counts at most `limit` units. By default it opens at the first
//! request after the previous one has closed (like the classic `INCR` +
//! `EXPIRE` recipe); an aligned window is instead a slot of a grid fixed to
//! the clock and the calendar ([`super::calendar`]), so every client sees
//! the same reset time. Any instant inside one window gives the same
//! decision, so a clock that steps back inside the window changes nothing;
//! one that steps back before the window's start is treated as the start.

use std::ffi::CStr;

use super::limiter::{Algo, Argument, Decoder, Encoder};
use std::num::NonZeroU64;

use super::calendar::{window_at, Months, Offset, Span};
use super::{Count, Decision, Duration, Instant, Period, WindowParams};

/// Where a fixed window's boundaries fall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FixedWindow {
    /// A window of this length opens at the first request after the last
    /// one closed.
    FirstHit(Period),
    /// Windows are the slots of a grid counted from the Unix epoch in the
    /// local time of the offset. Only this kind can be months long, so a
    /// month that starts at a key's first hit can't be written down.
    Aligned(Span, Offset),
}

impl FixedWindow {
    /// The end of the window that starts at `start`, read through this
    /// grid: `start` may have been stored under other parameters, which
    /// then apply to the current window as a changed length does.
    fn end_of(self, start: Instant) -> Instant {
        match self {
            FixedWindow::FirstHit(w) => start + w.duration(),
            FixedWindow::Aligned(span, offset) => window_at(span, offset, start).1,
        }
    }

    /// The window a request at `now` opens when none is open.
    fn open_at(self, now: Instant) -> (Instant, Instant) {
        match self {
            FixedWindow::FirstHit(w) => (now, now + w.duration()),
            FixedWindow::Aligned(span, offset) => window_at(span, offset, now),
        }
    }
}

/// Longest aligned window of microseconds: 10,000 days (longer ones are
/// written in months), so that it fits beside its offset in one word.
pub const MAX_ALIGNED_US: u64 = 10_000 * 86_400_000_000;

/// A [`FixedWindow`] in one word, so a fixed window's state stays 32 bytes
/// whatever its kind: the top two bits say which kind, an aligned window
/// keeps its offset (shifted to 0..=2878) in the next 12 and its length
/// (µs up to [`MAX_ALIGNED_US`], below 2^50, or months) in the low 50. A
/// first-hit window is its length alone (below 2^57), so that kind is 0.
/// Only [`FixedParams::new`] makes one, so every value reads back.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Packed(NonZeroU64);

const KIND_SHIFT: u32 = 62;
const OFFSET_SHIFT: u32 = 50;
const LOW_MASK: u64 = (1 << OFFSET_SHIFT) - 1;
const ALIGNED_MICROS: u64 = 1;
const ALIGNED_MONTHS: u64 = 2;

const _: () = assert!(super::MAX_DURATION_US < 1 << KIND_SHIFT);
const _: () = assert!(MAX_ALIGNED_US <= LOW_MASK);
const _: () = assert!(2 * (Offset::MAX_MINUTES as u64) < 1 << (KIND_SHIFT - OFFSET_SHIFT));

impl Packed {
    fn new(window: FixedWindow) -> Option<Packed> {
        let v = match window {
            FixedWindow::FirstHit(w) => w.micros(),
            FixedWindow::Aligned(span, offset) => {
                let (kind, low) = match span {
                    Span::Micros(w) if w.micros() <= MAX_ALIGNED_US => (ALIGNED_MICROS, w.micros()),
                    Span::Micros(_) => return None,
                    Span::Months(n) => (ALIGNED_MONTHS, u64::from(n.get())),
                };
                // Within ±MAX_MINUTES, so the shifted offset is 0..=2878.
                let off = u64::try_from(offset.minutes() + Offset::MAX_MINUTES).ok()?;
                kind << KIND_SHIFT | off << OFFSET_SHIFT | low
            }
        };
        NonZeroU64::new(v).map(Packed)
    }

    fn get(self) -> FixedWindow {
        let v = self.0.get();
        let low = v & LOW_MASK;
        let offset = || {
            let off = i32::try_from(v >> OFFSET_SHIFT & 0xFFF).unwrap_or(0);
            Offset::from_minutes(off - Offset::MAX_MINUTES).unwrap_or(Offset::UTC)
        };
        // `new` made every value, so each branch finds what it wrote; the
        // fallbacks are never taken.
        let one = Period::MIN;
        match v >> KIND_SHIFT {
            0 => FixedWindow::FirstHit(Period::from_micros(v).unwrap_or(one)),
            ALIGNED_MICROS => FixedWindow::Aligned(
                Span::Micros(Period::from_micros(low).unwrap_or(one)),
                offset(),
            ),
            _ => {
                let n = u32::try_from(low).ok().and_then(Months::new);
                FixedWindow::Aligned(Span::Months(n.unwrap_or(Months::ONE)), offset())
            }
        }
    }
}

/// At most `limit` units per window.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FixedParams {
    pub limit: Count,
    window: Packed,
}

impl FixedParams {
    /// `None` for an aligned window of microseconds longer than
    /// [`MAX_ALIGNED_US`].
    pub fn new(limit: Count, window: FixedWindow) -> Option<FixedParams> {
        Some(FixedParams {
            limit,
            window: Packed::new(window)?,
        })
    }

    pub fn window(&self) -> FixedWindow {
        self.window.get()
    }
}

impl std::fmt::Debug for FixedParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixedParams")
            .field("limit", &self.limit)
            .field("window", &self.window())
            .finish()
    }
}

impl From<WindowParams> for FixedParams {
    /// The plain window: opened by the first hit.
    fn from(w: WindowParams) -> Self {
        FixedParams {
            limit: w.limit,
            // A period is positive and below 2^57: kind 0, never zero.
            window: Packed(NonZeroU64::new(w.window.micros()).unwrap_or(NonZeroU64::MIN)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedState {
    pub params: FixedParams,
    /// Start of the current window; meaningless while `count == 0`.
    pub start: Instant,
    pub count: u64,
}

impl FixedState {
    pub(crate) fn new(params: FixedParams) -> Self {
        FixedState {
            params,
            start: Instant::EPOCH,
            count: 0,
        }
    }

    /// Start, end and count of the window in force at `now` (a new, empty
    /// window when the stored one has closed).
    fn window_at(&self, p: &FixedParams, now: Instant) -> (Instant, Instant, u64) {
        if self.count > 0 {
            let now = now.max(self.start);
            let end = p.window().end_of(self.start);
            if now < end {
                return (self.start, end, self.count);
            }
        }
        let (start, end) = p.window().open_at(now);
        (start, end, 0)
    }

    /// Decides a request and returns the state it leaves when it writes:
    /// spent when allowed with a cost, else the same state under `p`.
    pub(crate) fn evaluate(
        &self,
        p: &FixedParams,
        cost: u64,
        now: Instant,
    ) -> (Decision, FixedState) {
        let limit = p.limit.get();
        let (start, end, count) = self.window_at(p, now);
        let now = now.max(start);
        let allowed = cost <= limit && count <= limit - cost;
        let after = if allowed { count + cost } else { count };
        let retry_after = if allowed {
            Some(Duration::ZERO)
        } else if cost > limit {
            None
        } else {
            Some(end - now)
        };
        let next = if allowed && cost > 0 {
            FixedState {
                params: *p,
                start,
                count: after,
            }
        } else {
            FixedState {
                params: *p,
                ..*self
            }
        };
        let d = Decision {
            allowed,
            limit,
            remaining: limit.saturating_sub(after),
            retry_after,
            reset_after: if after > 0 { end - now } else { Duration::ZERO },
            at: now,
        };
        (d, next)
    }

    /// Gives back up to `n` units of the window in force at `now`, never
    /// into a closed one; answers how many. A window emptied this way is as
    /// if never opened: the next request opens a new one.
    pub(crate) fn refund(&mut self, n: u64, now: Instant) -> u64 {
        let (_, _, count) = self.window_at(&self.params, now);
        let given = n.min(count);
        // A closed window reads as empty: only an open one is written.
        if given > 0 {
            self.count -= given;
        }
        given
    }

    /// Whether the stored fields satisfy the invariants `evaluate` keeps.
    /// The count may exceed the limit: a denied request that lowered the
    /// limit keeps the count it found, so raising the limit again later
    /// grants nothing that was already spent.
    pub(crate) fn is_valid(&self) -> bool {
        self.count <= super::MAX_COUNT
    }
}

/// The fixed window (`RL.FIXED`).
pub struct Fixed;

impl Algo for Fixed {
    const SUMMARY: &'static CStr = c"Fixed window counter: at most limit units per window, the window opening at the first request, or aligned to the clock and calendar with ALIGN (months: mo).";
    const COMPLEXITY: &'static CStr = c"O(1)";

    type Params = FixedParams;
    type State = FixedState;
    type Next = FixedState;

    fn new(p: FixedParams) -> FixedState {
        FixedState::new(p)
    }
    fn params(s: &FixedState) -> FixedParams {
        s.params
    }
    fn limit(p: &FixedParams) -> u64 {
        p.limit.get()
    }
    #[inline]
    fn evaluate(
        s: &FixedState,
        p: &FixedParams,
        cost: u64,
        now: Instant,
    ) -> (Decision, FixedState) {
        s.evaluate(p, cost, now)
    }
    #[inline]
    fn apply(s: &mut FixedState, next: &FixedState) {
        *s = *next;
    }
    fn refund(s: &FixedState, n: u64, now: Instant) -> (u64, FixedState) {
        let mut next = *s;
        let given = next.refund(n, now);
        (given, next)
    }
    fn describe(s: &FixedState, field: &mut impl FnMut(&'static str, i128)) {
        field("limit", s.params.limit.get().into());
        match s.params.window() {
            FixedWindow::FirstHit(w) => field("window_us", w.micros().into()),
            FixedWindow::Aligned(span, offset) => {
                match span {
                    Span::Micros(w) => field("window_us", w.micros().into()),
                    Span::Months(n) => field("window_months", n.get().into()),
                }
                field("align", 1);
                field("offset_minutes", offset.minutes().into());
            }
        }
        field("window_start_us", s.start.as_micros().into());
        field("count", s.count.into());
    }
    fn is_valid(s: &FixedState) -> bool {
        s.is_valid()
    }
    fn from_window(w: WindowParams) -> Option<FixedParams> {
        Some(w.into())
    }

    fn arguments(p: &FixedParams, out: &mut impl FnMut(Argument)) {
        out(Argument::Count(p.limit.get()));
        match p.window() {
            FixedWindow::FirstHit(w) => out(Argument::Duration(w.duration())),
            FixedWindow::Aligned(span, offset) => {
                out(match span {
                    Span::Micros(w) => Argument::Duration(w.duration()),
                    Span::Months(n) => Argument::Months(n.get()),
                });
                out(Argument::Align(offset));
            }
        }
    }

    const ALT_TAG: Option<u8> = Some(ALIGNED_TAG);

    fn uses_alt_tag(p: &FixedParams) -> bool {
        matches!(p.window(), FixedWindow::Aligned(..))
    }

    /// A window opened by the first hit: limit, window in µs (as the first
    /// release wrote it). An aligned one (under [`ALIGNED_TAG`]): limit,
    /// the span's unit ([`SPAN_MICROS`] or [`SPAN_MONTHS`]) and length, and
    /// the offset in signed minutes.
    fn write_params(p: &FixedParams, w: &mut impl Encoder) {
        w.u64(p.limit.get());
        match p.window() {
            FixedWindow::FirstHit(window) => w.u64(window.micros()),
            FixedWindow::Aligned(span, offset) => {
                match span {
                    Span::Micros(p) => {
                        w.u8(SPAN_MICROS);
                        w.u64(p.micros());
                    }
                    Span::Months(n) => {
                        w.u8(SPAN_MONTHS);
                        w.u64(n.get().into());
                    }
                }
                // Offsets are within ±23:59 minutes, so they fit an `i16`.
                w.i16(i16::try_from(offset.minutes()).unwrap_or(0));
            }
        }
    }

    fn read_params<D: Decoder>(tag: u8, r: &mut D) -> Result<FixedParams, D::Error> {
        let limit = r.count()?;
        if tag != ALIGNED_TAG {
            return Ok(FixedParams::from(WindowParams {
                limit,
                window: r.period()?,
            }));
        }
        let span = match r.u8()? {
            SPAN_MICROS => Span::Micros(r.period()?),
            SPAN_MONTHS => {
                let n = u32::try_from(r.u64()?).ok().and_then(Months::new);
                Span::Months(n.ok_or_else(|| r.bad_parameter())?)
            }
            _ => return Err(r.bad_parameter()),
        };
        let offset = Offset::from_minutes(r.i16()?.into()).ok_or_else(|| r.bad_parameter())?;
        FixedParams::new(limit, FixedWindow::Aligned(span, offset)).ok_or_else(|| r.bad_parameter())
    }

    /// The window's start, its count.
    fn write_state(s: &FixedState, w: &mut impl Encoder) {
        w.time(s.start);
        w.u64(s.count);
    }

    fn read_state<D: Decoder>(params: FixedParams, r: &mut D) -> Result<FixedState, D::Error> {
        Ok(FixedState {
            params,
            start: r.time()?,
            count: r.u64()?,
        })
    }
}

/// Codec tag of FIXED's parameters for an aligned window (encoding version
/// 2); a window opened by the first hit keeps FIXED's own tag and layout.
pub(crate) const ALIGNED_TAG: u8 = 7;
pub(crate) const SPAN_MICROS: u8 = 0;
pub(crate) const SPAN_MONTHS: u8 = 1;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::calendar::Months;
    use crate::algo::testing::{step, t, window, Raw};
    use crate::algo::{MAX_ALIGNED_US, MAX_COUNT, MAX_DURATION_US, MAX_TIME_US};

    const S: u64 = 1_000_000;
    const H: u64 = 3600 * S;
    const D: u64 = 24 * H;

    /// A window opened by the first hit.
    fn p(limit: u64, window_us: u64) -> FixedParams {
        window(limit, window_us).into()
    }

    fn offset(minutes: i32) -> Offset {
        Offset::from_minutes(minutes).unwrap()
    }

    /// An aligned window of `window_us`.
    fn aligned(limit: u64, window_us: u64, minutes: i32) -> FixedParams {
        FixedParams::new(
            Count::new(limit).unwrap(),
            FixedWindow::Aligned(
                Span::Micros(Period::from_micros(window_us).unwrap()),
                offset(minutes),
            ),
        )
        .unwrap()
    }

    /// An aligned window of `n` calendar months.
    fn months(limit: u64, n: u32, minutes: i32) -> FixedParams {
        FixedParams::new(
            Count::new(limit).unwrap(),
            FixedWindow::Aligned(Span::Months(Months::new(n).unwrap()), offset(minutes)),
        )
        .unwrap()
    }

    impl FixedState {
        fn decide(&mut self, p: &FixedParams, cost: u64, now: u64) -> Raw {
            step(
                self,
                |s| s.params,
                *p,
                cost,
                |s| s.evaluate(p, cost, t(now)),
            )
        }
    }

    /// (now, cost, allowed, remaining, retry_after, reset_after)
    type Row = (u64, u64, bool, u64, Option<u64>, u64);

    fn run(params: FixedParams, rows: &[Row]) -> FixedState {
        let mut st = FixedState::new(params);
        for (i, &(now, cost, allowed, remaining, retry, reset)) in rows.iter().enumerate() {
            let d = st.decide(&params, cost, now);
            assert_eq!(
                (d.allowed, d.remaining, d.retry_after, d.reset_after),
                (allowed, remaining, retry, reset),
                "row {i}: now={now} cost={cost}"
            );
        }
        st
    }

    #[test]
    fn counts_exactly_to_the_limit_then_resets_at_window_end() {
        run(
            p(3, 10 * S),
            &[
                (100 * S, 1, true, 2, Some(0), 10 * S),
                (101 * S, 1, true, 1, Some(0), 9 * S),
                (102 * S, 1, true, 0, Some(0), 8 * S),
                (103 * S, 1, false, 0, Some(7 * S), 7 * S),
                (110 * S - 1, 1, false, 0, Some(1), 1),
                (110 * S, 1, true, 2, Some(0), 10 * S),
            ],
        );
    }

    #[test]
    fn cost_and_peek() {
        let st = run(
            p(10, 60 * S),
            &[
                (0, 0, true, 10, Some(0), 0),
                (S, 7, true, 3, Some(0), 60 * S),
                (2 * S, 4, false, 3, Some(59 * S), 59 * S),
                (2 * S, 0, true, 3, Some(0), 59 * S),
                (3 * S, 11, false, 3, None, 58 * S),
                (3 * S, 3, true, 0, Some(0), 58 * S),
            ],
        );
        assert_eq!(st.count, 10);
    }

    #[test]
    fn denied_and_peek_change_nothing() {
        let params = p(1, 10 * S);
        let mut st = FixedState::new(params);
        assert!(st.decide(&params, 1, 0).changed);
        let before = st;
        let d = st.decide(&params, 1, S);
        assert!(!d.allowed && !d.changed);
        assert!(!st.decide(&params, 0, S).changed);
        assert_eq!(st, before);
    }

    #[test]
    fn a_denial_under_new_parameters_persists_them() {
        let mut st = FixedState::new(p(1, S));
        assert!(st.decide(&p(1, S), 1, 0).changed);
        let d = st.decide(&p(1, 3600 * S), 1, S / 2);
        assert!(!d.allowed && d.changed);
        assert_eq!(d.retry_after, Some(3600 * S - S / 2));
        assert_eq!((st.params, st.count, st.start), (p(1, 3600 * S), 1, t(0)));
        // A peek never writes, even with other parameters.
        assert!(!st.decide(&p(1, 2 * S), 0, S).changed);
    }

    #[test]
    fn clock_going_back_is_treated_as_the_window_start() {
        let params = p(2, 10 * S);
        let mut st = FixedState::new(params);
        st.decide(&params, 1, 50 * S);
        let d = st.decide(&params, 1, 40 * S);
        assert_eq!((d.allowed, d.reset_after), (true, 10 * S));
        assert!(!st.decide(&params, 1, 45 * S).allowed);
    }

    #[test]
    fn new_parameters_apply_to_the_current_window() {
        let small = p(2, 10 * S);
        let big = p(5, 10 * S);
        let mut st = FixedState::new(small);
        st.decide(&small, 2, 0);
        assert!(!st.decide(&small, 1, S).allowed);
        let d = st.decide(&big, 1, S);
        assert_eq!((d.allowed, d.remaining), (true, 2));
        assert_eq!(st.params, big);
        // A shorter window closes the current one earlier.
        let short = p(5, 2 * S);
        let d = st.decide(&short, 1, 2 * S);
        assert_eq!((d.allowed, d.remaining, d.reset_after), (true, 4, 2 * S));
    }

    #[test]
    fn huge_values_do_not_overflow() {
        let params = p(MAX_COUNT, MAX_DURATION_US);
        let mut st = FixedState::new(params);
        let now = MAX_TIME_US;
        let d = st.decide(&params, MAX_COUNT, now);
        assert!(d.allowed);
        assert_eq!(d.reset_after, MAX_DURATION_US);
        let d = st.decide(&params, 1, now);
        assert_eq!(d.retry_after, Some(MAX_DURATION_US));
    }

    /// 2024-02-29T12:00Z, a leap day, in µs since the epoch.
    const LEAP_NOON: u64 = 1_709_208_000 * S;

    #[test]
    fn an_aligned_day_resets_at_local_midnight() {
        // At -05:00, 12:00Z is 07:00 local: midnight local is 05:00Z, so the
        // window ends 17 h later, whenever the first request came.
        let day = aligned(2, D, -300);
        run(
            day,
            &[
                (LEAP_NOON, 1, true, 1, Some(0), 17 * H),
                (LEAP_NOON + H, 1, true, 0, Some(0), 16 * H),
                (LEAP_NOON + 2 * H, 1, false, 0, Some(15 * H), 15 * H),
                // 05:00Z on 1 March opens the next day's window.
                (LEAP_NOON + 17 * H - 1, 1, false, 0, Some(1), 1),
                (LEAP_NOON + 17 * H, 1, true, 1, Some(0), D),
            ],
        );
        // In UTC the same requests see midnight UTC.
        run(
            aligned(2, D, 0),
            &[(LEAP_NOON, 1, true, 1, Some(0), 12 * H)],
        );
    }

    #[test]
    fn a_calendar_month_resets_on_the_first() {
        // From noon on 29 February 2024 to 1 March 00:00Z: 12 h; March then
        // lasts 31 days, April 30.
        let month = months(3, 1, 0);
        let march = LEAP_NOON + 12 * H;
        run(
            month,
            &[
                (LEAP_NOON, 3, true, 0, Some(0), 12 * H),
                (LEAP_NOON + H, 1, false, 0, Some(11 * H), 11 * H),
                (march, 1, true, 2, Some(0), 31 * D),
                (march + 31 * D - 1, 2, true, 0, Some(0), 1),
                (march + 31 * D, 1, true, 2, Some(0), 30 * D),
            ],
        );
        // At +02:00 the month starts 2 h earlier in UTC: 10 h from noon.
        run(
            months(3, 1, 120),
            &[(LEAP_NOON, 1, true, 2, Some(0), 10 * H)],
        );
        // A quarter from 29 February ends on 1 April.
        run(
            months(3, 3, 0),
            &[(LEAP_NOON, 1, true, 2, Some(0), 12 * H + 31 * D)],
        );
    }

    #[test]
    fn a_changed_grid_applies_to_the_stored_window() {
        // A count from a first-hit window read through a daily grid lasts
        // until the end of the day holding its start.
        let mut st = FixedState::new(p(2, H));
        st.decide(&p(2, H), 2, LEAP_NOON);
        let d = st.decide(&aligned(2, D, 0), 1, LEAP_NOON + 2 * H);
        assert_eq!((d.allowed, d.retry_after), (false, Some(10 * H)));
        assert_eq!(st.params, aligned(2, D, 0));
        // Then a new offset moves that day's end.
        let d = st.decide(&aligned(2, D, -300), 1, LEAP_NOON + 2 * H);
        assert_eq!((d.allowed, d.retry_after), (false, Some(15 * H)));
        // Back to a first-hit window: its length counts from the start.
        let d = st.decide(&p(2, 3 * H), 1, LEAP_NOON + 2 * H);
        assert_eq!((d.allowed, d.retry_after), (false, Some(H)));
    }

    #[test]
    fn an_aligned_window_near_the_epoch_starts_at_the_epoch() {
        // At +05:00 the first local day starts at 19:00Z on 31 December 1969;
        // the window is reported from the epoch and ends at 19:00Z.
        run(aligned(1, D, 300), &[(0, 1, true, 0, Some(0), 19 * H)]);
        run(months(1, 1, 60), &[(0, 1, true, 0, Some(0), 31 * D - H)]);
    }

    #[test]
    fn aligned_windows_at_the_end_of_time_do_not_overflow() {
        let now = MAX_TIME_US;
        for params in [
            aligned(MAX_COUNT, MAX_ALIGNED_US, 1439),
            months(MAX_COUNT, 1200, -1439),
        ] {
            let mut st = FixedState::new(params);
            let d = st.decide(&params, MAX_COUNT, now);
            assert!(d.allowed && d.reset_after > 0, "{params:?}");
            assert!(d.reset_after <= MAX_DURATION_US, "{params:?}");
            let d = st.decide(&params, 1, now);
            assert_eq!(d.retry_after, Some(d.reset_after), "{params:?}");
        }
    }

    #[test]
    fn every_window_packs_into_one_word_and_reads_back() {
        let mut windows = vec![
            FixedWindow::FirstHit(Period::MIN),
            FixedWindow::FirstHit(Period::from_micros(MAX_DURATION_US).unwrap()),
        ];
        for minutes in -Offset::MAX_MINUTES..=Offset::MAX_MINUTES {
            let o = offset(minutes);
            for n in [1, 2, 12, 1199, 1200] {
                windows.push(FixedWindow::Aligned(
                    Span::Months(Months::new(n).unwrap()),
                    o,
                ));
            }
            for us in [1, 1000, D, MAX_ALIGNED_US] {
                let w = Span::Micros(Period::from_micros(us).unwrap());
                windows.push(FixedWindow::Aligned(w, o));
            }
        }
        for w in windows {
            let p = FixedParams::new(Count::new(7).unwrap(), w).unwrap();
            assert_eq!(p.window(), w);
        }
        let too_long = Span::Micros(Period::from_micros(MAX_ALIGNED_US + 1).unwrap());
        let w = FixedWindow::Aligned(too_long, Offset::UTC);
        assert_eq!(FixedParams::new(Count::new(7).unwrap(), w), None);
        assert_eq!(std::mem::size_of::<FixedParams>(), 16);
    }
}
