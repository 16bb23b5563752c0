//! The encoding of a key's concurrency leases, after the kind tag the
//! caller writes. Little-endian:
//!
//! ```text
//! limit u64 | last u64 | count u64 | count * (expires u64 | units u64 | id_len u8 | id)
//! ```
//!
//! Leases are written in the state's order (by expiry), which decoding
//! requires, so a state round-trips byte for byte.

use super::{DecodeError, Reader, Sink, Writer};
use crate::algo::{
    Lease, LeaseState, MAX_COUNT, MAX_DURATION_US, MAX_LEASES, MAX_LEASE_ID_LEN, MAX_TIME_US,
};

/// Fewest bytes one lease takes: expiry, units, id length, a 1-byte id.
const MIN_LEASE_LEN: usize = 8 + 8 + 1 + 1;

/// Latest expiry a lease may have: the latest time plus the longest ttl.
const MAX_EXPIRES_US: u64 = MAX_TIME_US + MAX_DURATION_US;

pub(super) fn write_leases<S: Sink>(w: &mut Writer<S>, s: &LeaseState) {
    w.u64(s.limit.get());
    w.time(s.last);
    w.u64(s.leases().len() as u64);
    for l in s.leases() {
        w.time(l.expires);
        w.u64(l.units);
        // Ids are at most MAX_LEASE_ID_LEN bytes; a longer one (a bug) is
        // written with a length the decoder refuses.
        w.u8(u8::try_from(l.id.len()).unwrap_or(u8::MAX));
        w.0.put(&l.id);
    }
}

pub(super) fn read_leases(r: &mut Reader) -> Result<LeaseState, DecodeError> {
    let limit = r.count()?;
    let last = r.time()?;
    let n = r.u64()?;
    // Check the count against the bytes present before allocating.
    if n > MAX_LEASES || n > (r.0.len() / MIN_LEASE_LEN) as u64 {
        return Err(DecodeError::BadState);
    }
    let mut leases = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let expires = r.u64()?;
        let units = r.u64()?;
        let len = usize::from(r.u8()?);
        if expires > MAX_EXPIRES_US
            || !(1..=MAX_COUNT).contains(&units)
            || !(1..=MAX_LEASE_ID_LEN).contains(&len)
        {
            return Err(DecodeError::BadState);
        }
        leases.push(Lease {
            id: r.bytes(len)?.into(),
            units,
            expires: crate::algo::Instant::from_micros(expires),
        });
    }
    let s = LeaseState::from_parts(limit, last, leases);
    if !s.is_valid() {
        return Err(DecodeError::BadState);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::{Count, Duration, Instant};

    const NOW: u64 = 1_700_000_000_000_000;

    fn encode(s: &LeaseState) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        write_leases(&mut w, s);
        w.0
    }

    fn decode(bytes: &[u8]) -> Result<LeaseState, DecodeError> {
        let mut r = Reader(bytes);
        let s = read_leases(&mut r)?;
        r.finish()?;
        Ok(s)
    }

    fn samples() -> Vec<LeaseState> {
        let limit = Count::new(10).unwrap();
        let empty = LeaseState::new(limit);
        let mut some = LeaseState::new(limit);
        let at = |us| Instant::from_micros(NOW + us);
        let ttl = Duration::from_micros;
        some.acquire(limit, 2, ttl(30_000_000), b"worker-1", at(0));
        some.acquire(limit, 1, ttl(5_000_000), &[0, 255, 10], at(1_000));
        some.acquire(limit, 3, ttl(5_000_000), &[b'x'; 64], at(1_000));
        some.acquire(Count::new(7).unwrap(), 1, ttl(1), b"w", at(2_000));
        // A renewal under a lowered limit: 7 units held under 3.
        let mut lowered = some.clone();
        lowered.acquire(
            Count::new(3).unwrap(),
            1,
            ttl(60_000_000),
            b"worker-1",
            at(3_000),
        );
        assert_eq!(lowered.limit.get(), 3);
        vec![empty, some, lowered]
    }

    #[test]
    fn round_trips() {
        for s in samples() {
            let bytes = encode(&s);
            assert_eq!(decode(&bytes), Ok(s.clone()));
            assert_eq!(encode(&decode(&bytes).unwrap()), bytes);
        }
        let s = &samples()[1];
        assert_eq!(s.leases().len(), 4);
        assert_eq!(encode(s).len(), 24 + 4 * 17 + (8 + 3 + 64 + 1));
    }

    #[test]
    fn rejects_every_truncation_and_extension() {
        for s in samples() {
            let bytes = encode(&s);
            for n in 0..bytes.len() {
                assert!(decode(&bytes[..n]).is_err(), "{s:?} cut at {n}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(decode(&longer), Err(DecodeError::TrailingBytes));
        }
    }

    #[test]
    fn count_cannot_force_a_huge_allocation() {
        let mut bytes = encode(&samples()[0]);
        for n in [MAX_LEASES + 1, MAX_LEASES, 1] {
            bytes[16..24].copy_from_slice(&n.to_le_bytes());
            assert_eq!(decode(&bytes), Err(DecodeError::BadState), "{n}");
        }
    }

    #[test]
    fn rejects_out_of_bounds_fields() {
        let good = encode(&samples()[1]);
        // The leases by expiry: "w" (at 24: expiry, units at 32, id length
        // at 40, id at 41), then [0, 255, 10] from 42, "x" * 64, "worker-1".
        let put = |at: usize, v: &[u8]| {
            let mut b = good.clone();
            b[at..at + v.len()].copy_from_slice(v);
            decode(&b)
        };
        let bad = DecodeError::BadState;
        assert_eq!(put(0, &0u64.to_le_bytes()), Err(DecodeError::BadParameter));
        assert_eq!(
            put(0, &(MAX_COUNT + 1).to_le_bytes()),
            Err(DecodeError::BadParameter)
        );
        assert_eq!(put(8, &(MAX_TIME_US + 1).to_le_bytes()), Err(bad));
        assert_eq!(put(24, &(MAX_EXPIRES_US + 1).to_le_bytes()), Err(bad));
        assert_eq!(put(32, &0u64.to_le_bytes()), Err(bad));
        assert_eq!(put(32, &(MAX_COUNT + 1).to_le_bytes()), Err(bad));
        assert_eq!(put(40, &[0]), Err(bad));
        assert_eq!(put(40, &[MAX_LEASE_ID_LEN as u8 + 1]), Err(bad));
        // Units over the largest count in all; a later expiry first; the
        // second lease's id made "w" too.
        assert_eq!(put(32, &MAX_COUNT.to_le_bytes()), Err(bad));
        assert_eq!(put(24, &(NOW + 10_000_000).to_le_bytes()), Err(bad));
        let second = 24 + 17 + 1;
        let mut dup = good.clone();
        dup[second + 16] = 1;
        dup[second + 17] = b'w';
        dup.drain(second + 18..second + 20);
        assert_eq!(decode(&dup), Err(bad));
        // An id longer than the bytes present.
        assert_eq!(decode(&good[..good.len() - 1]), Err(DecodeError::Truncated));
    }
}
