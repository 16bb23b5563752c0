//! Binary encodings of limiters (RDB, DUMP/RESTORE, AOF, digests) and of the
//! replicated operation. Pure Rust, so the decoder can be fuzzed.
//!
//! Layout (encoding version 1, little-endian): a tag byte naming the
//! algorithm, its parameters, then its state. Decoding is strict: every
//! bound the parser enforces on parameters is enforced again, the state must
//! satisfy the algorithm's invariants, and trailing bytes are an error.
//! Anything else would let a crafted `RESTORE` payload put a state into the
//! keyspace that the algorithms never produce.

use std::collections::VecDeque;

use crate::algo::{
    Algorithm, BucketParams, BucketState, FixedState, Limiter, LogState, Micros, Params,
    SlidingState, WindowParams, MAX_COUNT, MAX_DURATION_US, MAX_TIME_US,
};

/// The encoding version written to RDB; `decode` accepts versions up to it.
pub const ENCODING_VERSION: i32 = 1;

/// Version byte leading a replicated operation.
const OP_VERSION: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    Truncated,
    TrailingBytes,
    UnknownAlgorithm(u8),
    BadParameter,
    BadState,
    UnsupportedVersion(i32),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated => write!(f, "truncated ratelimit value"),
            DecodeError::TrailingBytes => write!(f, "unexpected bytes after ratelimit value"),
            DecodeError::UnknownAlgorithm(t) => write!(f, "unknown ratelimit algorithm tag {t}"),
            DecodeError::BadParameter => write!(f, "ratelimit parameter out of range"),
            DecodeError::BadState => write!(f, "inconsistent ratelimit state"),
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
/// allowed call.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Longest op: version, tag, three parameters, cost, time, expiry.
const OP_MAX_LEN: usize = 2 + 6 * 8;

/// An encoded op, held on the stack.
pub struct OpBytes {
    buf: [u8; OP_MAX_LEN],
    len: usize,
}

impl Sink for OpBytes {
    fn put(&mut self, bytes: &[u8]) {
        // Ops are bounded by construction; an overflow would be a bug, and is
        // truncated rather than allowed to panic inside the server.
        let end = (self.len + bytes.len()).min(OP_MAX_LEN);
        let n = end - self.len;
        self.buf[self.len..end].copy_from_slice(&bytes[..n]);
        self.len = end;
    }
}

impl std::ops::Deref for OpBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

struct Writer<S: Sink>(S);

impl<S: Sink> Writer<S> {
    fn u8(&mut self, v: u8) {
        self.0.put(&[v]);
    }
    fn u64(&mut self, v: u64) {
        self.0.put(&v.to_le_bytes());
    }
    fn u128(&mut self, v: u128) {
        self.0.put(&v.to_le_bytes());
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
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
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    fn u128(&mut self) -> Result<u128, DecodeError> {
        Ok(u128::from_le_bytes(self.take()?))
    }
    fn time(&mut self) -> Result<Micros, DecodeError> {
        let t = self.u64()?;
        if t > MAX_TIME_US {
            return Err(DecodeError::BadState);
        }
        Ok(t)
    }
    fn finish(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

fn count_in_range(v: u64, min: u64) -> Result<u64, DecodeError> {
    if (min..=MAX_COUNT).contains(&v) {
        Ok(v)
    } else {
        Err(DecodeError::BadParameter)
    }
}

fn duration_in_range(v: u64) -> Result<u64, DecodeError> {
    if (1..=MAX_DURATION_US).contains(&v) {
        Ok(v)
    } else {
        Err(DecodeError::BadParameter)
    }
}

fn write_params<S: Sink>(w: &mut Writer<S>, params: &Params) {
    w.u8(params.algorithm().tag());
    match params {
        Params::Fixed(p) | Params::Sliding(p) | Params::Log(p) => {
            w.u64(p.limit);
            w.u64(p.window);
        }
        Params::Token(p) | Params::Leaky(p) | Params::Gcra(p) => {
            w.u64(p.capacity);
            w.u64(p.rate);
            w.u64(p.period);
        }
    }
}

fn read_params(r: &mut Reader) -> Result<Params, DecodeError> {
    let tag = r.u8()?;
    let algo = Algorithm::from_tag(tag).ok_or(DecodeError::UnknownAlgorithm(tag))?;
    let window = |r: &mut Reader| -> Result<WindowParams, DecodeError> {
        Ok(WindowParams {
            limit: count_in_range(r.u64()?, 1)?,
            window: duration_in_range(r.u64()?)?,
        })
    };
    let bucket = |r: &mut Reader| -> Result<BucketParams, DecodeError> {
        Ok(BucketParams {
            capacity: count_in_range(r.u64()?, 1)?,
            rate: count_in_range(r.u64()?, 1)?,
            period: duration_in_range(r.u64()?)?,
        })
    };
    Ok(match algo {
        Algorithm::Fixed => Params::Fixed(window(r)?),
        Algorithm::Sliding => Params::Sliding(window(r)?),
        Algorithm::Log => Params::Log(window(r)?),
        Algorithm::Token => Params::Token(bucket(r)?),
        Algorithm::Leaky => Params::Leaky(bucket(r)?),
        Algorithm::Gcra => Params::Gcra(bucket(r)?),
    })
}

/// Encodes a limiter (the stored value of a key).
pub fn encode(limiter: &Limiter) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64));
    write_params(&mut w, &limiter.params());
    match limiter {
        Limiter::Fixed(s) => {
            w.u64(s.start);
            w.u64(s.count);
        }
        Limiter::Sliding(s) => {
            w.u64(s.start);
            w.u64(s.prev);
            w.u64(s.curr);
        }
        Limiter::Log(s) => {
            w.u64(s.entries.len() as u64);
            for &t in &s.entries {
                w.u64(t);
            }
        }
        Limiter::Token(s) | Limiter::Leaky(s) | Limiter::Gcra(s) => {
            w.u128(s.scaled);
            w.u64(s.last);
        }
    }
    w.0
}

/// Decodes a limiter written by `encode` under encoding version `version`.
pub fn decode(bytes: &[u8], version: i32) -> Result<Limiter, DecodeError> {
    if !(1..=ENCODING_VERSION).contains(&version) {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let mut r = Reader(bytes);
    let limiter = match read_params(&mut r)? {
        Params::Fixed(params) => Limiter::Fixed(FixedState {
            params,
            start: r.time()?,
            count: r.u64()?,
        }),
        Params::Sliding(params) => Limiter::Sliding(SlidingState {
            params,
            start: r.time()?,
            prev: r.u64()?,
            curr: r.u64()?,
        }),
        Params::Log(params) => {
            let n = r.u64()?;
            // Check the length against the bytes present before allocating.
            if n > params.limit || n > (r.0.len() / 8) as u64 {
                return Err(DecodeError::BadState);
            }
            let mut entries = VecDeque::with_capacity(n as usize);
            for _ in 0..n {
                entries.push_back(r.time()?);
            }
            Limiter::Log(LogState { params, entries })
        }
        Params::Token(p) => Limiter::Token(read_bucket(&mut r, p)?),
        Params::Leaky(p) => Limiter::Leaky(read_bucket(&mut r, p)?),
        Params::Gcra(p) => Limiter::Gcra(read_bucket(&mut r, p)?),
    };
    r.finish()?;
    if !limiter.is_valid() {
        return Err(DecodeError::BadState);
    }
    Ok(limiter)
}

fn read_bucket(r: &mut Reader, params: BucketParams) -> Result<BucketState, DecodeError> {
    Ok(BucketState {
        params,
        scaled: r.u128()?,
        last: r.time()?,
    })
}

/// One decided, allowed request as sent to replicas and the AOF: replaying it
/// needs no clock, so every copy computes the very same state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    pub params: Params,
    pub cost: u64,
    pub now: Micros,
    /// Absolute expiry of the key in Unix milliseconds, as set on the master.
    pub expire_at_ms: u64,
}

pub fn encode_op(op: &Op) -> OpBytes {
    let mut w = Writer(OpBytes {
        buf: [0; OP_MAX_LEN],
        len: 0,
    });
    w.u8(OP_VERSION);
    write_params(&mut w, &op.params);
    w.u64(op.cost);
    w.u64(op.now);
    w.u64(op.expire_at_ms);
    w.0
}

pub fn decode_op(bytes: &[u8]) -> Result<Op, DecodeError> {
    let mut r = Reader(bytes);
    let version = r.u8()?;
    if version != OP_VERSION {
        return Err(DecodeError::UnsupportedVersion(version.into()));
    }
    let params = read_params(&mut r)?;
    let op = Op {
        params,
        cost: count_in_range(r.u64()?, 0)?,
        now: r.time()?,
        expire_at_ms: r.u64()?,
    };
    r.finish()?;
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Limiter> {
        let w = WindowParams {
            limit: 5,
            window: 1_000_000,
        };
        let b = BucketParams {
            capacity: 7,
            rate: 3,
            period: 60_000_000,
        };
        let mut out = Vec::new();
        for params in [
            Params::Fixed(w),
            Params::Sliding(w),
            Params::Log(w),
            Params::Token(b),
            Params::Leaky(b),
            Params::Gcra(b),
        ] {
            let mut l = Limiter::new(&params);
            l.decide(&params, 2, 1_700_000_000_000_000).unwrap();
            l.decide(&params, 1, 1_700_000_000_500_000).unwrap();
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
        assert_eq!(decode(&bytes, 2), Err(DecodeError::UnsupportedVersion(2)));
        let mut bad = bytes.clone();
        bad[0] = 99;
        assert_eq!(decode(&bad, 1), Err(DecodeError::UnknownAlgorithm(99)));
        // Count above the limit.
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 8..].copy_from_slice(&6u64.to_le_bytes());
        assert_eq!(decode(&bad, 1), Err(DecodeError::BadState));
        // Zero window.
        let mut bad = bytes;
        bad[9..17].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(decode(&bad, 1), Err(DecodeError::BadParameter));
    }

    #[test]
    fn log_length_cannot_force_a_huge_allocation() {
        let params = Params::Log(WindowParams {
            limit: MAX_COUNT,
            window: 1,
        });
        let mut bytes = encode(&Limiter::new(&params));
        let n = bytes.len();
        bytes[n - 8..].copy_from_slice(&(MAX_COUNT).to_le_bytes());
        assert_eq!(decode(&bytes, 1), Err(DecodeError::BadState));
    }

    #[test]
    fn op_round_trips() {
        let op = Op {
            params: Params::Gcra(BucketParams {
                capacity: 16,
                rate: 30,
                period: 60_000_000,
            }),
            cost: 3,
            now: 1_700_000_000_123_000,
            expire_at_ms: 1_700_000_006_123,
        };
        let bytes = encode_op(&op);
        assert_eq!(decode_op(&bytes), Ok(op));
        assert!(decode_op(&bytes[..bytes.len() - 1]).is_err());
    }
}
