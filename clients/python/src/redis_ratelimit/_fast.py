"""The limiter's hot path to Redis: one connection, pipelined automatically.

Every check a FastAPI app makes is one short command whose reply is a small
array of integers. redis-py's asyncio client takes a pooled connection per
command, writes it, waits for the reply alone and parses it in Python
layers meant for every command; under load that costs more than the rest
of the request. Here the commands of all requests in flight go down one
connection: those issued in the same event loop iteration leave in one
write, and the replies, which Redis sends in order, resolve the waiting
requests in order, read by a parser for just what RL.* commands answer.

It is used for a standalone Redis reached over TCP or a unix socket
without TLS (redis.asyncio.Redis); anything else (a cluster, TLS, a
credential provider, Sentinel) goes through redis-py as before.
"""

from __future__ import annotations

import asyncio
import collections
import re
import socket
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, cast

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

try:
    import hiredis
except ImportError:  # optional: the pure Python parser reads the same replies
    hiredis = None  # type: ignore[assignment]

Arg = str | int | bytes
# hiredis's "no whole reply yet" (its default, False, is also RESP3's #f).
_NOT_ENOUGH = object()


def encode(args: Sequence[Arg]) -> bytes:
    """A command in RESP."""
    return b"*%d\r\n" % len(args) + encode_args(args)


def encode_args(args: Sequence[Arg]) -> bytes:
    """Arguments in RESP, without the array's header: parts of a command."""
    out = []
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def encode_str(text: str) -> bytes:
    b = text.encode()
    return b"$%d\r\n%s\r\n" % (len(b), b)


_SMALL = [encode_args([i]) for i in range(256)]


def encode_int(n: int) -> bytes:
    if 0 <= n < 256:
        return _SMALL[n]
    b = b"%d" % n
    return b"$%d\r\n%s\r\n" % (len(b), b)


_FIVE = re.compile(rb"\*5\r\n:(-?\d+)\r\n:(-?\d+)\r\n:(-?\d+)\r\n:(-?\d+)\r\n:(-?\d+)\r\n")


class _Incomplete(Exception):
    pass


_INCOMPLETE = _Incomplete()


class _Push(list[Any]):
    """A RESP3 push frame (`>`): not the reply to a command, skipped (this
    connection subscribes to nothing and tracks no keys, so Redis sends
    none unasked)."""


def _parse(buf: bytes, pos: int) -> tuple[Any, int]:
    """One RESP2 or RESP3 reply from buf[pos:]: (value, position after it).
    Raises _Incomplete when the buffer holds only part of it.

    Values as redis-py's own parsers give them without decode_responses:
    strings as bytes, an error reply as a ResponseError, a map as a dict, a
    set as a list, a double as a float, a boolean as a bool, a big number
    as an int, a verbatim string without its format prefix, a null as
    None; an attribute (`|`) is read and dropped, the value after it is the
    reply (RL.* sends neither attributes nor pushes)."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _INCOMPLETE
    kind = buf[pos]  # (end >= 0: pos is inside the buffer)
    if kind == 58:  # ':' integer
        return int(buf[pos + 1 : end]), end + 2
    if kind == 42 or kind == 126 or kind == 62:  # '*' array, '~' set, '>' push
        n = int(buf[pos + 1 : end])
        pos = end + 2
        if n < 0:
            return None, pos
        items: list[Any] = _Push() if kind == 62 else []
        append = items.append
        find = buf.find
        for _ in range(n):
            if buf[pos : pos + 1] == b":":  # the usual item: an integer, read here
                end = find(b"\r\n", pos)
                if end < 0:
                    raise _INCOMPLETE
                append(int(buf[pos + 1 : end]))
                pos = end + 2
            else:
                item, pos = _parse(buf, pos)
                append(item)
        return items, pos
    if kind == 36 or kind == 61 or kind == 33:  # '$' bulk, '=' verbatim, '!' bulk error
        n = int(buf[pos + 1 : end])
        if n < 0:
            return None, end + 2
        start = end + 2
        if len(buf) < start + n + 2:
            raise _INCOMPLETE
        if kind == 36:
            return buf[start : start + n], start + n + 2
        if kind == 61:  # "txt:" or "mkd:" first
            return buf[start + 4 : start + n], start + n + 2
        return _error(buf[start : start + n]), start + n + 2
    if kind == 43:  # '+' simple string
        return buf[pos + 1 : end], end + 2
    if kind == 45:  # '-' error
        return _error(buf[pos + 1 : end]), end + 2
    if kind == 37 or kind == 124:  # '%' map, '|' attribute
        n = int(buf[pos + 1 : end])
        pos = end + 2
        pairs: dict[Any, Any] = {}
        for _ in range(n):
            key, pos = _parse(buf, pos)
            pairs[key], pos = _parse(buf, pos)
        if kind == 124:
            return _parse(buf, pos)
        return pairs, pos
    if kind == 95:  # '_' null
        return None, end + 2
    if kind == 40:  # '(' big number
        return int(buf[pos + 1 : end]), end + 2
    if kind == 44:  # ',' double ("inf", "-inf" and "nan" included)
        return float(buf[pos + 1 : end]), end + 2
    if kind == 35:  # '#' boolean
        return buf[pos + 1 : end] == b"t", end + 2
    raise RedisConnectionError(f"unexpected reply from Redis: {bytes(buf[pos : pos + 20])!r}")


def _error(text: bytes) -> ResponseError:
    return ResponseError(text.decode("utf-8", "replace"))


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: FastConnection) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.pending: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.buf = b""
        self.lost: BaseException | None = None
        self.out: list[bytes] = []  # commands to write at the end of this loop iteration
        self.watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        pos = 0
        size = len(buf)
        pending = self.pending
        five = _FIVE.match
        try:
            while pos < size and pending:
                m = five(buf, pos)  # the usual reply: a decision's five integers
                if m is not None:
                    value: Any = list(map(int, m.groups()))
                    pos = m.end()
                else:
                    try:
                        value, pos = _parse(buf, pos)
                    except _Incomplete:
                        break
                    if type(value) is _Push:
                        continue
                fut = pending.popleft()[0]
                if fut.done():  # its caller gave up (timeout, cancelled)
                    continue
                if isinstance(value, ResponseError):
                    fut.set_exception(value)
                else:
                    fut.set_result(value)
        except Exception as e:  # a reply this parser cannot read: start over
            self.buf = b""
            self._unreadable(e)
            return
        self.buf = buf[pos:] if pos < len(buf) else b""

    def _unreadable(self, e: Exception) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._fail(e)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = exc or RedisConnectionError("connection to Redis closed")
        self._fail(self.lost)
        self.owner._lost(self)

    def _fail(self, exc: BaseException) -> None:
        err = exc if isinstance(exc, (RedisConnectionError, RedisTimeoutError)) else (
            RedisConnectionError(f"connection to Redis lost: {exc!r}")
        )  # fmt: skip
        while self.pending:
            fut = self.pending.popleft()[0]
            if not fut.done():
                fut.set_exception(err)


class _HiredisProtocol(_Protocol):
    """The same connection, its replies read by hiredis's C parser (faster:
    see PARSER). Its values are the pure parser's, except a big number
    (bytes) and an attribute (given as a reply of its own, which would
    shift every reply after it): RL.* sends neither, nor does Redis unasked;
    a blob error (`!`, unknown to hiredis) drops the connection."""

    def __init__(self, owner: FastConnection) -> None:
        super().__init__(owner)
        assert hiredis is not None
        self.reader = hiredis.Reader(replyError=ResponseError, notEnoughData=_NOT_ENOUGH)
        self.push = hiredis.PushNotification

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        gets = self.reader.gets
        pending = self.pending
        push = self.push
        try:
            while pending:
                value = gets()
                if value is _NOT_ENOUGH:
                    break
                if type(value) is push:
                    continue
                fut = pending.popleft()[0]
                if fut.done():
                    continue
                if isinstance(value, ResponseError):
                    fut.set_exception(value)
                else:
                    fut.set_result(value)
        except Exception as e:
            self._unreadable(e)


class FastConnection:
    """One automatically pipelined connection to a standalone Redis.

    `timeout`: a reply overdue by that long means Redis is stalled: the
    connection is dropped and every command waiting on it fails
    (TimeoutError); the next command connects again.
    `protocol`: 3 says HELLO 3 on connecting (the replies in RESP3, as
    redis-py's own connections get them with protocol=3), 2 stays in RESP2.
    `parser`: "hiredis" or "python"; None: PARSER.
    `client_name`: CLIENT SETNAME on connecting, so the connection shows in
    CLIENT LIST as the app's own do; `keepalive` (TCP only): SO_KEEPALIVE,
    with `keepalive_options` ({TCP_KEEPIDLE: 60, ...}) as redis-py sets
    them."""

    def __init__(
        self,
        *,
        host: str | None = None,
        port: int = 6379,
        path: str | None = None,
        username: str | None = None,
        password: str | None = None,
        db: int = 0,
        timeout: float = 0.5,
        connect_timeout: float | None = None,
        protocol: int = 2,
        parser: str | None = None,
        client_name: str | None = None,
        keepalive: bool = False,
        keepalive_options: Mapping[int, int | bytes] | None = None,
    ) -> None:
        if protocol not in (2, 3):
            raise ValueError(f"protocol must be 2 or 3, not {protocol!r}")
        parser = parser or PARSER
        if parser not in ("hiredis", "python") or (parser == "hiredis" and hiredis is None):
            raise ValueError(f"no such parser here: {parser!r} (hiredis installed: "
                             f"{hiredis is not None})")  # fmt: skip
        self.host, self.port, self.path = host, port, path
        self.username, self.password, self.db = username, password, db
        self.timeout = timeout
        self.connect_timeout = connect_timeout if connect_timeout is not None else timeout
        self.protocol = protocol
        self.parser = parser
        self.client_name = client_name
        self.keepalive = keepalive
        self.keepalive_options = dict(keepalive_options or {})
        self._protocol_class = _HiredisProtocol if parser == "hiredis" else _Protocol
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def for_client(cls, redis: Any, timeout: float) -> FastConnection | None:
        """A FastConnection to where a redis.asyncio.Redis connects, in the
        protocol its connections speak, or None when that is not a plain TCP
        or unix socket connection this can speak for (TLS, a credential
        provider, a cluster, Sentinel, a subclass of Redis...).

        Read from redis-py's public API only: the client's connection_pool,
        the pool's connection_class and connection_kwargs (what every
        connection it makes is given)."""
        from redis.asyncio import Redis
        from redis.asyncio.connection import Connection, UnixDomainSocketConnection

        if type(redis) is not Redis:  # a subclass may change what a command does
            return None
        pool = redis.connection_pool
        cls_ = pool.connection_class
        kw: dict[str, Any] = pool.connection_kwargs
        if cls_ not in (Connection, UnixDomainSocketConnection):
            return None
        if kw.get("credential_provider") is not None or kw.get("ssl"):
            return None
        common: dict[str, Any] = {
            "username": kw.get("username"),
            "password": kw.get("password"),
            "db": int(kw.get("db", 0) or 0),
            "timeout": timeout,
            "connect_timeout": kw.get("socket_connect_timeout"),
            "protocol": _client_protocol(kw.get("protocol")),
            "client_name": kw.get("client_name") or None,
        }
        if cls_ is UnixDomainSocketConnection:
            return cls(path=kw.get("path"), **common)
        # Keepalive as the client's own connections resolve it (redis-py 8
        # turns it on by default, with options of its own; 5 to 7 leave it
        # off): read off one made, and never connected, by the pool's class.
        probe = cls_(**kw)
        options = getattr(probe, "socket_keepalive_options", None)
        return cls(host=kw.get("host", "localhost"), port=int(kw.get("port", 6379)),
                   keepalive=bool(getattr(probe, "socket_keepalive", False)),
                   keepalive_options=options if isinstance(options, Mapping) else None,
                   **common)  # fmt: skip

    def execute(self, args: Sequence[Arg]) -> Awaitable[Any]:
        """Sends one command and waits for its reply. Raises ResponseError
        for an error reply, ConnectionError/TimeoutError (redis-py's) when
        Redis cannot be reached or does not answer in time."""
        return self.send(encode(args))

    async def send(self, command: bytes) -> Any:
        """execute() for a command already in RESP."""
        fut = self.submit(command)
        if fut is None:
            await self._connect(asyncio.get_running_loop())
            fut = self.submit(command)
            if fut is None:
                raise RedisConnectionError("connection to Redis lost")
        return await fut

    def submit(self, command: bytes) -> asyncio.Future[Any] | None:
        """Queues a command (in RESP) and returns the future of its reply;
        None when not connected (from this event loop): send() connects."""
        proto = self._proto
        loop = self._loop
        if proto is None or loop is None or proto.lost is not None:
            return None
        if asyncio.get_running_loop() is not loop:
            return None
        fut = loop.create_future()
        proto.pending.append((fut, loop.time()))
        out = proto.out
        out.append(command)
        if len(out) == 1:
            loop.call_soon(self._flush, proto)
        if proto.watchdog is None:
            proto.watchdog = loop.call_later(self.timeout, self._check, proto, loop)
        return fut

    @staticmethod
    def _flush(proto: _Protocol) -> None:
        data = b"".join(proto.out)
        proto.out.clear()
        if proto.transport is not None and proto.lost is None:
            proto.transport.write(data)

    def _check(self, proto: _Protocol, loop: asyncio.AbstractEventLoop) -> None:
        """The watchdog: fails everything when the oldest reply is overdue."""
        proto.watchdog = None
        if proto.lost is not None or not proto.pending:
            return
        now = loop.time()
        oldest = proto.pending[0][1]
        if now - oldest >= self.timeout:
            proto._fail(RedisTimeoutError(f"no reply from Redis within {self.timeout:g} s"))
            if proto.transport is not None:
                proto.transport.abort()
            return
        proto.watchdog = loop.call_later(oldest + self.timeout - now, self._check, proto, loop)

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        if self._loop is not loop:  # a new event loop (tests): start over
            self._proto, self._connecting = None, None
            self._loop = loop
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open(loop))
        try:
            return await asyncio.shield(self._connecting)
        finally:
            c = self._connecting
            if c is not None and c.done() and (c.cancelled() or c.exception() is not None):
                self._connecting = None  # the next call tries again

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        try:
            if self.path is not None:
                coro = loop.create_unix_connection(lambda: self._protocol_class(self), self.path)
            else:
                coro = loop.create_connection(
                    lambda: self._protocol_class(self), self.host or "localhost", self.port
                )
            transport, proto = await asyncio.wait_for(coro, self.connect_timeout)
        except TimeoutError:
            raise RedisTimeoutError("timed out connecting to Redis") from None
        except OSError as e:
            raise RedisConnectionError(f"cannot connect to Redis: {e}") from e
        if self.keepalive and self.path is None:
            sock = transport.get_extra_info("socket")
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                for option, value in self.keepalive_options.items():
                    sock.setsockopt(socket.IPPROTO_TCP, option, value)
            except (OSError, TypeError) as e:
                transport.abort()
                raise RedisConnectionError(f"cannot set TCP keepalive: {e}") from e
        setup: list[list[Arg]] = []
        if self.protocol == 3:  # credentials in HELLO, as redis-py sends them
            hello: list[Arg] = ["HELLO", 3]
            if self.password is not None:
                hello += ["AUTH", self.username or "default", self.password]
            setup.append(hello)
        elif self.password is not None:
            setup.append(["AUTH", self.password] if self.username is None
                         else ["AUTH", self.username, self.password])  # fmt: skip
        if self.client_name:
            setup.append(["CLIENT", "SETNAME", self.client_name])
        if self.db:
            setup.append(["SELECT", self.db])
        if setup:
            futs = []
            for cmd in setup:
                fut = loop.create_future()
                proto.pending.append((fut, loop.time()))
                futs.append(fut)
                assert proto.transport is not None
                proto.transport.write(encode(cmd))
            try:
                await asyncio.wait_for(asyncio.gather(*futs), self.connect_timeout)
            except BaseException:
                if proto.transport is not None:
                    proto.transport.abort()
                raise
        self._proto = proto
        return proto

    def _lost(self, proto: _Protocol) -> None:
        if proto.watchdog is not None:
            proto.watchdog.cancel()
            proto.watchdog = None
        if self._proto is proto:
            self._proto = None
            self._connecting = None

    def close(self) -> None:
        loop = self._loop
        # A connection of an event loop already closed (a test client's,
        # the start-up check's) went with it.
        if (
            self._proto is not None
            and self._proto.transport is not None
            and (loop is None or not loop.is_closed())
        ):
            self._proto.transport.close()
        self._proto = None
        self._connecting = None


def _client_protocol(protocol: Any) -> int:
    """The RESP version of redis-py's connections given `protocol` (their
    connection_kwargs' "protocol"): unset, redis-py's default (RESP3 since
    redis-py 8, RESP2 before)."""
    if protocol is None:
        import redis.utils

        protocol = getattr(redis.utils, "DEFAULT_RESP_VERSION", 2)
    return 3 if int(protocol) == 3 else 2


# The parser of replies: hiredis's when it is installed (about twice as fast
# at reading a decision's reply), else the pure Python one.
PARSER = "hiredis" if hiredis is not None else "python"
