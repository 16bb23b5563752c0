//! Binary encodings of limiters (RDB, DUMP/RESTORE, AOF, digests) and of the
//! replicated operation. Pure Rust, so the decoder can be fuzzed.
//!
//! Layout (little-endian): a tag byte naming the algorithm, its parameters,
//! then its state. That is all of version 1, and still how version 2 writes
//! a plain limiter, byte for byte; version 2 adds a wrapper for a limiter in
//! the penalty box (its own tag, the block's end, then the limiter). Decoding is strict: every
//! bound the parser enforces on parameters is enforced again, the state must
//! satisfy the algorithm's invariants, and trailing bytes are an error.
//! Anything else would let a crafted `RESTORE` payload put a state into the
//! keyspace that the algorithms never produce.

use std::mem::MaybeUninit;

use crate::algo::limiter::{Decoder, Encoder, Shape};
use crate::algo::value::latest_block_end;
use crate::algo::{
    Blocked, Count, Duration, Instant, Limiter, Params, Period, UnixMs, Value, MAX_TIME_US,
};

mod lease;

/// What a lease op asks, as the algorithm decides it: encoded in lease ops.
pub use crate::algo::LeaseAction;

/// The encoding version written to RDB; `decode` accepts versions up to it.
/// Version 2 adds the penalty box; a plain limiter is written as version 1
/// wrote it, so its digest and `DUMP` payload are unchanged.
pub const ENCODING_VERSION: i32 = 2;

/// Tag of a blocked limiter (version 2); algorithms are 1 to 6.
const BLOCKED_TAG: u8 = 0x10;

/// Tag, in place of FIXED's, of the parameters of an aligned fixed window
/// (version 2); see [`crate::algo::fixed::ALIGNED_TAG`].
const ALIGNED_FIXED_TAG: u8 = crate::algo::fixed::ALIGNED_TAG;

/// Tag of a key's concurrency leases (version 2).
const LEASES_TAG: u8 = 0x11;

/// The byte leading a replicated operation, naming its kind. 1 and 2 are
/// what the first releases sent; a kind is never reused.
mod kind {
    /// A decided request (`RL.APPLY`).
    pub(crate) const DECIDE: u8 = 1;
    /// A decided `RL.ALL` call (`RL.APPLYALL`).
    pub(crate) const ALL: u8 = 2;
    /// A decided request that started a penalty block.
    pub(crate) const DECIDE_PENALTY: u8 = 3;
    /// A decided `RL.ALL` call that started penalty blocks.
    pub(crate) const ALL_PENALTY: u8 = 4;
    /// A refund (`RL.APPLY`).
    pub(crate) const REFUND: u8 = 5;
    /// An acquired or renewed lease (`RL.APPLY`).
    pub(crate) const ACQUIRE: u8 = 6;
    /// A released lease (`RL.APPLY`).
    pub(crate) const RELEASE: u8 = 7;
    /// A renewed lease (`RL.APPLY`).
    pub(crate) const RENEW: u8 = 8;
    /// [`DECIDE`] with its cost and expiry in 4 bytes each (see
    /// [`super::encode_op_compact`]).
    pub(crate) const DECIDE_COMPACT: u8 = 9;
    /// [`DECIDE_PENALTY`] with its cost and expiry in 4 bytes each.
    pub(crate) const DECIDE_PENALTY_COMPACT: u8 = 10;
}

/// Most limits one `RL.ALL` op carries (the parser's own bound).
pub const ALL_OP_MAX_LIMITS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    Truncated,
    TrailingBytes,
    UnknownAlgorithm(u8),
    BadParameter,
    BadState,
    UnsupportedVersion(i32),
    /// An op of a kind this module does not know (or for another command).
    UnknownOp(u8),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated => write!(f, "truncated ratelimit value"),
            DecodeError::TrailingBytes => write!(f, "unexpected bytes after ratelimit value"),
            DecodeError::UnknownAlgorithm(t) => write!(f, "unknown ratelimit algorithm tag {t}"),
            DecodeError::BadParameter => write!(f, "ratelimit parameter out of range"),
            DecodeError::BadState => write!(f, "inconsistent ratelimit state"),
            DecodeError::UnknownOp(k) => write!(
                f,
                "operation kind {k} is unknown here (replicas must be upgraded before their master)"
            ),
            DecodeError::UnsupportedVersion(v) => {
                write!(
                    f,
                    "ratelimit encoding version {v} is newer than this module ({ENCODING_VERSION})"
                )
            }
        }
    }
}

/// Where encoded bytes go: a `Vec` for states (a log can be large), a
/// fixed buffer for replication ops, which are small and made on every
/// write.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Longest encoded parameters: tag and three numbers.
const PARAMS_MAX_LEN: usize = 1 + 3 * 8;

/// Longest single-key op: an acquire (kind, limit, units, ttl, time,
/// expiry, and the lease id with its length), longer than a decision
/// (kind, parameters, cost, time, expiry, penalty).
pub(crate) const OP_MAX_LEN: usize = 1 + 5 * 8 + 1 + crate::algo::MAX_LEASE_ID_LEN;

const _: () = assert!(OP_MAX_LEN >= 1 + PARAMS_MAX_LEN + 4 * 8);

/// Longest `RL.ALL` op: kind, cost, time, penalty, count, then parameters
/// and expiry per limit.
pub(crate) const ALL_OP_MAX_LEN: usize = 1 + 3 * 8 + 1 + ALL_OP_MAX_LIMITS * (PARAMS_MAX_LEN + 8);

/// An encoded op, held on the stack. The buffer is not zeroed first: an
/// `RL.ALL` op's is 2 KiB, and zeroing it cost more than the whole op's
/// encoding (callgrind counts each byte `memset` writes).
pub struct OpBytes<const N: usize> {
    buf: [MaybeUninit<u8>; N],
    len: usize,
}

impl<const N: usize> OpBytes<N> {
    /// An empty op, for [`encode_all_op_into`].
    #[inline]
    pub fn new() -> Self {
        OpBytes {
            buf: [MaybeUninit::uninit(); N],
            len: 0,
        }
    }
}

impl<const N: usize> Sink for OpBytes<N> {
    fn put(&mut self, bytes: &[u8]) {
        // Ops are bounded by construction; an overflow would be a bug, and is
        // dropped (then refused by the decoder) rather than a panic inside
        // the server.
        let Some(end) = self.len.checked_add(bytes.len()) else {
            return;
        };
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            for (d, &b) in dst.iter_mut().zip(bytes) {
                d.write(b);
            }
            self.len = end;
        }
    }
}

impl<const N: usize> Default for OpBytes<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Sink> Sink for &mut S {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        (**self).put(bytes);
    }
}

impl<const N: usize> std::ops::Deref for OpBytes<N> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let written = &self.buf[..self.len];
        // SAFETY: `put` is the only writer and advances `len` only over
        // bytes it has just written, so the first `len` bytes are
        // initialised; `MaybeUninit<u8>` has the layout of `u8`.
        unsafe { &*(written as *const [MaybeUninit<u8>] as *const [u8]) }
    }
}

struct Writer<S: Sink>(S);

impl<S: Sink> Writer<S> {
    fn u8(&mut self, v: u8) {
        self.0.put(&[v]);
    }
    fn u32(&mut self, v: u32) {
        self.0.put(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.put(&v.to_le_bytes());
    }
    fn u128(&mut self, v: u128) {
        self.0.put(&v.to_le_bytes());
    }
    fn time(&mut self, t: Instant) {
        self.u64(t.as_micros());
    }
    /// An expiry: its milliseconds as they are, any value (replay checks
    /// its range).
    fn unix_ms(&mut self, t: UnixMs) {
        self.u64(t.as_millis());
    }
    fn i16(&mut self, v: i16) {
        self.0.put(&v.to_le_bytes());
    }
}

impl<S: Sink> Encoder for Writer<S> {
    #[inline]
    fn u8(&mut self, v: u8) {
        Writer::u8(self, v);
    }
    #[inline]
    fn i16(&mut self, v: i16) {
        Writer::i16(self, v);
    }
    #[inline]
    fn u64(&mut self, v: u64) {
        Writer::u64(self, v);
    }
    #[inline]
    fn u128(&mut self, v: u128) {
        Writer::u128(self, v);
    }
    #[inline]
    fn time(&mut self, t: Instant) {
        Writer::time(self, t);
    }
}

struct Reader<'a>(&'a [u8]);

impl Decoder for Reader<'_> {
    type Error = DecodeError;
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Reader::u8(self)
    }
    fn i16(&mut self) -> Result<i16, DecodeError> {
        Reader::i16(self)
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Reader::u64(self)
    }
    fn u128(&mut self) -> Result<u128, DecodeError> {
        Reader::u128(self)
    }
    fn time(&mut self) -> Result<Instant, DecodeError> {
        Reader::time(self)
    }
    fn count(&mut self) -> Result<Count, DecodeError> {
        Reader::count(self)
    }
    fn period(&mut self) -> Result<Period, DecodeError> {
        Reader::period(self)
    }
    fn times_len(&mut self, max: u64) -> Result<usize, DecodeError> {
        let n = Reader::u64(self)?;
        // Checked against the bytes present before anything is allocated.
        if n > max || n > (self.0.len() / 8) as u64 {
            return Err(DecodeError::BadState);
        }
        Ok(n as usize)
    }
    fn bad_parameter(&self) -> DecodeError {
        DecodeError::BadParameter
    }
    fn unknown_tag(&self, tag: u8) -> DecodeError {
        DecodeError::UnknownAlgorithm(tag)
    }
}

impl Reader<'_> {
    fn unix_ms(&mut self) -> Result<UnixMs, DecodeError> {
        Ok(UnixMs::from_millis(self.u64()?))
    }
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(DecodeError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    fn u128(&mut self) -> Result<u128, DecodeError> {
        Ok(u128::from_le_bytes(self.take()?))
    }
    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_le_bytes(self.take()?))
    }
    fn time(&mut self) -> Result<Instant, DecodeError> {
        let t = self.u64()?;
        if t > MAX_TIME_US {
            return Err(DecodeError::BadState);
        }
        Ok(Instant::from_micros(t))
    }
    fn block_end(&mut self) -> Result<Instant, DecodeError> {
        let t = self.u64()?;
        if t > latest_block_end().as_micros() {
            return Err(DecodeError::BadState);
        }
        Ok(Instant::from_micros(t))
    }
    fn period_duration(&mut self) -> Result<Duration, DecodeError> {
        Ok(self.period()?.duration())
    }
    fn count(&mut self) -> Result<Count, DecodeError> {
        Count::new(self.u64()?).ok_or(DecodeError::BadParameter)
    }
    fn period(&mut self) -> Result<Period, DecodeError> {
        Period::from_micros(self.u64()?).ok_or(DecodeError::BadParameter)
    }
    /// A cost: 0 (a peek) up to the largest count.
    fn cost(&mut self) -> Result<u64, DecodeError> {
        cost_of(self.u64()?)
    }
    fn finish(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

/// A cost as decoded: 0 (a peek) up to the largest count.
fn cost_of(v: u64) -> Result<u64, DecodeError> {
    if v == 0 {
        return Ok(0);
    }
    Count::new(v)
        .map(Count::get)
        .ok_or(DecodeError::BadParameter)
}

/// Whether [`encode_op_compact`] shortens a decision under `params`: a
/// bucket's (the shapes whose op is over 44 bytes).
fn shortened(params: &Params) -> bool {
    matches!(params.algorithm().shape(), Shape::Bucket | Shape::Gcra)
}

impl<'a> Reader<'a> {
    /// The next `n` bytes, borrowed.
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(DecodeError::Truncated)?;
        self.0 = rest;
        Ok(head)
    }
}

/// Every algorithm's parameters as stored: its tag, then its fields (see
/// each [`crate::algo::Algo::write_params`]).
#[inline]
fn write_params<S: Sink>(w: &mut Writer<S>, params: &Params) {
    params.write(w);
}

fn read_params(r: &mut Reader) -> Result<Params, DecodeError> {
    Params::read(r)
}

/// Encodes a limiter (the stored value of a key): its parameters, then its
/// state (see each [`crate::algo::Algo::write_state`]).
pub fn encode(limiter: &Limiter) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64));
    limiter.write(&mut w);
    w.0
}

/// Decodes a limiter written by `encode` under encoding version `version`.
pub fn decode(bytes: &[u8], version: i32) -> Result<Limiter, DecodeError> {
    if !(1..=ENCODING_VERSION).contains(&version) {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    // Aligned windows came with version 2.
    if version < 2 && bytes.first() == Some(&ALIGNED_FIXED_TAG) {
        return Err(DecodeError::UnknownAlgorithm(ALIGNED_FIXED_TAG));
    }
    let mut r = Reader(bytes);
    let limiter = Limiter::read(&mut r)?;
    r.finish()?;
    if !limiter.is_valid() {
        return Err(DecodeError::BadState);
    }
    Ok(limiter)
}

/// Encodes what a key holds.
pub fn encode_value(value: &Value) -> Vec<u8> {
    match value {
        Value::Limiter(l) => encode(l),
        Value::Blocked(b) => {
            let mut w = Writer(Vec::with_capacity(72));
            w.u8(BLOCKED_TAG);
            w.time(b.until);
            w.0.extend_from_slice(&encode(&b.limiter));
            w.0
        }
        Value::Leases(l) => {
            let mut w = Writer(Vec::with_capacity(32 + l.leases().len() * 34));
            w.u8(LEASES_TAG);
            lease::write_leases(&mut w, l);
            w.0
        }
    }
}

/// Decodes what `encode_value` wrote, under encoding version `version`.
pub fn decode_value(bytes: &[u8], version: i32) -> Result<Value, DecodeError> {
    match bytes.first() {
        Some(&BLOCKED_TAG) if version >= 2 => {
            let mut r = Reader(&bytes[1..]);
            let until = r.block_end()?;
            let limiter = decode(r.0, version)?;
            Ok(Value::Blocked(Box::new(Blocked { until, limiter })))
        }
        Some(&LEASES_TAG) if version >= 2 => {
            let mut r = Reader(&bytes[1..]);
            let leases = lease::read_leases(&mut r)?;
            r.finish()?;
            Ok(Value::Leases(Box::new(leases)))
        }
        _ => decode(bytes, version).map(Value::Limiter),
    }
}

/// Version byte leading the policies record (RDB aux data).
const POLICIES_VERSION: u8 = 1;

/// Encodes every policy of a server, for the RDB: a version byte, the
/// count, then per policy its name (length byte, bytes), its parameters,
/// its penalty in µs (0: none) and a flags byte (1: shadow).
pub fn encode_policies(policies: &crate::policy::Policies) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(16 + policies.len() * 64));
    w.u8(POLICIES_VERSION);
    w.u64(policies.len() as u64);
    for (name, p) in policies {
        // Names are at most MAX_NAME_LEN bytes (the parser's bound).
        w.u8(u8::try_from(name.len()).unwrap_or(u8::MAX));
        w.0.put(name.as_bytes());
        write_params(&mut w, &p.params);
        w.u64(p.penalty.map_or(0, Duration::as_micros));
        w.u8(p.shadow as u8);
    }
    w.0
}

/// Decodes what `encode_policies` wrote, as strictly as any value: names
/// in the encoder's order (ascending, so none repeats), and every byte
/// canonical, so re-encoding what it answers gives back the same bytes.
/// Pure, for the RDB loader and the fuzz target alike.
pub fn decode_policies(bytes: &[u8]) -> Result<crate::policy::Policies, DecodeError> {
    use crate::policy::{valid_name, Policy, MAX_POLICIES};
    let mut r = Reader(bytes);
    let version = r.u8()?;
    if version != POLICIES_VERSION {
        return Err(DecodeError::UnsupportedVersion(version.into()));
    }
    let n = r.u64()?;
    if n > MAX_POLICIES as u64 {
        return Err(DecodeError::BadState);
    }
    let mut out = crate::policy::Policies::new();
    for _ in 0..n {
        let len = usize::from(r.u8()?);
        let name = r.bytes(len)?;
        if !valid_name(name) {
            return Err(DecodeError::BadParameter);
        }
        let params = read_params(&mut r)?;
        let penalty = match r.u64()? {
            0 => None,
            us => Some(
                Period::from_micros(us)
                    .ok_or(DecodeError::BadParameter)?
                    .duration(),
            ),
        };
        let shadow = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(DecodeError::BadParameter),
        };
        // Ascending, as the encoder writes a BTreeMap: a repeat or another
        // order is not something it wrote.
        if out
            .last_key_value()
            .is_some_and(|(last, _)| last.as_bytes() >= name)
        {
            return Err(DecodeError::BadState);
        }
        let name = String::from_utf8_lossy(name).into_owned();
        let policy = Policy {
            params,
            penalty,
            shadow,
        };
        out.insert(name, policy);
    }
    r.finish()?;
    Ok(out)
}

/// One decided request as sent to replicas and the AOF: replaying it needs
/// no clock, so every copy computes the very same state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    pub params: Params,
    pub cost: u64,
    pub now: Instant,
    /// Absolute expiry of the key in Unix milliseconds, as set on the master.
    pub expire_at_ms: UnixMs,
    /// The request's `PENALTY`, sent only when it started a block (so the
    /// op of every other request is what the first release sent).
    pub penalty: Option<Duration>,
}

pub fn encode_op(op: &Op) -> OpBytes<OP_MAX_LEN> {
    let mut w = Writer(OpBytes::new());
    w.u8(match op.penalty {
        None => kind::DECIDE,
        Some(_) => kind::DECIDE_PENALTY,
    });
    write_params(&mut w, &op.params);
    w.u64(op.cost);
    w.time(op.now);
    w.unix_ms(op.expire_at_ms);
    if let Some(p) = op.penalty {
        w.u64(p.as_micros());
    }
    w.0
}

/// [`encode_op`] in 8 bytes less, where its figures allow (else exactly
/// [`encode_op`]): the cost in 4 bytes, and the expiry as the milliseconds
/// after the op's time, in 4 bytes (49 days). A bucket's op is then 42
/// bytes, not 50: under the 44 Redis keeps in one allocation with its
/// header, which `RM_Replicate` pays on every call. What the master sends
/// with `ratelimit.compact-ops yes`; read by this release and later ones
/// only, so it is written only once the operator says every replica and AOF
/// reader is one.
///
/// Only a bucket's op is shortened: a window's is 44 bytes at most already,
/// and shortening it would cost the checks and gain nothing.
#[inline]
pub fn encode_op_compact(op: &Op) -> OpBytes<OP_MAX_LEN> {
    if !shortened(&op.params) {
        return encode_op(op);
    }
    let short = (
        u32::try_from(op.cost),
        op.expire_at_ms
            .as_millis()
            .checked_sub(op.now.as_micros() / 1000)
            .map(u32::try_from),
    );
    let (Ok(cost), Some(Ok(after))) = short else {
        return encode_op(op);
    };
    let mut w = Writer(OpBytes::new());
    w.u8(match op.penalty {
        None => kind::DECIDE_COMPACT,
        Some(_) => kind::DECIDE_PENALTY_COMPACT,
    });
    write_params(&mut w, &op.params);
    w.u32(cost);
    w.time(op.now);
    w.u32(after);
    if let Some(p) = op.penalty {
        w.u64(p.as_micros());
    }
    w.0
}

/// Whether `bytes` is an op [`encode_op_compact`] shortened.
pub fn is_compact_op(bytes: &[u8]) -> bool {
    matches!(
        bytes.first(),
        Some(&(kind::DECIDE_COMPACT | kind::DECIDE_PENALTY_COMPACT))
    )
}

/// A refund, as sent to replicas and the AOF: the units the master gave
/// back (a replica must give back exactly as many), at that time, and the
/// key's expiry after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefundOp {
    pub given: u64,
    pub now: Instant,
    pub expire_at_ms: UnixMs,
}

pub fn encode_refund_op(op: &RefundOp) -> OpBytes<OP_MAX_LEN> {
    let mut w = Writer(OpBytes::new());
    w.u8(kind::REFUND);
    w.u64(op.given);
    w.time(op.now);
    w.unix_ms(op.expire_at_ms);
    w.0
}

/// A lease operation, as sent to replicas and the AOF: enough to replay it
/// without a clock, and the key's expiry after it (0: the key is gone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseOp<'a> {
    pub what: LeaseAction,
    pub id: &'a [u8],
    pub now: Instant,
    pub expire_at_ms: UnixMs,
}

pub fn encode_lease_op(op: &LeaseOp) -> OpBytes<OP_MAX_LEN> {
    let mut w = Writer(OpBytes::new());
    match op.what {
        LeaseAction::Acquire { limit, units, ttl } => {
            w.u8(kind::ACQUIRE);
            w.u64(limit.get());
            w.u64(units);
            w.u64(ttl.as_micros());
        }
        LeaseAction::Release => w.u8(kind::RELEASE),
        LeaseAction::Renew { ttl } => {
            w.u8(kind::RENEW);
            w.u64(ttl.as_micros());
        }
    }
    w.time(op.now);
    w.unix_ms(op.expire_at_ms);
    // Ids are at most MAX_LEASE_ID_LEN bytes (the parser's bound).
    w.u8(u8::try_from(op.id.len()).unwrap_or(u8::MAX));
    w.0.put(op.id);
    w.0
}

/// Any single-key op (`RL.APPLY key <op>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnyOp<'a> {
    Decide(Op),
    Refund(RefundOp),
    Lease(LeaseOp<'a>),
}

pub fn decode_any_op(bytes: &[u8]) -> Result<AnyOp<'_>, DecodeError> {
    let mut r = Reader(bytes);
    let op = match r.u8()? {
        k @ (kind::DECIDE_COMPACT | kind::DECIDE_PENALTY_COMPACT) => {
            let params = read_params(&mut r)?;
            // Only what `encode_op_compact` writes: a bucket's.
            if !shortened(&params) {
                return Err(DecodeError::BadParameter);
            }
            let cost = cost_of(r.u32()?.into())?;
            let now = r.time()?;
            let after = u64::from(r.u32()?);
            AnyOp::Decide(Op {
                params,
                cost,
                now,
                // At most MAX_TIME_US / 1000 + u32::MAX: no overflow.
                expire_at_ms: UnixMs::from_millis(now.as_micros() / 1000 + after),
                penalty: if k == kind::DECIDE_PENALTY_COMPACT {
                    Some(r.period_duration()?)
                } else {
                    None
                },
            })
        }
        k @ (kind::DECIDE | kind::DECIDE_PENALTY) => {
            let params = read_params(&mut r)?;
            AnyOp::Decide(Op {
                params,
                cost: r.cost()?,
                now: r.time()?,
                expire_at_ms: r.unix_ms()?,
                penalty: if k == kind::DECIDE_PENALTY {
                    Some(r.period_duration()?)
                } else {
                    None
                },
            })
        }
        kind::REFUND => AnyOp::Refund(RefundOp {
            given: r.count()?.get(),
            now: r.time()?,
            expire_at_ms: r.unix_ms()?,
        }),
        k @ (kind::ACQUIRE | kind::RELEASE | kind::RENEW) => {
            let what = match k {
                kind::ACQUIRE => LeaseAction::Acquire {
                    limit: r.count()?,
                    units: r.count()?.get(),
                    ttl: r.period_duration()?,
                },
                kind::RENEW => LeaseAction::Renew {
                    ttl: r.period_duration()?,
                },
                _ => LeaseAction::Release,
            };
            let now = r.time()?;
            let expire_at_ms = r.unix_ms()?;
            let len = usize::from(r.u8()?);
            if !(1..=crate::algo::MAX_LEASE_ID_LEN).contains(&len) {
                return Err(DecodeError::BadParameter);
            }
            AnyOp::Lease(LeaseOp {
                what,
                id: r.bytes(len)?,
                now,
                expire_at_ms,
            })
        }
        k => return Err(DecodeError::UnknownOp(k)),
    };
    r.finish()?;
    Ok(op)
}

/// A decided request's op (what `RL.APPLY` carried before refunds).
pub fn decode_op(bytes: &[u8]) -> Result<Op, DecodeError> {
    match decode_any_op(bytes)? {
        AnyOp::Decide(op) => Ok(op),
        _ => Err(DecodeError::UnknownOp(bytes[0])),
    }
}

/// One `RL.ALL` call as sent to replicas and the AOF, in a single op: the
/// shared cost and time, and per key (in order) its parameters and the
/// absolute expiry the master set if it wrote the key (0 if it did not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllOp {
    pub cost: u64,
    pub now: Instant,
    /// The call's `PENALTY`, sent only when it started a block.
    pub penalty: Option<Duration>,
    pub limits: Vec<(Params, UnixMs)>,
}

/// Encodes an `RL.ALL` op from its parts, without allocating.
pub fn encode_all_op<'a>(
    cost: u64,
    now: Instant,
    penalty: Option<Duration>,
    limits: impl ExactSizeIterator<Item = (&'a Params, UnixMs)>,
) -> OpBytes<ALL_OP_MAX_LEN> {
    let mut out = OpBytes::new();
    encode_all_op_into(&mut out, cost, now, penalty, limits);
    out
}

/// [`encode_all_op`] into `out` (empty), which the caller holds: the op's
/// buffer is 2 KiB, and returning it copied all of it on every call.
pub fn encode_all_op_into<'a>(
    out: &mut OpBytes<ALL_OP_MAX_LEN>,
    cost: u64,
    now: Instant,
    penalty: Option<Duration>,
    limits: impl ExactSizeIterator<Item = (&'a Params, UnixMs)>,
) {
    let mut w = Writer(out);
    w.u8(match penalty {
        None => kind::ALL,
        Some(_) => kind::ALL_PENALTY,
    });
    w.u64(cost);
    w.time(now);
    if let Some(p) = penalty {
        w.u64(p.as_micros());
    }
    // At most ALL_OP_MAX_LIMITS; more would be truncated and refused.
    w.u8(u8::try_from(limits.len()).unwrap_or(u8::MAX));
    for (params, expire_at_ms) in limits {
        write_params(&mut w, params);
        w.unix_ms(expire_at_ms);
    }
}

pub fn decode_all_op(bytes: &[u8]) -> Result<AllOp, DecodeError> {
    let mut r = Reader(bytes);
    let k = r.u8()?;
    if k != kind::ALL && k != kind::ALL_PENALTY {
        return Err(DecodeError::UnknownOp(k));
    }
    let cost = r.cost()?;
    let now = r.time()?;
    let penalty = if k == kind::ALL_PENALTY {
        Some(r.period_duration()?)
    } else {
        None
    };
    let n = usize::from(r.u8()?);
    if n == 0 || n > ALL_OP_MAX_LIMITS {
        return Err(DecodeError::BadParameter);
    }
    let mut limits = Vec::with_capacity(n);
    for _ in 0..n {
        let params = read_params(&mut r)?;
        limits.push((params, r.unix_ms()?));
    }
    r.finish()?;
    Ok(AllOp {
        cost,
        now,
        penalty,
        limits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::fixed::{SPAN_MICROS, SPAN_MONTHS};
    use crate::algo::{BucketParams, FixedParams, GcraParams, WindowParams};

    fn samples() -> Vec<Limiter> {
        let w = WindowParams::new(5, 1_000_000).unwrap();
        let b = BucketParams::new(7, 3, 60_000_000).unwrap();
        let mut out = Vec::new();
        for params in crate::algo::testing::every_algorithm(w, b) {
            let mut l = Limiter::new(&params);
            l.decide(&params, 2, Instant::from_micros(1_700_000_000_000_000))
                .unwrap();
            l.decide(&params, 1, Instant::from_micros(1_700_000_000_500_000))
                .unwrap();
            out.push(l);
        }
        out
    }

    #[test]
    fn round_trips_every_algorithm() {
        for l in samples() {
            let bytes = encode(&l);
            assert_eq!(decode(&bytes, ENCODING_VERSION), Ok(l.clone()));
        }
    }

    #[test]
    fn aligned_fixed_windows_have_their_own_tag() {
        use crate::algo::{FixedWindow, Months, Offset, Span};
        let aligned = |span, minutes| {
            Params::Fixed(
                FixedParams::new(
                    Count::new(5).unwrap(),
                    FixedWindow::Aligned(span, Offset::from_minutes(minutes).unwrap()),
                )
                .unwrap(),
            )
        };
        let month = Span::Months(Months::new(3).unwrap());
        let day = Span::Micros(Period::from_micros(86_400_000_000).unwrap());
        for p in [aligned(month, -300), aligned(day, 1439), aligned(day, 0)] {
            let mut l = Limiter::new(&p);
            l.decide(&p, 2, Instant::from_micros(1_700_000_000_000_000))
                .unwrap();
            let bytes = encode(&l);
            assert_eq!(bytes[0], ALIGNED_FIXED_TAG);
            assert_eq!(decode(&bytes, ENCODING_VERSION), Ok(l.clone()));
            // Not in version 1, which had no such windows.
            assert!(decode(&bytes, 1).is_err());
            // Cut anywhere or with a byte more, refused.
            for n in 0..bytes.len() {
                assert!(decode(&bytes[..n], ENCODING_VERSION).is_err());
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(
                decode(&longer, ENCODING_VERSION),
                Err(DecodeError::TrailingBytes)
            );
        }
        // Tag 7, limit 5, then a bad unit, 0 or 1201 months, an offset of
        // ±24:00.
        let raw = |unit: u8, n: u64, minutes: i16| {
            let mut b = vec![ALIGNED_FIXED_TAG];
            b.extend(5u64.to_le_bytes());
            b.push(unit);
            b.extend(n.to_le_bytes());
            b.extend(minutes.to_le_bytes());
            b.extend(0u64.to_le_bytes());
            b.extend(0u64.to_le_bytes());
            b
        };
        assert!(decode(&raw(SPAN_MONTHS, 1, 60), ENCODING_VERSION).is_ok());
        for bad in [
            raw(2, 1, 0),
            raw(SPAN_MONTHS, 0, 0),
            raw(SPAN_MONTHS, 1201, 0),
            raw(SPAN_MONTHS, 1 << 32, 0),
            raw(SPAN_MICROS, 0, 0),
            raw(SPAN_MICROS, crate::algo::MAX_ALIGNED_US + 1, 0),
            raw(SPAN_MONTHS, 1, 1440),
            raw(SPAN_MONTHS, 1, -1440),
        ] {
            assert_eq!(
                decode(&bad, ENCODING_VERSION),
                Err(DecodeError::BadParameter),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_blocked_limiter_round_trips_and_a_plain_one_is_written_as_version_1() {
        for l in samples() {
            let plain = Value::Limiter(l.clone());
            assert_eq!(encode_value(&plain), encode(&l));
            assert_eq!(decode_value(&encode(&l), 1), Ok(plain));
            let blocked = Value::Blocked(Box::new(Blocked {
                until: Instant::from_micros(1_700_000_900_000_000),
                limiter: l,
            }));
            let bytes = encode_value(&blocked);
            assert_eq!(decode_value(&bytes, 2), Ok(blocked.clone()));
            // Version 1 knew no blocks.
            assert!(decode_value(&bytes, 1).is_err());
            for n in 0..bytes.len() {
                assert!(decode_value(&bytes[..n], 2).is_err(), "cut at {n}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(decode_value(&longer, 2).is_err());
            // A block ending beyond any a penalty can set.
            let mut bad = bytes;
            bad[1..9].copy_from_slice(&u64::MAX.to_le_bytes());
            assert_eq!(decode_value(&bad, 2), Err(DecodeError::BadState));
        }
    }

    #[test]
    fn rejects_every_truncation_and_extension() {
        for l in samples() {
            let bytes = encode(&l);
            for n in 0..bytes.len() {
                assert!(
                    decode(&bytes[..n], 1).is_err(),
                    "{:?} cut at {n}",
                    l.algorithm()
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(decode(&longer, 1), Err(DecodeError::TrailingBytes));
        }
    }

    #[test]
    fn rejects_newer_versions_and_bad_values() {
        let l = &samples()[0];
        let bytes = encode(l);
        assert_eq!(decode(&bytes, 3), Err(DecodeError::UnsupportedVersion(3)));
        let mut bad = bytes.clone();
        bad[0] = 99;
        assert_eq!(decode(&bad, 1), Err(DecodeError::UnknownAlgorithm(99)));
        // A count above any limit (one above the stored limit is valid: a
        // denied request lowered the limit).
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 8..].copy_from_slice(&(crate::algo::MAX_COUNT + 1).to_le_bytes());
        assert_eq!(decode(&bad, 1), Err(DecodeError::BadState));
        // Zero window.
        let mut bad = bytes;
        bad[9..17].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(decode(&bad, 1), Err(DecodeError::BadParameter));
    }

    #[test]
    fn log_length_cannot_force_a_huge_allocation() {
        let params = Params::Log(WindowParams::new(crate::algo::MAX_COUNT, 1).unwrap());
        let mut bytes = encode(&Limiter::new(&params));
        let n = bytes.len();
        bytes[n - 8..].copy_from_slice(&(crate::algo::MAX_COUNT).to_le_bytes());
        assert_eq!(decode(&bytes, 1), Err(DecodeError::BadState));
    }

    #[test]
    fn policies_round_trip_and_are_strict() {
        use crate::policy::{Policies, Policy};
        let mut all = Policies::new();
        let b = BucketParams::new(10, 5, 1_000_000).unwrap();
        all.insert(
            "free".into(),
            Policy {
                params: Params::Token(b),
                penalty: None,
                shadow: false,
            },
        );
        all.insert(
            "login:v2".into(),
            Policy {
                params: Params::Fixed(WindowParams::new(5, 60_000_000).unwrap().into()),
                penalty: Some(Duration::from_micros(900_000_000)),
                shadow: true,
            },
        );
        let bytes = encode_policies(&all);
        assert_eq!(decode_policies(&bytes).as_ref(), Ok(&all));
        for n in 0..bytes.len() {
            assert!(decode_policies(&bytes[..n]).is_err(), "cut at {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_policies(&longer).is_err());
        assert_eq!(
            decode_policies(&encode_policies(&Policies::new())),
            Ok(Policies::new())
        );
        // A name the parser refuses.
        let mut bad = bytes.clone();
        bad[10] = b' ';
        assert!(decode_policies(&bad).is_err());
        // The same two policies out of order, and one twice: the encoder
        // writes neither.
        let one = |name: &str, p: &Policy| {
            let mut m = Policies::new();
            m.insert(name.to_string(), *p);
            encode_policies(&m)[9..].to_vec()
        };
        let (free, login) = (&all["free"], &all["login:v2"]);
        for records in [
            [one("login:v2", login), one("free", free)],
            [one("free", free), one("free", free)],
        ] {
            let mut b = vec![POLICIES_VERSION];
            b.extend_from_slice(&2u64.to_le_bytes());
            b.extend(records.concat());
            assert_eq!(decode_policies(&b), Err(DecodeError::BadState));
        }
        let mut b = vec![POLICIES_VERSION];
        b.extend_from_slice(&2u64.to_le_bytes());
        b.extend([one("free", free), one("login:v2", login)].concat());
        assert_eq!(b, bytes);
    }

    /// A GCRA decision's op: 50 bytes as 0.1.0 sent it.
    fn gcra_op() -> Op {
        Op {
            params: Params::Gcra(GcraParams::of_bucket(
                &BucketParams::new(16, 30, 60_000_000).unwrap(),
            )),
            cost: 3,
            now: Instant::from_micros(1_700_000_000_123_000),
            expire_at_ms: UnixMs::from_millis(1_700_000_006_123),
            penalty: None,
        }
    }

    #[test]
    fn op_round_trips() {
        let op = gcra_op();
        let bytes = encode_op(&op);
        // Without a penalty, byte for byte what 0.1.0 sent.
        assert_eq!(bytes[0], 1);
        assert_eq!(bytes.len(), 50);
        assert_eq!(decode_op(&bytes), Ok(op));
        assert!(decode_op(&bytes[..bytes.len() - 1]).is_err());
        let op = Op {
            penalty: Some(Duration::from_micros(900_000_000)),
            ..op
        };
        let bytes = encode_op(&op);
        assert_eq!(bytes[0], 3);
        assert_eq!(decode_op(&bytes), Ok(op));
        for n in 0..bytes.len() {
            assert!(decode_any_op(&bytes[..n]).is_err(), "cut at {n}");
        }
        // A zero penalty is no penalty: refused.
        let mut bad = bytes.to_vec();
        let n = bad.len();
        bad[n - 8..].copy_from_slice(&0u64.to_le_bytes());
        assert!(decode_any_op(&bad).is_err());
        let refund = RefundOp {
            given: 2,
            now: Instant::from_micros(1_700_000_000_123_000),
            expire_at_ms: UnixMs::from_millis(1_700_000_006_123),
        };
        let bytes = encode_refund_op(&refund);
        assert_eq!(decode_any_op(&bytes), Ok(AnyOp::Refund(refund)));
        assert!(decode_op(&bytes).is_err());
        for n in 0..bytes.len() {
            assert!(decode_any_op(&bytes[..n]).is_err(), "cut at {n}");
        }
        let mut bad = bytes.to_vec();
        bad[1..9].copy_from_slice(&0u64.to_le_bytes());
        assert!(decode_any_op(&bad).is_err(), "a refund of nothing");
    }

    #[test]
    fn compact_ops_are_a_buckets_op_in_42_bytes() {
        let op = gcra_op();
        let bytes = encode_op_compact(&op);
        assert_eq!((bytes[0], bytes.len()), (kind::DECIDE_COMPACT, 42));
        assert_eq!(decode_op(&bytes), Ok(op));
        assert_eq!(&bytes[26..30], &3u32.to_le_bytes());
        assert_eq!(&bytes[38..], &6_000u32.to_le_bytes());
        // Figures that don't fit in 4 bytes: the full op.
        let far = Op {
            expire_at_ms: UnixMs::from_millis(1_700_000_000_123 + (1 << 32)),
            ..op
        };
        assert_eq!(&*encode_op_compact(&far), &*encode_op(&far));
        // A window's op is short already: written as ever, and a compact
        // one is refused (it is not what the encoder writes).
        let window = Op {
            params: Params::Fixed(
                crate::algo::FixedParams::new(
                    Count::new(5).unwrap(),
                    crate::algo::FixedWindow::FirstHit(Period::from_micros(1_000_000).unwrap()),
                )
                .unwrap(),
            ),
            ..op
        };
        let full = encode_op_compact(&window);
        assert_eq!(&*full, &*encode_op(&window));
        assert!(full.len() <= 44);
        let mut forged = vec![kind::DECIDE_COMPACT];
        forged.extend_from_slice(&full[1..18]);
        forged.extend_from_slice(&3u32.to_le_bytes());
        forged.extend_from_slice(&full[26..34]);
        forged.extend_from_slice(&6_000u32.to_le_bytes());
        assert_eq!(decode_any_op(&forged), Err(DecodeError::BadParameter));
    }

    #[test]
    fn all_op_round_trips_and_is_strict() {
        let a = Params::Token(BucketParams::new(10, 10, 1_000_000).unwrap());
        let b = Params::Fixed(WindowParams::new(1000, 86_400_000_000).unwrap().into());
        let now = Instant::from_micros(1_700_000_000_123_000);
        let bytes = encode_all_op(
            2,
            now,
            None,
            [
                (&a, UnixMs::from_millis(1_700_000_001_000)),
                (&b, UnixMs::EPOCH),
            ]
            .into_iter(),
        );
        let op = decode_all_op(&bytes).unwrap();
        assert_eq!(
            op,
            AllOp {
                cost: 2,
                now,
                penalty: None,
                limits: vec![
                    (a, UnixMs::from_millis(1_700_000_001_000)),
                    (b, UnixMs::EPOCH)
                ],
            }
        );
        let penalty = Some(Duration::from_micros(60_000_000));
        let blocking = encode_all_op(2, now, penalty, [(&a, UnixMs::from_millis(5))].into_iter());
        assert_eq!(decode_all_op(&blocking).map(|op| op.penalty), Ok(penalty));
        for n in 0..blocking.len() {
            assert!(decode_all_op(&blocking[..n]).is_err(), "cut at {n}");
        }
        for n in 0..bytes.len() {
            assert!(decode_all_op(&bytes[..n]).is_err(), "cut at {n}");
        }
        // A single-key op is not an RL.ALL op, nor the other way round.
        assert!(decode_op(&bytes).is_err());
        let single = encode_op(&Op {
            params: a,
            cost: 1,
            now,
            expire_at_ms: UnixMs::from_millis(5),
            penalty: None,
        });
        assert!(decode_all_op(&single).is_err());
        // The largest RL.ALL fits the stack buffer.
        let many = vec![b; ALL_OP_MAX_LIMITS];
        let bytes = encode_all_op(
            1,
            now,
            penalty,
            many.iter().map(|p| (p, UnixMs::from_millis(7))),
        );
        assert_eq!(decode_all_op(&bytes).map(|op| op.limits.len()), Ok(64));
    }
}
