#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/).

Run from anywhere: python3 fuzz/seeds.py. The layouts follow src/codec.rs
(little-endian; a tag byte, the parameters, then the state) and the input
format of each target (see fuzz/fuzz_targets/*.rs).
"""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
T = 1_700_000_000_000_000  # µs
S = 1_000_000
MAX_COUNT = 10**15
MAX_DURATION = 10**17
MAX_TIME = 253_402_300_799_999_000


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def q(*vs):
    return b"".join(struct.pack("<Q", v) for v in vs)


def d(*vs):
    return b"".join(struct.pack("<I", v) for v in vs)


def u128(v):
    return struct.pack("<QQ", v & (2**64 - 1), v >> 64)


# --- args: [command selector, separator] + arguments joined by it. The
# selector's top bit asks for small log-max and lease-max settings; its low
# 7 bits pick the command: 0-5 RL.<algo>, 6 RL.ALL, 7 CL.THROTTLE, 8 module
# arguments, 9 RL.PEEK, 10 RL.REFUND, 11 RL.ACQUIRE, 12 RL.RENEW, 13 RL.POLICY
# SET (what follows SET), 14 RL.CHECK's options (what follows the key), 15
# RL.TOP's arguments.
ARGS = {
    0: ["10 1s", "10 1s COST 3 AT 1700000000000", "10 500ms cost 0", "0 1s",
        "10 5w", "-1 1", "99999999999999999999999 1", "10 1s COST", "10 1s AT 1 AT 2",
        "1000000000000000 100000000000000000us", "10 1.5s", "10 1s FOO 1", "10"],
    1: ["10 10s", "5 1h COST 5", "1 1us AT 0"],
    2: ["10 1m", "10001 1s", "3 1s COST 4"],
    3: ["10 5 1s", "10 0 1s", "1099511627776 1 36500d"],
    4: ["3 1 1s COST 2", "10 10 1ms"],
    5: ["0 1 1", "15 30 60", "-1 1 1", "999999999999999 1 1"],
    6: ["2 a b TOKEN 10 10 1s FIXED 1000 1d COST 2 AT 5", "1 a LOG 10 1m",
        "2 a a FIXED 1 1 FIXED 1 1", "3 a b", "1 a BUCKET 1 1", "65 a"],
    7: ["15 30 60", "15 30 60 3", "15 30 1s"],
    8: ["log-max 5 cell-compat yes", "ratelimit.log-max 0", "speed 9"],
    9: ["TOKEN 10 5 1s COST 3", "fixed 5 1m AT 1700000000000", "LOG 10001 1s",
        "BUCKET 1 1", "GCRA 0 1"],
}
for cmd, lines in ARGS.items():
    for i, line in enumerate(lines):
        write("args", f"cmd{cmd}-{i}", bytes([cmd, 0x20]) + line.encode())
# PENALTY on the decision commands and RL.ALL (refused by RL.PEEK).
PENALTY_ARGS = {
    0: ["10 1s PENALTY 1m", "10 1s COST 10 PENALTY 30s AT 1700000000000",
        "10 1s PENALTY 0", "10 1s PENALTY 1x", "10 1s PENALTY 1s PENALTY 2s",
        "10 1s PENALTY", "10 1s penalty 100000000000000000us",
        "10 1s PENALTY 100000000000000001us"],
    1: ["5 1h PENALTY 1d COST 5"],
    2: ["3 1s COST 3 PENALTY 500ms"],
    3: ["10 5 1s PENALTY 5m", "1 1 36500d COST 1 PENALTY 36500d"],
    4: ["3 1 1s COST 3 PENALTY 1ms"],
    5: ["15 30 60 PENALTY 1h", "0 1 1s COST 1 PENALTY 1us"],
    6: ["2 a b TOKEN 10 10 1s FIXED 1000 1d PENALTY 10s COST 2",
        "1 a GCRA 0 1 1m COST 1 PENALTY -1"],
    9: ["TOKEN 10 5 1s PENALTY 1s"],
}
for cmd, lines in PENALTY_ARGS.items():
    for i, line in enumerate(lines):
        write("args", f"penalty{cmd}-{i}", bytes([cmd, 0x20]) + line.encode())
# RL.REFUND key n [AT ms]
REFUND_ARGS = ["3", "0", "3 AT 1700000000000", "-1", "1 AT", "1 FOO 2",
               "1000000000000000", "1000000000000001", "3 AT 1 AT 2",
               "1 PENALTY 1s", "1 COST 1", "99999999999999999999999"]
for i, line in enumerate(REFUND_ARGS):
    write("args", f"refund-{i}", bytes([10, 0x20]) + line.encode())
write("args", "refund-none", bytes([10, 0x20]))
# RL.ACQUIRE key limit ttl [ID lease_id] [COST n] [AT ms]
ACQUIRE_ARGS = ["5 30s", "5 30s ID worker-1 COST 2 AT 1700000000000", "0 1s",
                "10000 1s", "10001 1s", "5 0s", "5 1s ID " + "x" * 64,
                "5 1s ID " + "x" * 65, "5 1s COST 6", "5 1s ID a ID b",
                "5 1s COST 0", "5", "5 1s PENALTY 1s", "5 1s ID",
                "1 100000000000000000us COST 1 ID a"]
for i, line in enumerate(ACQUIRE_ARGS):
    write("args", f"acquire-{i}", bytes([11, 0x20]) + line.encode())
write("args", "acquire-empty-id", bytes([11, 0x2C]) + b"5,1s,ID,")
write("args", "acquire-binary-id", bytes([11, 0x2C]) + b"5,1s,ID,\x00\xff\r\n")
# A small lease-max (3): at the ceiling, and above it.
write("args", "acquire-small-max-0", bytes([0x80 | 11, 0x20]) + b"3 1s")
write("args", "acquire-small-max-1", bytes([0x80 | 11, 0x20]) + b"4 1s ID w")
# RL.RENEW key lease_id ttl
RENEW_ARGS = ["worker-1 30s", "worker-1", "w 0s", "x" * 64 + " 1s",
              "x" * 65 + " 1s", "w 1s extra", "w 100000000000000000us",
              "w 100000000000000001us", "w -1s"]
for i, line in enumerate(RENEW_ARGS):
    write("args", f"renew-{i}", bytes([12, 0x20]) + line.encode())
write("args", "renew-binary-id", bytes([12, 0x2C]) + b"\x00\xff\n,1s")
write("args", "renew-empty-id", bytes([12, 0x2C]) + b",1s")
# The selector's top bit: RL.LOG under a small log-max.
write("args", "small-log-max", bytes([0x82, 0x20]) + b"4 1s")
write("args", "not-utf8", bytes([0, 0x20]) + b"\xff\xfe 1s")
write("args", "empty-arg", bytes([3, 0x2C]) + b"10,,1s")
write("args", "newline", bytes([0, 0x20]) + b"1\r\n 1s")

# RL.POLICY SET name ALGO params... [PENALTY d] [SHADOW]
POLICY_SET_ARGS = ["free TOKEN 10 5 1s", "login FIXED 5 1m PENALTY 15m",
                   "tier:gold.v2 GCRA 0 30 1m SHADOW", "l LOG 10 1500ms PENALTY 1h SHADOW",
                   "s sliding 5 1h shadow", "q LEAKY 3 7 90061001us",
                   "x" * 64 + " FIXED 1 1s", "x" * 65 + " FIXED 1 1s", "a/b FIXED 1 1s",
                   "free", "free POLICY other", "free BUCKET 1 1", "free TOKEN 10 5",
                   "free FIXED 0 1s", "free LOG 10001 1s", "free FIXED 1 1s COST 1",
                   "free FIXED 1 1s AT 5", "free FIXED 1 1s SHADOW SHADOW",
                   "free FIXED 1 1s PENALTY 1s PENALTY 2s", "free FIXED 1 1s PENALTY 0",
                   "f FIXED 1000000000000000 100000000000000000us PENALTY 100000000000000000us",
                   "f FIXED 1 1s PENALTY 100000000000000001us"]
for i, line in enumerate(POLICY_SET_ARGS):
    write("args", f"policy-set-{i}", bytes([13, 0x20]) + line.encode())
write("args", "policy-set-none", bytes([13, 0x20]))
write("args", "policy-set-small-log-max", bytes([0x80 | 13, 0x20]) + b"l LOG 4 1s")
write("args", "policy-set-binary-name", bytes([13, 0x2C]) + b"\x00\xff,FIXED,1,1s")
# RL.CHECK policy key [COST n] [AT ms]: the options after the key.
CHECK_ARGS = ["COST 3", "AT 1700000000000 cost 0", "COST 1 COST 2", "COST", "AT -1",
              "PENALTY 1s", "SHADOW", "ID a", "FOO 1", "COST 1000000000000001"]
for i, line in enumerate(CHECK_ARGS):
    write("args", f"check-{i}", bytes([14, 0x20]) + line.encode())
write("args", "check-none", bytes([14, 0x20]))

# RL.TOP [COUNT n] [POLICY name] [SHADOW]
TOP_ARGS = ["COUNT 5", "POLICY free SHADOW COUNT 100000", "count 100001", "COUNT 0",
            "SHADOW SHADOW", "POLICY", "POLICY a:b.c-d_e COUNT 1", "FOO", "COUNT 1 COUNT 2"]
for i, line in enumerate(TOP_ARGS):
    write("args", f"top-{i}", bytes([15, 0x20]) + line.encode())
write("args", "top-none", bytes([15, 0x20]))
# POLICY name in RL.ALL and RL.PEEK (the target knows free, login,
# tier:gold.v2, log, s and q).
POLICY_USE = {
    6: ["2 a b POLICY free FIXED 1000 1d COST 2", "3 a b c POLICY login POLICY q POLICY s",
        "1 a policy tier:gold.v2 SHADOW PENALTY 1s", "1 a POLICY nope", "1 a POLICY",
        "1 a POLICY a/b", "2 a b POLICY free", "1 a POLICY log COST 3"],
    9: ["POLICY free COST 3", "policy login AT 1700000000000", "POLICY nope", "POLICY",
        "POLICY free PENALTY 1s", "POLICY " + "x" * 65],
}
for cmd, lines in POLICY_USE.items():
    for i, line in enumerate(lines):
        write("args", f"policy{cmd}-{i}", bytes([cmd, 0x20]) + line.encode())
write("args", "policy6-small-log-max", bytes([0x80 | 6, 0x20]) + b"1 a POLICY log COST 3")

# --- decode: [version + 1] + encoded limiter.
W = q(5, 10 * S)
B = q(7, 3, 60 * S)
STATES = {
    "fixed": b"\x01" + W + q(T, 3),
    "sliding": b"\x02" + W + q(T, 4, 1),
    "log": b"\x03" + W + q(3, T, T + 1, T + 2),
    "log-empty": b"\x03" + W + q(0),
    "token": b"\x04" + B + u128(2 * 60 * S) + q(T),
    "leaky": b"\x05" + B + u128(7 * 60 * S) + q(T),
    "gcra": b"\x06" + B + u128(1) + q(T),
    "fixed-huge": b"\x01" + q(MAX_COUNT, MAX_DURATION) + q(MAX_TIME, MAX_COUNT),
    "token-huge": b"\x04" + q(MAX_COUNT, 1, MAX_DURATION) + u128(MAX_COUNT * MAX_DURATION) + q(MAX_TIME),
}
for name, blob in STATES.items():
    write("decode", name, b"\x02" + blob)
write("decode", "version-2", b"\x03" + STATES["fixed"])
write("decode", "unknown-tag", b"\x02\x63" + W + q(T, 3))

# Version 2: a limiter in the penalty box (tag 0x10, the block's end, then
# the limiter), and a key's leases (tag 0x11, limit, last, count, then per
# lease its expiry, units, id length and id, sorted by expiry).
LATEST_BLOCK_END = MAX_TIME + MAX_DURATION
for name, blob in STATES.items():
    write("decode", f"blocked-{name}", b"\x03\x10" + q(T + 60 * S) + blob)
write("decode", "blocked-latest", b"\x03\x10" + q(LATEST_BLOCK_END) + STATES["token-huge"])
write("decode", "blocked-too-late", b"\x03\x10" + q(LATEST_BLOCK_END + 1) + STATES["fixed"])
write("decode", "blocked-past", b"\x03\x10" + q(0) + STATES["gcra"])
write("decode", "blocked-in-version-1", b"\x02\x10" + q(T + 60 * S) + STATES["fixed"])
write("decode", "blocked-twice", b"\x03\x10" + q(T) + b"\x10" + q(T) + STATES["fixed"])


def lease(expires, units, ident):
    return q(expires, units) + bytes([len(ident)]) + ident


def leases(limit, last, *ls):
    return b"\x11" + q(limit, last, len(ls)) + b"".join(lease(*l) for l in ls)


LEASES = {
    "leases-empty": leases(10, T),
    "leases-some": leases(10, T, (T + S, 1, b"w"), (T + 5 * S, 3, b"x" * 64),
                          (T + 30 * S, 2, b"worker-1")),
    # 7 units held under a limit lowered to 3 by a renewal.
    "leases-lowered": leases(3, T, (T + S, 4, b"a"), (T + 60 * S, 3, b"b")),
    "leases-binary-id": leases(2, T, (T + S, 1, b"\x00\xff\r\n")),
    "leases-tie": leases(5, T, (T + S, 1, b"a"), (T + S, 1, b"b")),
    "leases-huge": leases(MAX_COUNT, MAX_TIME, (MAX_TIME + MAX_DURATION, MAX_COUNT, b"a")),
    # Refused: a repeated id, leases out of order, units over the largest
    # count in all, a count larger than the bytes present.
    "leases-dup": leases(5, T, (T + S, 1, b"a"), (T + 2 * S, 1, b"a")),
    "leases-unsorted": leases(5, T, (T + 2 * S, 1, b"a"), (T + S, 1, b"b")),
    "leases-over": leases(5, T, (T + S, MAX_COUNT, b"a"), (T + 2 * S, 1, b"b")),
    "leases-count": b"\x11" + q(5, T, 1_000_000),
}
for name, blob in LEASES.items():
    write("decode", name, b"\x03" + blob)
write("decode", "leases-in-version-1", b"\x02" + LEASES["leases-some"])

# --- decode_op: version 1, params, cost, now, expire_at_ms.
OPS = {
    "fixed": b"\x01" + W + q(1, T, T // 1000 + 10_000),
    "log": b"\x03" + W + q(5, T, T // 1000 + 10_000),
    "gcra": b"\x06" + q(16, 30, 60 * S) + q(3, T, T // 1000 + 6_000),
    "token-huge": b"\x04" + q(MAX_COUNT, MAX_COUNT, 1) + q(MAX_COUNT, MAX_TIME, 2**63),
}
for name, body in OPS.items():
    write("decode_op", name, b"\x01" + body)

# --- decode_op also takes RL.APPLYALL ops: version 2, cost, now, count, then
# per limit its params and expire_at_ms.
ALL_OPS = {
    "all-two": q(1, T) + bytes([2]) + b"\x04" + q(10, 10, S) + q(T // 1000 + 1_000)
    + b"\x01" + W + q(0),
    "all-peek": q(0, T) + bytes([1]) + b"\x06" + q(16, 30, 60 * S) + q(0),
    "all-empty": q(1, T) + bytes([0]),
}
for name, body in ALL_OPS.items():
    write("decode_op", name, b"\x02" + body)

# --- decode_op: the kinds after the first two (src/codec.rs, mod kind).
P = b"\x04" + q(10, 10, S)
NEW_OPS = {
    # 3: a decision that started a block: ... then the penalty (µs).
    "decide-penalty": b"\x03\x01" + W + q(1, T, T // 1000 + 60_000, 60 * S),
    "decide-penalty-zero": b"\x03\x01" + W + q(1, T, T // 1000, 0),
    "decide-penalty-longest": b"\x03" + P + q(2, MAX_TIME, 2**64 - 1, MAX_DURATION),
    # 4: an RL.ALL call that started blocks: cost, now, penalty, count, limits.
    "all-penalty": b"\x04" + q(1, T, 30 * S) + bytes([2]) + P + q(T // 1000 + 30_000)
    + b"\x01" + W + q(0),
    "all-penalty-zero": b"\x04" + q(1, T, 0) + bytes([1]) + P + q(0),
    # 5: a refund: units given back, now, expiry.
    "refund": b"\x05" + q(2, T, T // 1000 + 10_000),
    "refund-nothing": b"\x05" + q(0, T, 0),
    "refund-huge": b"\x05" + q(MAX_COUNT, MAX_TIME, 2**64 - 1),
    # 6: an acquire: limit, units, ttl, now, expiry, id length, id.
    "acquire": b"\x06" + q(5, 1, 30 * S, T, T // 1000 + 30_000) + bytes([8]) + b"worker-1",
    "acquire-longest-id": b"\x06" + q(MAX_COUNT, MAX_COUNT, MAX_DURATION, MAX_TIME, 0)
    + bytes([64]) + b"x" * 64,
    "acquire-id-too-long": b"\x06" + q(5, 1, S, T, 0) + bytes([65]) + b"x" * 65,
    "acquire-zero-ttl": b"\x06" + q(5, 1, 0, T, 0) + bytes([1]) + b"a",
    # 7: a release: now, expiry (0: the key is gone), id length, id.
    "release": b"\x07" + q(T, 0) + bytes([2]) + b"\x00\xff",
    "release-empty-id": b"\x07" + q(T, 0) + bytes([0]),
    # 8: a renewal: ttl, now, expiry, id length, id.
    "renew": b"\x08" + q(60 * S, T, T // 1000 + 60_000) + bytes([1]) + b"w",
    # 9: a bucket's decision with its cost and expiry in 4 bytes each
    # (ratelimit.compact-ops): params, cost (u32), now, the expiry's ms after
    # now's (u32).
    "decide-compact": b"\x09" + P + d(1) + q(T) + d(10_000),
    "decide-compact-gcra": b"\x09\x06" + q(16, 30, 60 * S) + d(3) + q(T) + d(6_000),
    "decide-compact-longest": b"\x09" + P + d(2**32 - 1) + q(MAX_TIME) + d(2**32 - 1),
    "decide-compact-window": b"\x09\x01" + W + d(1) + q(T) + d(10_000),
    # 10: as 9, then the penalty (µs).
    "decide-penalty-compact": b"\x0a" + P + d(1) + q(T) + d(60_000) + q(60 * S),
    "unknown-kind": b"\x0b" + q(T),
}
for name, body in NEW_OPS.items():
    write("decode_op", name, body)

# --- decode_policies: [mode] + input. Mode 0: a policies record as saved in
# the RDB (src/codec.rs, encode_policies): version 1, the count, then per
# policy its name (length byte, bytes), its parameters (as in a limiter),
# its penalty in µs (0: none) and a flags byte (1: shadow), names ascending.
# Mode 1: RL.POLICY SET lines (name ALGO params...), encoded and decoded.


def policy(name, params, penalty=0, flags=0):
    return bytes([len(name)]) + name + params + q(penalty) + bytes([flags])


def record(*ps, count=None):
    return b"\x01" + q(len(ps) if count is None else count) + b"".join(policy(*p) for p in ps)


FREE = (b"free", b"\x04" + q(10, 5, S))
LOGIN = (b"login", b"\x01" + q(5, 60 * S), 900 * S)
GOLD = (b"tier:gold.v2", b"\x06" + q(1, 30, 60 * S), 0, 1)
RECORDS = {
    "empty": record(),
    "one": record(FREE),
    "three": record(FREE, LOGIN, GOLD),
    "every-algo": record(*[(bytes([c]), bytes([t]) + (W if t <= 3 else B), 0, t % 2)
                           for c, t in zip(b"abcdef", range(1, 7))]),
    "huge": record((b"x" * 64, b"\x03" + q(MAX_COUNT, MAX_DURATION), MAX_DURATION, 1)),
    # Refused: out of order, a repeat, a bad name, an empty name, a penalty
    # too long, a flags byte other than 0 or 1, an unknown algorithm, zero
    # parameters, a count above the bytes, a count above 10,000, another
    # version, a byte after the end, cut short.
    "unsorted": record(LOGIN, FREE),
    "repeat": record(FREE, FREE),
    "bad-name": record((b"a b", FREE[1])),
    "empty-name": record((b"", FREE[1])),
    "penalty-too-long": record((b"p", FREE[1], MAX_DURATION + 1)),
    "flags-2": record((b"p", FREE[1], 0, 2)),
    "unknown-algo": record((b"p", b"\x63" + q(10, 5, S))),
    "zero-limit": record((b"p", b"\x01" + q(0, S))),
    "count-over-bytes": record(FREE, count=2),
    "count-over-max": record(count=10_001),
    "version-2": b"\x02" + record(FREE)[1:],
    "trailing": record(FREE) + b"\x00",
    "cut": record(FREE, LOGIN)[:-3],
}
for name, blob in RECORDS.items():
    write("decode_policies", name, b"\x00" + blob)
DEFINITIONS = {
    "tiers": ["free TOKEN 10 5 1s", "login FIXED 5 1m PENALTY 15m",
              "tier:gold.v2 GCRA 0 30 1m SHADOW"],
    "every-algo": ["a FIXED 1 1us", "b SLIDING 5 1h SHADOW", "c LOG 10000 1d",
                   "d TOKEN 1000000000000000 1 100000000000000000us PENALTY 1ms",
                   "e LEAKY 3 7 90061001us", "f GCRA 999999999999999 1 1"],
    "replaced": ["free TOKEN 10 5 1s", "free FIXED 1 1s SHADOW"],
    "some-bad": ["free TOKEN 10 5", "ok FIXED 1 1s", "a/b FIXED 1 1s", ""],
}
for name, lines in DEFINITIONS.items():
    write("decode_policies", f"set-{name}", b"\x01" + "\n".join(lines).encode())

# --- Aligned fixed windows: `ALIGN [OFFSET ±hh:mm]` after FIXED's window,
# `mo` months only when aligned; encoded under tag 7: limit, unit (0 µs,
# 1 months), length, offset in minutes (i16).
ALIGN_ARGS = {
    0: ["10 1d ALIGN", "10 1d ALIGN OFFSET -05:00 COST 2 AT 1700000000000",
        "100000 1mo ALIGN", "5 12mo align offset +14:00", "5 1200mo ALIGN OFFSET Z",
        "5 1201mo ALIGN", "5 0mo ALIGN", "5 1mo", "5 1mo OFFSET +01:00",
        "5 1d ALIGN OFFSET", "5 1d ALIGN OFFSET +24:00", "5 1d ALIGN OFFSET 0500",
        "5 1d COST 1 ALIGN", "5 1d ALIGN ALIGN", "5 1month ALIGN",
        "5 4294967297mo ALIGN", "5 1d ALIGN OFFSET -23:59 PENALTY 1h SHADOW"],
    1: ["10 1mo", "10 1d ALIGN"],
    6: ["2 a b TOKEN 60 1 1s FIXED 100000 1mo ALIGN OFFSET -05:00 COST 1",
        "1 a FIXED 1 1mo", "2 a b FIXED 1 1d ALIGN OFFSET TOKEN 1 1 1s"],
    9: ["FIXED 5 1mo ALIGN OFFSET +09:00 COST 1", "FIXED 5 1d OFFSET Z"],
    13: ["paid FIXED 100000 1mo ALIGN OFFSET -05:00", "q FIXED 5 3mo ALIGN SHADOW",
         "q FIXED 5 1d ALIGN OFFSET +00:00 PENALTY 1h", "q FIXED 5 1mo"],
}
for cmd, lines in ALIGN_ARGS.items():
    for i, line in enumerate(lines):
        write("args", f"align{cmd}-{i}", bytes([cmd, 0x20]) + line.encode())


def aligned(limit, unit, n, minutes):
    return b"\x07" + q(limit) + bytes([unit]) + q(n) + struct.pack("<h", minutes)


ALIGNED = {
    "aligned-month": aligned(5, 1, 1, -300) + q(T, 3),
    "aligned-day": aligned(5, 0, 86_400 * S, 330) + q(T, 1),
    "aligned-longest": aligned(MAX_COUNT, 1, 1200, -1439) + q(MAX_TIME, MAX_COUNT),
    "aligned-bad-unit": aligned(5, 2, 1, 0) + q(T, 1),
    "aligned-1201-months": aligned(5, 1, 1201, 0) + q(T, 1),
    "aligned-offset-24h": aligned(5, 1, 1, 1440) + q(T, 1),
}
for name, blob in ALIGNED.items():
    write("decode", name, b"\x03" + blob)
    write("decode", f"blocked-{name}", b"\x03\x10" + q(T + 60 * S) + blob)
write("decode", "aligned-in-version-1", b"\x02" + ALIGNED["aligned-month"])
write("decode_op", "aligned-decide", b"\x01" + aligned(5, 1, 1, 60) + q(1, T, T // 1000 + 10_000))
write("decode_op", "aligned-all", b"\x02" + q(1, T) + bytes([2]) + b"\x04" + q(10, 10, S)
      + q(0) + aligned(9, 0, 86_400 * S, -210) + q(T // 1000 + 1_000))
write("decode_policies", "aligned", b"\x00" + record((b"paid", aligned(100_000, 1, 1, -300))))
write("decode_policies", "set-aligned", b"\x01" + "\n".join(
    ["paid FIXED 100000 1mo ALIGN OFFSET -05:00", "day FIXED 10 1d ALIGN",
     "bad FIXED 10 1mo"]).encode())
