//! Command docs: `COMMAND DOCS`, `COMMAND INFO` and ACL categories.
//!
//! What clients learn from the server: `COMMAND DOCS` and `COMMAND INFO`
//! (summary, arity, key specs, arguments) and ACL categories where the
//! server lets a module set them.

mod common;

use common::{server_version, Server, Value};

fn flat(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().flat_map(flat).collect(),
        Value::Map(pairs) => pairs
            .iter()
            .flat_map(|(k, v)| flat(k).into_iter().chain(flat(v)))
            .collect(),
        Value::Null => vec![],
        Value::Int(i) => vec![i.to_string()],
        other => vec![other.text()],
    }
}

#[test]
fn every_command_is_documented() {
    let s = Server::start_with(&["cell-compat", "yes"]);
    let mut c = s.client();
    for (name, arity) in [
        ("RL.FIXED", -4),
        ("RL.SLIDING", -4),
        ("RL.LOG", -4),
        ("RL.TOKEN", -5),
        ("RL.LEAKY", -5),
        ("RL.GCRA", -5),
        ("RL.ALL", -2),
        ("RL.INFO", 2),
        ("RL.PEEK", -4),
        ("RL.REFUND", -3),
        ("RL.ACQUIRE", -4),
        ("RL.CHECK", -3),
        ("RL.POLICY|SET", -3),
        ("RL.POLICY|GET", 3),
        ("RL.POLICY|DEL", 3),
        ("RL.POLICY|LIST", 2),
        ("RL.RELEASE", -3),
        ("RL.RENEW", -4),
        ("RL.APPLY", 3),
        ("RL.APPLYALL", -4),
        ("RL.SETSTATE", 4),
        ("CL.THROTTLE", -5),
    ] {
        if c.cmd(&format!("COMMAND INFO {name}")) == Value::Array(vec![Value::Null]) {
            // Internal commands are hidden from clients on Redis 8.
            assert!(
                name.starts_with("RL.APPLY") || name == "RL.SETSTATE",
                "{name}"
            );
            continue;
        }
        let docs = flat(&c.cmd(&format!("COMMAND DOCS {name}")));
        for field in ["summary", "since", "complexity", "arguments"] {
            assert!(
                docs.iter().any(|d| d == field),
                "{name}: no {field} in {docs:?}"
            );
        }
        let info = c.cmd(&format!("COMMAND INFO {name}"));
        let Value::Array(rows) = &info else {
            panic!("{info:?}")
        };
        let Value::Array(row) = &rows[0] else {
            panic!("{info:?}")
        };
        assert_eq!(row[1].int(), arity, "{name}");
    }
    // Options show as such, so redis-cli can hint them.
    let docs = flat(&c.cmd("COMMAND DOCS RL.TOKEN"));
    let joined = docs.join(" ");
    // (Redis 7.4 adds a display_text after each type.)
    for words in [
        "name capacity type integer",
        "name period type string",
        "name cost type integer",
        "token COST flags optional",
        "type unix-time",
        "token AT flags optional",
        "name duration type string",
        "token PENALTY flags optional",
    ] {
        assert!(joined.contains(words), "{words}: {joined}");
    }
    let docs = flat(&c.cmd("COMMAND DOCS RL.FIXED")).join(" ");
    for words in [
        "name window type string",
        "token ALIGN flags optional",
        "token OFFSET flags optional",
    ] {
        assert!(docs.contains(words), "{words}: {docs}");
    }
    let docs = flat(&c.cmd("COMMAND DOCS RL.ACQUIRE")).join(" ");
    for words in [
        "name ttl type string",
        "token ID flags optional",
        "token COST flags optional",
    ] {
        assert!(docs.contains(words), "{words}: {docs}");
    }
    // The lease commands are O(n) in the leases a key holds: not `fast`.
    let info = flat(&c.cmd("COMMAND INFO RL.ACQUIRE")).join(" ");
    assert!(!info.contains("fast"), "{info}");
    assert!(info.contains("flags RW access update"), "{info}");
    // Key specs: RL.INFO only reads, decisions read and update.
    let info = flat(&c.cmd("COMMAND INFO RL.INFO")).join(" ");
    assert!(info.contains("flags RO access"), "{info}");
    let info = flat(&c.cmd("COMMAND INFO RL.FIXED")).join(" ");
    assert!(info.contains("flags RW access update"), "{info}");
    let info = flat(&c.cmd("COMMAND INFO RL.ALL")).join(" ");
    assert!(info.contains("flags RW access update"), "{info}");
    assert!(info.contains("keynum"), "{info}");
    // Redis itself now checks the arity of a call.
    assert_eq!(
        c.cmd("RL.TOKEN k 10 1").err(),
        "ERR wrong number of arguments for 'RL.TOKEN' command"
    );
}

#[test]
fn acl_categories_where_the_server_allows_them() {
    let s = Server::start();
    let mut c = s.client();
    let version = server_version(&mut c);
    let info = flat(&c.cmd("COMMAND INFO RL.FIXED")).join(" ");
    assert_eq!(
        c.cmd("ACL SETUSER writer on nopass ~* +@write").text(),
        "OK"
    );
    let mut w = s.client();
    assert_eq!(w.cmd("AUTH writer x").text(), "OK");
    let allowed = w.cmd("RL.FIXED k 10 1s");
    if version >= (7, 2) {
        // Redis 7.2 lets a module set its commands' categories.
        assert!(info.contains("@write") && info.contains("@fast"), "{info}");
        assert_eq!(allowed.ints()[0], 1, "{allowed:?}");
        let ro = flat(&c.cmd("COMMAND INFO RL.INFO")).join(" ");
        assert!(ro.contains("@read"), "{ro}");
    } else {
        // Redis 7.0 puts module commands in no category: grant them by name
        // (README, "Access control").
        assert!(
            allowed.err().starts_with("NOPERM"),
            "{allowed:?} on {version:?}"
        );
    }
    if version >= (7, 4) {
        assert!(info.contains("@ratelimit"), "{info}");
        assert_eq!(
            c.cmd("ACL SETUSER limiter on nopass ~* +@ratelimit").text(),
            "OK"
        );
        let mut l = s.client();
        assert_eq!(l.cmd("AUTH limiter x").text(), "OK");
        assert_eq!(l.cmd("RL.TOKEN t 10 1 1s").ints()[0], 1);
    }
}
