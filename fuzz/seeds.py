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


def u128(v):
    return struct.pack("<QQ", v & (2**64 - 1), v >> 64)


# --- args: [command selector, separator] + arguments joined by it.
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
write("args", "small-log-max", bytes([0x82, 0x20]) + b"4 1s")
write("args", "not-utf8", bytes([0, 0x20]) + b"\xff\xfe 1s")
write("args", "empty-arg", bytes([3, 0x2C]) + b"10,,1s")
write("args", "newline", bytes([0, 0x20]) + b"1\r\n 1s")

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
