//! Test harness: real `redis-server` processes with the freshly built module,
//! on free loopback ports, and a minimal RESP2/RESP3 client that shows
//! replies exactly as the server sent them (types included).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A reply, as typed by the protocol.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Bulk(Vec<u8>),
    Simple(String),
    Error(String),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Bool(bool),
    Double(String),
    Null,
}

impl Value {
    pub fn int(&self) -> i64 {
        match self {
            Value::Int(i) => *i,
            other => panic!("expected an integer, got {other:?}"),
        }
    }

    /// An array's items as text (`RL.POLICY LIST`, `RL.POLICY GET`).
    pub fn texts(&self) -> Vec<String> {
        match self {
            Value::Array(items) => items.iter().map(Value::text).collect(),
            other => panic!("expected an array, got {other:?}"),
        }
    }

    pub fn ints(&self) -> Vec<i64> {
        match self {
            Value::Array(items) => items.iter().map(Value::int).collect(),
            other => panic!("expected an array of integers, got {other:?}"),
        }
    }

    pub fn text(&self) -> String {
        match self {
            Value::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            Value::Simple(s) | Value::Error(s) => s.clone(),
            other => panic!("expected a string, got {other:?}"),
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Value::Bulk(b) => b.clone(),
            other => panic!("expected a bulk string, got {other:?}"),
        }
    }

    pub fn err(&self) -> String {
        match self {
            Value::Error(s) => s.clone(),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Value::Error(_))
    }

    /// One `name:value` integer field of an `INFO` reply.
    pub fn info_int(&self, field: &str) -> i64 {
        let text = self.text();
        let prefix = format!("{field}:");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {field} in INFO"))
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{field} is not an integer"))
    }
}

/// An argument: anything that is bytes.
pub trait Arg {
    fn bytes(&self) -> Vec<u8>;
}
impl Arg for &str {
    fn bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}
impl Arg for String {
    fn bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}
impl Arg for &[u8] {
    fn bytes(&self) -> Vec<u8> {
        self.to_vec()
    }
}
impl Arg for Vec<u8> {
    fn bytes(&self) -> Vec<u8> {
        self.clone()
    }
}
impl Arg for i64 {
    fn bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub fn connect(port: u16) -> std::io::Result<Client> {
        Client::on(TcpStream::connect(("127.0.0.1", port))?)
    }

    /// A client on a connection made elsewhere (such as one a replica opened
    /// to a fake master: it then reads the replica's commands).
    pub fn on(stream: TcpStream) -> std::io::Result<Client> {
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    pub fn send(&mut self, args: &[Vec<u8>]) {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a);
            buf.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&buf).expect("write to redis");
    }

    pub fn call(&mut self, args: &[Vec<u8>]) -> Value {
        self.send(args);
        self.read()
    }

    /// Splits a command line on spaces (no quoting; use `call` for binary args).
    pub fn cmd(&mut self, line: &str) -> Value {
        let args: Vec<Vec<u8>> = line
            .split_whitespace()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        self.call(&args)
    }

    fn line(&mut self) -> String {
        // Error lines may echo a client's bytes (`unknown command ...`).
        let mut raw = Vec::new();
        self.reader
            .read_until(b'\n', &mut raw)
            .expect("read from redis");
        let mut line = String::from_utf8_lossy(&raw).into_owned();
        assert!(line.ends_with("\r\n"), "truncated reply line {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    pub fn read(&mut self) -> Value {
        let line = self.line();
        let (kind, rest) = line.split_at(1);
        match kind {
            ":" => Value::Int(rest.parse().expect("integer reply")),
            "+" => Value::Simple(rest.to_string()),
            "-" => Value::Error(rest.to_string()),
            "#" => Value::Bool(rest == "t"),
            "," => Value::Double(rest.to_string()),
            "_" => Value::Null,
            "$" | "=" => {
                let n: i64 = rest.parse().expect("bulk length");
                if n < 0 {
                    return Value::Null;
                }
                let mut buf = vec![0; n as usize + 2];
                self.reader.read_exact(&mut buf).expect("bulk body");
                buf.truncate(n as usize);
                Value::Bulk(buf)
            }
            "*" | "~" | ">" => {
                let n: i64 = rest.parse().expect("array length");
                if n < 0 {
                    return Value::Null;
                }
                Value::Array((0..n).map(|_| self.read()).collect())
            }
            "%" => {
                let n: usize = rest.parse().expect("map length");
                Value::Map((0..n).map(|_| (self.read(), self.read())).collect())
            }
            other => panic!("unexpected reply type {other:?} in {line:?}"),
        }
    }
}

/// Builds an argument vector from mixed pieces: `args!["RL.FIXED", key, 10]`.
#[macro_export]
macro_rules! args {
    ($($a:expr),* $(,)?) => { Vec::from([$(common::Arg::bytes(&$a)),*]) };
}

pub fn module_path() -> PathBuf {
    if let Ok(p) = std::env::var("RL_MODULE") {
        return PathBuf::from(p);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debug/libratelimit.so");
    assert!(
        dir.exists(),
        "{} is missing: run cargo build first",
        dir.display()
    );
    dir
}

pub fn redis_server_binary() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_string())
}

/// A free loopback port for a server a test starts itself.
pub fn free_port() -> u16 {
    // Never 6379: that one belongs to the user's own server.
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind an ephemeral port")
            .local_addr()
            .unwrap()
            .port();
        if port != 6379 {
            return port;
        }
    }
}

/// One `INFO section` reply, or `None` on any connection error or other
/// reply (a server whose load fails closes connections while it exits, so
/// this must not panic like [`Client`] does).
fn try_info(port: u16, section: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let cmd = format!("*2\r\n$4\r\nINFO\r\n${}\r\n{section}\r\n", section.len());
    stream.write_all(cmd.as_bytes()).ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let len: usize = line.strip_prefix('$')?.trim_end().parse().ok()?;
    let mut body = vec![0; len + 2];
    reader.read_exact(&mut body).ok()?;
    body.truncate(len);
    String::from_utf8(body).ok()
}

static SERVERS: AtomicUsize = AtomicUsize::new(0);

/// A redis-server with the module, stopped (and its files removed) on drop.
pub struct Server {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
    args: Vec<String>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts a server with extra `--name value` config arguments.
    pub fn start_with(extra: &[&str]) -> Server {
        let n = SERVERS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("rl-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let module = module_path();
        let mut args: Vec<String> = vec![
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
            "--enable-debug-command".into(),
            "yes".into(),
            "--loadmodule".into(),
            module.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Server::spawn(dir, args)
    }

    fn spawn(dir: PathBuf, args: Vec<String>) -> Server {
        for _attempt in 0..5 {
            // A failed attempt's Drop removed the directory.
            std::fs::create_dir_all(&dir).unwrap();
            let port = free_port();
            let child = Command::new(redis_server_binary())
                .args([
                    "--port",
                    &port.to_string(),
                    "--dir",
                    &dir.display().to_string(),
                ])
                .args(["--logfile", "redis.log"])
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server (is it installed? run scripts/test)");
            let mut server = Server {
                port,
                dir: dir.clone(),
                child,
                args: args.clone(),
            };
            if server.wait_ready() {
                return server;
            }
            server.kill();
        }
        panic!(
            "redis-server did not start; see {}",
            dir.join("redis.log").display()
        );
    }

    fn wait_ready(&mut self) -> bool {
        // Returns as soon as the server answers (or exits); the deadline is
        // only a safety limit, generous for a slow shared machine.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            // Check the pid too: another test's server could hold a port
            // that this one failed to bind.
            if let Some(text) = try_info(self.port, "server") {
                let pid = format!("process_id:{}\r\n", self.child.id());
                if !text.contains(&pid) {
                    return false;
                }
                // INFO answers while the RDB/AOF is still loading, when any
                // other command would get -LOADING: wait for the end.
                if try_info(self.port, "persistence")
                    .is_some_and(|p| p.lines().any(|l| l == "loading:0"))
                {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn client(&self) -> Client {
        Client::connect(self.port).expect("connect to test redis")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the server with `SHUTDOWN NOSAVE` and waits (up to `timeout`)
    /// for the process to exit on its own, so a wrapper such as valgrind
    /// gets to write its report; returns the exit status, `None` if it had
    /// to be killed.
    pub fn shutdown_gracefully(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        if let Ok(mut c) = Client::connect(self.port) {
            c.send(&[b"SHUTDOWN".to_vec(), b"NOSAVE".to_vec()]);
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        None
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the process at once (SIGKILL), as a crash or a lost machine
    /// would; its files stay until drop.
    pub fn crash(&mut self) {
        self.kill();
    }

    /// Stops the server the way an operator would (SHUTDOWN, saving if
    /// persistence is configured), leaving its files for [`Server::start_again`].
    pub fn stop(&mut self) {
        if let Ok(mut c) = Client::connect(self.port) {
            c.send(&[b"SHUTDOWN".to_vec()]);
        }
        // Killing it before it has saved would lose data the restart tests
        // check: wait as long as a slow machine may need.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && self.alive() {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    /// Starts a stopped server again on its port and directory; `false` if
    /// it exited instead of becoming ready (see [`Server::log`]).
    pub fn start_again(&mut self) -> bool {
        self.child = Command::new(redis_server_binary())
            .args(["--port", &self.port.to_string()])
            .args(["--dir", &self.dir.display().to_string()])
            .args(["--logfile", "redis.log"])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server again");
        self.wait_ready()
    }

    /// As [`Server::restart`], with `extra` config arguments from now on
    /// (later arguments win, as in a config file): say, the AOF a running
    /// server turned on with `CONFIG SET`.
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.args.extend(extra.iter().map(|s| s.to_string()));
        self.restart();
    }

    /// Stops the server the way an operator would (SHUTDOWN, saving if
    /// persistence is configured) and starts it again on the same port and
    /// directory, so it reloads its RDB/AOF.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.start_again(),
            "redis-server did not restart: {}",
            self.log()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// An instant in the wall clock's past (November 2023) for `AT`: the
/// decision is exact, and the key's expiry still counts from the server's
/// clock, so it lives as long as its window or bucket needs.
pub const T0: i64 = 1_700_000_000_000;

/// An instant ahead of the wall clock (2096) for `AT`: what `RL.INFO` and
/// key expiry (which read the server's clock) must see as still in force,
/// such as a block or a lease, stays in force for the whole test.
pub const T1: i64 = 4_000_000_000_000;

/// Each algorithm's command with small parameters of its own (a limit or
/// capacity of 5, GCRA's burst of 4: its limit is burst + 1) over an hour,
/// for tests that hold every algorithm to one rule.
pub const ALGORITHMS: [(&str, &str); 6] = [
    ("RL.FIXED", "5 1h"),
    ("RL.SLIDING", "5 1h"),
    ("RL.LOG", "5 1h"),
    ("RL.TOKEN", "5 1 1h"),
    ("RL.LEAKY", "5 1 1h"),
    ("RL.GCRA", "4 1 1h"),
];

/// A connection subscribed to every keyspace event of database 0 (the
/// server started with `--notify-keyspace-events` naming the classes).
pub struct KeyspaceEvents(Client);

impl KeyspaceEvents {
    pub fn subscribe(s: &Server) -> KeyspaceEvents {
        let mut c = s.client();
        assert!(matches!(
            c.cmd("PSUBSCRIBE __keyspace@0__:*"),
            Value::Array(_)
        ));
        KeyspaceEvents(c)
    }

    /// The next event's name (`rl.denied`, `set`...), waiting for it.
    pub fn next(&mut self) -> String {
        match self.0.read() {
            Value::Array(m) if m.len() == 4 => m[3].text(),
            other => panic!("not a keyspace event: {other:?}"),
        }
    }
}

/// A command line split on whitespace, as `Client::send` takes it.
pub fn words(line: &str) -> Vec<Vec<u8>> {
    line.split_whitespace()
        .map(|s| s.as_bytes().to_vec())
        .collect()
}

/// A decision's first integer (`RL.ALL` nests arrays): 1 if allowed.
pub fn allowed(reply: &Value) -> i64 {
    match reply {
        Value::Array(items) => items[0].int(),
        other => panic!("not a decision: {other:?}"),
    }
}

/// One integer field of `INFO section`.
pub fn server_info(c: &mut Client, section: &str, field: &str) -> i64 {
    c.cmd(&format!("INFO {section}")).info_int(field)
}

/// One of the module's counters in `INFO ratelimit` (`ratelimit_{field}`).
pub fn ratelimit_stat(c: &mut Client, field: &str) -> i64 {
    server_info(c, "ratelimit", &format!("ratelimit_{field}"))
}

/// `DEBUG DIGEST-VALUE key` as text: a value's digest, to compare a key's
/// bytes before and after.
pub fn digest(c: &mut Client, key: &str) -> String {
    match c.cmd(&format!("DEBUG DIGEST-VALUE {key}")) {
        Value::Array(v) => v.iter().map(Value::text).collect::<Vec<_>>().join(","),
        other => other.text(),
    }
}

/// `RL.<cmd> key params.. [COST c] AT t` as the five reply integers.
pub fn rl(c: &mut Client, line: &str, at: i64) -> Vec<i64> {
    let reply = c.cmd(&format!("{line} AT {at}"));
    match reply {
        Value::Array(_) => reply.ints(),
        other => panic!("{line} AT {at}: {other:?}"),
    }
}

/// A RESP3 map, or a RESP2 array of key-value pairs, by key.
pub fn map(v: &Value) -> HashMap<String, Value> {
    match v {
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (k.text(), v.clone())).collect(),
        Value::Array(items) => items
            .chunks(2)
            .map(|kv| (kv[0].text(), kv[1].clone()))
            .collect(),
        other => panic!("expected a map, got {other:?}"),
    }
}

/// Sends every line before reading any reply, then reads them in order.
pub fn pipeline(c: &mut Client, lines: &[String]) -> Vec<Value> {
    for l in lines {
        let args: Vec<Vec<u8>> = l.split(' ').map(|w| w.as_bytes().to_vec()).collect();
        c.send(&args);
    }
    lines.iter().map(|_| c.read()).collect()
}

/// `usec_per_call` of `command` in `INFO commandstats`, in µs.
pub fn usec_per_call(c: &mut Client, command: &str) -> f64 {
    // Module commands keep their case there (cmdstat_RL.APPLY).
    let text = c.cmd("INFO commandstats").text().to_lowercase();
    let prefix = format!("cmdstat_{}:", command.to_lowercase());
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {command} in {text}"));
    line.split(',')
        .find_map(|f| f.strip_prefix("usec_per_call="))
        .unwrap()
        .parse()
        .unwrap()
}

/// An `RL.ACQUIRE` reply: the five integers, and the lease id if granted.
pub fn lease(c: &mut Client, line: &str) -> (Vec<i64>, Option<String>) {
    let Value::Array(items) = c.cmd(line) else {
        panic!("{line}: {:?}", c.cmd("PING"))
    };
    assert_eq!(items.len(), 6, "{line}");
    let ints = items[..5].iter().map(Value::int).collect();
    let id = match &items[5] {
        Value::Null => None,
        v => Some(v.text()),
    };
    (ints, id)
}

/// An `RL.APPLY` op as the codec lays it out: a FIXED limit of `limit` per
/// `window_us`, `cost` units at `now_us`, expiring at `expire_ms`.
pub fn fixed_op(limit: u64, window_us: u64, cost: u64, now_us: u64, expire_ms: u64) -> Vec<u8> {
    let mut op = vec![1u8, 1];
    for v in [limit, window_us, cost, now_us, expire_ms] {
        op.extend_from_slice(&v.to_le_bytes());
    }
    op
}

/// A FIXED limiter's state for `RL.SETSTATE key 1 <blob>`.
pub fn fixed_state(limit: u64, window_us: u64, start_us: u64, count: u64) -> Vec<u8> {
    let mut blob = vec![1u8];
    for v in [limit, window_us, start_us, count] {
        blob.extend_from_slice(&v.to_le_bytes());
    }
    blob
}

/// Replication and AOF commands, which only a master or the AOF may send.
pub fn is_internal(args: &[Vec<u8>]) -> bool {
    args.first().is_some_and(|c| {
        [&b"RL.APPLY"[..], b"RL.APPLYALL", b"RL.SETSTATE"]
            .iter()
            .any(|i| c.eq_ignore_ascii_case(i))
    })
}

/// Whether no AOF rewrite runs or waits to run (for [`wait_until`]).
pub fn aof_rewrite_idle(c: &mut Client) -> bool {
    let p = c.cmd("INFO persistence");
    p.info_int("aof_rewrite_in_progress") == 0 && p.info_int("aof_rewrite_scheduled") == 0
}

/// A command's `calls` in `INFO commandstats`, 0 if it has none.
pub fn commandstat(c: &mut Client, name: &str) -> i64 {
    c.cmd("INFO commandstats")
        .text()
        .lines()
        // Module commands are listed as registered (upper case).
        .map(str::to_lowercase)
        .find_map(|l| {
            l.strip_prefix(&format!("cmdstat_{name}:calls="))
                .map(str::to_string)
        })
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

/// One integer field of `RL.INFO key`.
pub fn rl_info_field(c: &mut Client, key: &str, field: &str) -> i64 {
    let Value::Array(items) = c.call(&[b"RL.INFO".to_vec(), key.as_bytes().to_vec()]) else {
        panic!("RL.INFO {key}")
    };
    items
        .chunks(2)
        .find(|kv| kv[0].text() == field)
        .map(|kv| kv[1].int())
        .unwrap_or_else(|| panic!("{field} missing"))
}

/// Polls `cond` every 20 ms until it holds, failing with `what` if it still
/// does not after `timeout`. For things that happen "soon" (expiry, a
/// server's housekeeping): the timeout is a generous safety limit, never a
/// margin an assertion depends on.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    wait_for(what, timeout, || {
        if cond() {
            Ok(())
        } else {
            Err(String::new())
        }
    });
}

/// Like [`wait_until`], for a value: polls `attempt` every 20 ms until it
/// returns `Ok`, and fails after `timeout` with `what` and what the last
/// attempt saw (its `Err`).
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = match attempt() {
            Ok(found) => return found,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "{what}: still not the case after {timeout:?}{}",
            if seen.is_empty() {
                String::new()
            } else {
                format!(" ({seen})")
            }
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `TIME` reply as Unix milliseconds, rounded down like the server's own
/// millisecond clock (the one key expiry uses).
pub fn time_ms(reply: &Value) -> i64 {
    let Value::Array(parts) = reply else {
        panic!("TIME answered {reply:?}")
    };
    let secs: i64 = parts[0].text().parse().expect("TIME seconds");
    let micros: i64 = parts[1].text().parse().expect("TIME microseconds");
    secs * 1000 + micros / 1000
}

/// Every key of the selected database, sorted.
pub fn keys(c: &mut Client) -> Vec<String> {
    let Value::Array(items) = c.cmd("KEYS *") else {
        panic!("KEYS did not answer an array")
    };
    let mut keys: Vec<String> = items.iter().map(Value::text).collect();
    keys.sort();
    keys
}

/// What a key's state is, for comparing servers: its name, its exact bytes
/// (`DEBUG DIGEST-VALUE`) and its absolute expiry (`PEXPIRETIME`).
pub fn snapshot(c: &mut Client, keys: &[String]) -> Vec<(String, Value, Value)> {
    keys.iter()
        .map(|k| {
            (
                k.clone(),
                c.call(&[
                    b"DEBUG".to_vec(),
                    b"DIGEST-VALUE".to_vec(),
                    k.as_bytes().to_vec(),
                ]),
                c.call(&[b"PEXPIRETIME".to_vec(), k.as_bytes().to_vec()]),
            )
        })
        .collect()
}

/// Starts a replica of `master` and waits until it has synced.
pub fn start_replica(master: &Server, extra: &[&str]) -> Server {
    let port = master.port.to_string();
    let mut args = vec!["--replicaof", "127.0.0.1", port.as_str()];
    args.extend_from_slice(extra);
    let replica = Server::start_with(&args);
    let mut c = replica.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !c
        .cmd("INFO replication")
        .text()
        .contains("master_link_status:up")
    {
        assert!(Instant::now() < deadline, "replica never synced");
        std::thread::sleep(Duration::from_millis(50));
    }
    replica
}

/// The server's `redis_version` as (major, minor); Valkey reports 7.2.
pub fn server_version(c: &mut Client) -> (u32, u32) {
    let info = c.cmd("INFO server").text();
    let v = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap()
        .trim()
        .to_string();
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

/// Waits until every replica has processed everything sent so far (WAIT
/// answers as soon as they have; its timeout is only a safety limit).
pub fn sync(master: &mut Client, replicas: i64) {
    assert_eq!(
        master.cmd(&format!("WAIT {replicas} 60000")).int(),
        replicas,
        "replicas did not acknowledge"
    );
}

/// A master played by the test: a replica syncs from a socket the test
/// holds, gets `rdb` and then a command stream of the test's choosing, as a
/// real master's replication link would carry it.
pub struct FakeMaster {
    to_replica: TcpStream,
    /// Bytes of command stream sent so far (the replica's offset once it has
    /// applied everything).
    sent: i64,
    drain: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    /// What the replica said during the handshake.
    pub handshake: Vec<String>,
}

fn replica_progress(c: &mut Client) -> (i64, bool) {
    let info = c.cmd("INFO replication");
    let up = info.text().contains("master_link_status:up");
    let offset = if info.text().contains("slave_repl_offset:") {
        info.info_int("slave_repl_offset")
    } else {
        -1
    };
    (offset, up)
}

impl FakeMaster {
    /// Makes `replica` replicate from the test, answers its handshake
    /// (`+FULLRESYNC replid 0`), sends `rdb` and `stream`, and returns once
    /// the replica has applied the whole stream.
    pub fn feed(replica: &Server, replid: &str, rdb: &[u8], stream: &[u8]) -> FakeMaster {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let mut c = replica.client();
        assert_eq!(
            c.cmd(&format!("REPLICAOF 127.0.0.1 {port}")),
            Value::Simple("OK".into())
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let link = loop {
            match listener.accept() {
                Ok((link, _)) => break link,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "the replica never connected");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        link.set_nonblocking(false).unwrap();
        let mut to_replica = link.try_clone().unwrap();
        let mut from_replica = Client::on(link).unwrap();
        let mut handshake = Vec::new();
        loop {
            // Replicas send their commands as RESP arrays.
            let cmd: Vec<String> = match from_replica.read() {
                Value::Array(items) => items.iter().map(Value::text).collect(),
                other => panic!("unexpected command from the replica: {other:?}"),
            };
            let name = cmd
                .first()
                .map(|s| s.to_ascii_uppercase())
                .unwrap_or_default();
            handshake.push(cmd.join(" "));
            match name.as_str() {
                "PING" => to_replica.write_all(b"+PONG\r\n").unwrap(),
                "REPLCONF" | "AUTH" => to_replica.write_all(b"+OK\r\n").unwrap(),
                "PSYNC" | "SYNC" => {
                    if name == "PSYNC" {
                        let reply = format!("+FULLRESYNC {replid} 0\r\n");
                        to_replica.write_all(reply.as_bytes()).unwrap();
                    }
                    // Disk-based transfer: `$<len>\r\n` and the RDB, with no
                    // CRLF after it, then the command stream.
                    to_replica
                        .write_all(format!("${}\r\n", rdb.len()).as_bytes())
                        .unwrap();
                    to_replica.write_all(rdb).unwrap();
                    break;
                }
                _ => panic!("unexpected command from the replica: {handshake:?}"),
            }
        }
        // The replica acknowledges (REPLCONF ACK) every second: read and
        // drop that until it closes the link.
        drop(from_replica);
        let mut acks = to_replica.try_clone().unwrap();
        acks.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let drain = std::thread::spawn(move || {
            let mut sink = [0u8; 4096];
            loop {
                match acks.read(&mut sink) {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
        });
        let mut master = FakeMaster {
            to_replica,
            sent: 0,
            drain: Some(drain),
            handshake,
        };
        master.send(&mut c, stream, replica);
        master
    }

    /// Sends more of the command stream and waits until the replica has
    /// applied it.
    pub fn send(&mut self, c: &mut Client, stream: &[u8], replica: &Server) {
        self.to_replica.write_all(stream).unwrap();
        self.sent += stream.len() as i64;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (offset, up) = replica_progress(c);
            if up && offset == self.sent {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the replica did not apply the stream (offset {offset} of {}, link up: {up}):\n{}",
                self.sent,
                replica.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Promotes the replica (`REPLICAOF NO ONE`), which closes the link
    /// cleanly.
    pub fn detach(mut self, c: &mut Client) {
        assert_eq!(c.cmd("REPLICAOF NO ONE"), Value::Simple("OK".into()));
        if let Some(drain) = self.drain.take() {
            drain
                .join()
                .unwrap()
                .expect("the replica closed the link cleanly");
        }
    }
}

/// One command in RESP, as a master's stream carries it.
pub fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `masters * (1 + replicas)` cluster-enabled servers with the module,
/// joined by `redis-cli --cluster create` (each master gets `replicas`
/// replicas). The caller waits for `cluster_state:ok` as its test needs.
#[allow(dead_code)] // not every test binary starts a cluster
pub fn start_cluster_nodes(masters: usize, replicas: usize, extra: &[&str]) -> Vec<Server> {
    let mut args = vec![
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
    ];
    args.extend_from_slice(extra);
    let nodes: Vec<Server> = (0..masters * (1 + replicas))
        .map(|_| Server::start_with(&args))
        .collect();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let out = std::process::Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
        .output()
        .expect("redis-cli (redis-tools) is needed");
    assert!(
        out.status.success(),
        "cluster create failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    nodes
}
