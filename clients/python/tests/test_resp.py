"""The RESP encoder and the two RESP parsers (Python's and hiredis') of the
pipelined connection, redis_ratelimit._fast: RESP2 and RESP3 replies, read
whole or split anywhere between reads. No server."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio

from redis_ratelimit._fast import (
    FastConnection,
    _HiredisProtocol,
    _Incomplete,
    _parse,
    _Protocol,
    encode,
)

from .conftest import PARSERS


def test_encode_and_parse() -> None:
    assert encode(["RL.FIXED", "k", 5, b"60s"]) == (
        b"*4\r\n$8\r\nRL.FIXED\r\n$1\r\nk\r\n$1\r\n5\r\n$3\r\n60s\r\n"
    )
    reply = b"*6\r\n:1\r\n:5\r\n:4\r\n:0\r\n:60000\r\n$2\r\nab\r\n+OK\r\n"
    value, pos = _parse(reply, 0)
    assert value == [1, 5, 4, 0, 60000, b"ab"]
    assert _parse(reply, pos) == (b"OK", len(reply))  # bytes, as redis-py and hiredis give it
    assert _parse(b"*2\r\n*-1\r\n$-1\r\n", 0) == ([None, None], 14)
    err, _ = _parse(b"-ERR no such policy\r\n", 0)
    assert isinstance(err, redis.ResponseError) and str(err) == "ERR no such policy"


# RESP3 replies (one of each type), what both parsers read from them.
RESP3 = [
    (b"%2\r\n$9\r\nalgorithm\r\n$5\r\nFIXED\r\n$5\r\nlimit\r\n:10\r\n",
     {b"algorithm": b"FIXED", b"limit": 10}),
    (b"~2\r\n$4\r\nfast\r\n$5\r\nwrite\r\n", [b"fast", b"write"]),
    (b",1.5\r\n", 1.5), (b",-inf\r\n", float("-inf")), (b"_\r\n", None),
    (b"#t\r\n", True), (b"#f\r\n", False), (b"=8\r\ntxt:ab\r\n\r\n", b"ab\r\n"),
    (b"*3\r\n:1\r\n_\r\n%1\r\n+k\r\n,0\r\n", [1, None, {b"k": 0.0}]),
    (b"*6\r\n:1\r\n:5\r\n:4\r\n:0\r\n:60000\r\n_\r\n", [1, 5, 4, 0, 60000, None]),
]  # fmt: skip


PUSH = b">3\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n:7\r\n"  # not a reply: skipped


def test_parse_resp3() -> None:
    for raw, want in RESP3:
        value, pos = _parse(raw, 0)
        assert (value, pos) == (want, len(raw)), raw
    assert _parse(b"(123456789012345678901234567890\r\n", 0)[0] == 123456789012345678901234567890
    # an attribute is dropped, the value after it is the reply
    attr = b"|1\r\n+ttl\r\n:3\r\n:7\r\n"
    assert _parse(attr, 0) == (7, len(attr))
    inside = b"*2\r\n|1\r\n+a\r\n:1\r\n:2\r\n:3\r\n"
    assert _parse(inside, 0) == ([2, 3], len(inside))
    for raw in (b"!9\r\nERR blob!\r\n", b"-ERR blob!\r\n"):
        err, _ = _parse(raw, 0)
        assert isinstance(err, redis.ResponseError) and str(err) == "ERR blob!"
    for raw, _want in RESP3:  # cut short anywhere: incomplete, never a wrong value
        for cut in range(len(raw)):
            with pytest.raises(_Incomplete):
                _parse(raw[:cut], 0)


@pytest.mark.parametrize("parser", PARSERS)
def test_replies_split_anywhere_between_reads(parser: str) -> None:
    replies = [b"*5\r\n:1\r\n:10\r\n:9\r\n:0\r\n:60000\r\n", b"-ERR bad\r\n",
               b"*6\r\n:1\r\n:2\r\n:1\r\n:0\r\n:0\r\n$4\r\nab\r\n\r\n", b":1\r\n",
               b"*2\r\n:0\r\n*5\r\n:0\r\n:5\r\n:0\r\n:-1\r\n:7\r\n",
               *(raw for raw, _ in RESP3)]  # fmt: skip
    want = [[1, 10, 9, 0, 60000], "ERR bad", [1, 2, 1, 0, 0, b"ab\r\n"], 1,
            [0, [0, 5, 0, -1, 7]], *(w for _, w in RESP3)]  # fmt: skip
    # a push frame between two replies is no reply: skipped
    stream = b"".join(replies[:3]) + PUSH + b"".join(replies[3:])
    protocol = _HiredisProtocol if parser == "hiredis" else _Protocol

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for cut in range(1, len(stream)):
            proto = protocol(FastConnection())
            futs = [loop.create_future() for _ in replies]
            proto.pending.extend((f, 0.0) for f in futs)
            proto.data_received(stream[:cut])
            proto.data_received(stream[cut:])
            got = [f.result() if not f.exception() else str(f.exception()) for f in futs]
            assert got == want, cut

    asyncio.run(main())
