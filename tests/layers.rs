//! The layering of `src/module`: imports point down, never in a circle.
//!
//! The layering of `src/module` (README, "How it works"): every file
//! imports only files of lower layers, so there is no import cycle, the
//! command families never import each other, and `ffi` imports none of the
//! module. Read from the sources' own `super::` and `crate::module::` paths.
//! A folder (`src/module/ffi/`) is one node: its `mod.rs` and children are
//! that node, may import each other, and are held to the node's layer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Bottom first; a file may import only files of the layers before its own.
const LAYERS: &[&[&str]] = &[
    // the module API, generic over the value a key holds
    &["ffi"],
    // leaves: one concern each
    &["clock", "config", "docs", "reply", "stats", "top"],
    // the value Redis holds, and its callbacks
    &["datatype"],
    // the server's named policies
    &["registry"],
    // errors, sources, expiry rules, decide-then-install, replay checks
    &["kernel"],
    // command families, siblings
    &["windows", "leases", "policies", "replay", "monitor"],
    // registration, handlers, INFO
    &["mod"],
];

/// The source without comments and without its `#[cfg(test)] mod tests`.
fn code(src: &str) -> String {
    let src = src.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
    src.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The files of the module that `file` imports: `super::x`,
/// `super::{x, y}` and `crate::module::x`, and, in `mod.rs`, `x::` for a
/// child `x`. A path to an item of `mod.rs` itself (`super::VERSION`)
/// imports `mod`.
fn imports(file: &str, src: &str, files: &BTreeSet<String>) -> BTreeSet<String> {
    imports_at(file, false, src, files)
}

/// As [`imports`], for a file of the node `file`; `child` when it is a
/// child of the node's folder (`ffi/ctx.rs`, not `ffi/mod.rs`): there
/// `super::` is the node itself and `super::super::` the module.
fn imports_at(file: &str, child: bool, src: &str, files: &BTreeSet<String>) -> BTreeSet<String> {
    let mut src = code(src);
    if child {
        src = src
            .replace("super::super::", "crate::module::")
            .replace("super::", &format!("crate::module::{file}::"));
    }
    let mut out = BTreeSet::new();
    let mut note = |name: &str| {
        if files.contains(name) {
            out.insert(name.to_string());
        } else if !name.is_empty() && name != "self" && name != "super" {
            out.insert("mod".to_string());
        }
    };
    for prefix in ["super::", "crate::module::"] {
        let mut rest = src.as_str();
        while let Some(i) = rest.find(prefix) {
            rest = &rest[i + prefix.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for part in group[..end].split(',') {
                    note(ident_at(part.trim()));
                }
            } else {
                note(ident_at(rest));
            }
        }
    }
    if file == "mod" && !child {
        let bytes = src.as_bytes();
        for name in files {
            let pat = format!("{name}::");
            let mut at = 0;
            while let Some(i) = src[at..].find(&pat) {
                let start = at + i;
                let before = start.checked_sub(1).map(|j| bytes[j]);
                if !matches!(before, Some(b) if b.is_ascii_alphanumeric() || b == b'_' || b == b':')
                {
                    out.insert(name.clone());
                }
                at = start + pat.len();
            }
        }
    }
    out.remove(file);
    out
}

/// One source file of `src/module`.
struct Source {
    /// The node it belongs to: its stem (`kernel`), or its folder's name
    /// for every file of a folder (`ffi` for `ffi/mod.rs` and `ffi/ctx.rs`).
    node: String,
    /// Its path under `src/module`, for messages.
    path: String,
    /// A child of a folder, other than its `mod.rs`.
    child: bool,
    text: String,
}

/// Every `.rs` file of `src/module` and of its folders (one level: a
/// deeper folder is reported, as the scanner would misread its paths).
fn module_sources() -> Result<Vec<Source>, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/module");
    let read = |path: &Path| std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                let inner = entry.unwrap().path();
                let file = inner.file_name().unwrap().to_string_lossy().into_owned();
                if inner.is_dir() {
                    return Err(format!("{name}/{file}/ nests a folder in a folder of src/module: teach tests/layers.rs its paths"));
                }
                if file.ends_with(".rs") {
                    out.push(Source {
                        node: name.clone(),
                        path: format!("{name}/{file}"),
                        child: file != "mod.rs",
                        text: read(&inner),
                    });
                }
            }
        } else if let Some(stem) = name.strip_suffix(".rs") {
            out.push(Source {
                node: stem.to_string(),
                path: name.clone(),
                child: false,
                text: read(&path),
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[test]
fn module_files_import_only_lower_layers() {
    let sources = module_sources().unwrap();
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, files)| files.iter().map(move |f| (*f, i)))
        .collect();
    let files: BTreeSet<String> = sources
        .iter()
        .map(|s| s.node.clone())
        .filter(|f| f != "mod")
        .collect();
    let mut wrong = Vec::new();
    for s in &sources {
        let file = &s.node;
        let Some(&mine) = layer_of.get(file.as_str()) else {
            wrong.push(format!(
                "{} has no layer: add {file} to LAYERS (and the README)",
                s.path
            ));
            continue;
        };
        for dep in imports_at(file, s.child, &s.text, &files) {
            match layer_of.get(dep.as_str()) {
                Some(&theirs) if theirs < mine => {}
                _ => wrong.push(format!(
                    "{} ({file}) imports {dep}, which is not below it",
                    s.path
                )),
            }
        }
    }
    for f in layer_of.keys() {
        if !sources.iter().any(|s| s.node == *f) {
            wrong.push(format!("LAYERS names {f}, which does not exist"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The README's layer table ("How it works"), bottom row first: each
/// row's files (its second column's `x.rs` and `folder/` names) as nodes.
fn readme_layers(readme: &str) -> Vec<BTreeSet<String>> {
    let mut rows: Vec<BTreeSet<String>> = readme
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("| Layer | Files | Holds |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|row| {
            let files = row.split('|').nth(2).unwrap_or("");
            files
                .split('`')
                .skip(1)
                .step_by(2)
                .map(|f| {
                    let f = f.strip_suffix(".rs").or(f.strip_suffix('/')).unwrap_or(f);
                    f.to_string()
                })
                .collect()
        })
        .collect();
    rows.reverse();
    rows
}

/// The README's table is LAYERS, row for layer: a file added to a layer
/// (or moved) without its row fails here.
#[test]
fn the_readme_layer_table_is_layers() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let table = readme_layers(&readme);
    let layers: Vec<BTreeSet<String>> = LAYERS
        .iter()
        .map(|files| files.iter().map(|f| f.to_string()).collect())
        .collect();
    assert_eq!(
        table, layers,
        "README.md's `| Layer | Files | Holds |` table (bottom row first) against LAYERS"
    );
}

/// Where `src` calls the module API itself: names a function of the API
/// table (`RedisModule_*`) or of `redis_module::raw` (its functions are
/// the lower-case names; types are CamelCase, constants upper case).
fn raw_calls(src: &str) -> Vec<String> {
    let src = code(src);
    let mut out = Vec::new();
    for (n, line) in src.lines().enumerate() {
        if line.contains("RedisModule_") {
            out.push(format!("line {}: {}", n + 1, line.trim()));
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("raw::") {
            rest = &rest[i + "raw::".len()..];
            if rest.starts_with(|c: char| c.is_ascii_lowercase()) {
                out.push(format!("line {}: {}", n + 1, line.trim()));
                break;
            }
        }
    }
    out
}

/// `ffi` owns every call of the module API: the files above it use its
/// safe wrappers. What `unsafe` they keep is the `extern "C"` signatures
/// Redis calls back, turning the pointers a callback receives into
/// `ffi`'s handles, and the data type's own pointer (its `ModuleValue`).
#[test]
fn only_ffi_calls_the_module_api() {
    let mut wrong = Vec::new();
    for s in module_sources().unwrap() {
        if s.node == "ffi" {
            continue;
        }
        for call in raw_calls(&s.text) {
            wrong.push(format!("{} {call}", s.path));
        }
    }
    assert!(
        wrong.is_empty(),
        "call the module API through ffi (src/module/ffi/):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_raw_call_scanner_sees_api_and_crate_calls() {
    let src = "let t = raw::RedisModuleEvent { id: raw::REDISMODULE_EVENT_LOADING };\n\
               // raw::save_slice(rdb, b) in a comment\n\
               raw::save_slice(rdb, b);\n\
               unsafe { raw::RedisModule_EmitAOF.unwrap()(aof) };\n\
               x(*std::ptr::addr_of!(RedisModule_Alloc));";
    assert_eq!(raw_calls(src).len(), 3, "{:?}", raw_calls(src));
}

#[test]
fn the_scanner_sees_every_form_of_import() {
    let files: BTreeSet<String> = ["ffi", "stats", "kernel"].map(String::from).into();
    let src = "use super::ffi::Ctx;\nuse super::{kernel, VERSION};\n\
               fn f() { crate::module::stats::x(); } // super::nothing\n\
               #[cfg(test)]\nmod tests { use super::*; }";
    let got = imports("windows", src, &files);
    assert_eq!(
        got,
        ["ffi", "kernel", "mod", "stats"].map(String::from).into()
    );
    let got = imports("mod", "fn f() { kernel::x(); std::ffi::c_int; }", &files);
    assert_eq!(got, ["kernel"].map(String::from).into());
}

#[test]
fn a_folder_child_imports_its_siblings_freely_and_the_module_never() {
    let files: BTreeSet<String> = ["ffi", "stats", "kernel"].map(String::from).into();
    let src = "use super::{Ctx, OK};\nuse super::key::held;\n\
               use crate::module::ffi::view;\nuse crate::algo::UnixMs;";
    assert!(imports_at("ffi", true, src, &files).is_empty());
    let src = "use super::super::stats::x;\nuse super::super::VERSION;\n\
               fn f() { crate::module::kernel::y(); }";
    let got = imports_at("ffi", true, src, &files);
    assert_eq!(got, ["kernel", "mod", "stats"].map(String::from).into());
    // The folder's own `mod.rs` is the node as a file would be: its
    // `super::` is the module.
    let got = imports_at("ffi", false, "use super::stats;\nuse ctx::Ctx;", &files);
    assert_eq!(got, ["stats"].map(String::from).into());
}
