//! The layer rule, checked on the sources: a module never names a layer above it
//! (design: support, model ← store ← api ← controllers ← {agent, coordinator} ← cli;
//! image and runtime sit beside api, below the agent; issue 12).
//!
//! Every `crate::…` path in a file under `src/<layer>/` is read, including grouped ones
//! (`crate::{agent, api}`, `crate::agent::{apply, server}`), and checked against
//! [`MAY_NAME`]. Paths in comments count too: a doc link to a higher layer is a
//! dependency on it all the same. There are no exceptions: what two layers above need
//! moves down to a layer both may name.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// The crate's layers, each a directory under `src/` with the layers it may name; a
/// layer may not name one missing from its list. `cli`, the top, may name them all.
const MAY_NAME: &[(&str, &[&str])] = &[
    ("support", &[]),
    ("model", &["support"]),
    ("store", &["support", "model"]),
    ("api", &["support", "model", "store"]),
    ("image", &["support", "model", "store"]),
    ("runtime", &["support", "model", "store", "image"]),
    ("net", &["support", "model", "store"]),
    ("controllers", &["support", "model", "store", "api"]),
    (
        "agent",
        &[
            "support",
            "model",
            "store",
            "api",
            "image",
            "runtime",
            "net",
            "controllers",
        ],
    ),
    (
        "coordinator",
        &["support", "model", "store", "api", "image", "controllers"],
    ),
];

/// The top-level modules `layer` must not name: every other layer, and `cli`, that is
/// not on its list.
fn forbidden_for(layer: &str, may_name: &[&str]) -> Vec<&'static str> {
    MAY_NAME
        .iter()
        .map(|(other, _)| *other)
        .chain(["cli"])
        .filter(|other| *other != layer && !may_name.contains(other))
        .collect()
}

/// The modules a source text names through `crate::`, as `top` or `top::second`.
fn named_modules(source: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        let after = &rest[at + "crate::".len()..];
        rest = after;
        // `mycrate::` is another path; `$crate::` in a macro is this crate.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        for (top, tail) in heads(after) {
            let seconds = match tail.strip_prefix("::") {
                Some(tail) => heads(tail),
                None => Vec::new(),
            };
            if seconds.is_empty() {
                named.insert(top.to_string());
            }
            for (second, _) in seconds {
                named.insert(format!("{top}::{second}"));
            }
        }
    }
    named
}

/// The first segment of each path alternative at the start of `text`: one for `a::b`,
/// one per item for `{a, b::c}`, each with the text that follows it.
fn heads(text: &str) -> Vec<(&str, &str)> {
    let text = text.trim_start();
    if let Some(inner) = text.strip_prefix('{') {
        let mut depth = 0usize;
        let mut start = 0;
        let mut found = Vec::new();
        for (index, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    found.extend(heads(&inner[start..index]));
                    return found;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    found.extend(heads(&inner[start..index]));
                    start = index + 1;
                }
                _ => {}
            }
        }
        return found;
    }
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '*'))
        .unwrap_or(text.len());
    if end == 0 {
        return Vec::new();
    }
    vec![(&text[..end], &text[end..])]
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// (file relative to the crate, module named) for every use a layer must not make.
fn violations(root: &Path) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (layer, may_name) in MAY_NAME {
        let forbidden = forbidden_for(layer, may_name);
        let mut files = Vec::new();
        rust_files(&root.join("src").join(layer), &mut files);
        assert!(!files.is_empty(), "no sources under src/{layer}");
        for file in files {
            let source = fs::read_to_string(&file).unwrap();
            let relative = file.strip_prefix(root).unwrap().display().to_string();
            for named in named_modules(&source) {
                let top = named.split("::").next().unwrap_or_default();
                if forbidden.contains(&top) {
                    found.insert((relative.clone(), named));
                }
            }
        }
    }
    found
}

#[test]
fn no_layer_names_a_layer_above_it() {
    let found = violations(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(
        found.is_empty(),
        "these files name a layer above theirs (see MAY_NAME in src/layer_check.rs); \
         move what both need down a layer instead: {found:#?}"
    );
}

#[test]
fn named_modules_reads_plain_grouped_and_nested_paths() {
    let source = "use crate::agent::apply::{self, Refusal};\n\
                  use crate::{api, coordinator::tls::{connect, provider}};\n\
                  let x = crate::cli::main();\n\
                  use crate::model;\n\
                  use othercrate::agent::x;\n\
                  $crate::store::open()";
    let named: Vec<String> = named_modules(source).into_iter().collect();
    assert_eq!(
        named,
        [
            "agent::apply",
            "api",
            "cli::main",
            "coordinator::tls",
            "model",
            "store::open"
        ]
    );
}

#[test]
fn a_forbidden_use_in_a_lower_layer_is_found() {
    let temp = tempfile::tempdir().unwrap();
    // Every layer names the ones it may: none of that is reported.
    for (layer, may_name) in MAY_NAME {
        let dir = temp.path().join("src").join(layer);
        fs::create_dir_all(&dir).unwrap();
        let uses: String = may_name
            .iter()
            .map(|m| format!("use crate::{m};\n"))
            .collect();
        fs::write(dir.join("mod.rs"), uses).unwrap();
    }
    let support = temp.path().join("src/support/random.rs");
    fs::write(&support, "use crate::model::hex;\n").unwrap();
    let api = temp.path().join("src/api/tls.rs");
    fs::write(&api, "use crate::{coordinator::tls::connect, model};\n").unwrap();
    let agent = temp.path().join("src/agent/fleet.rs");
    fs::write(&agent, "// see [`crate::coordinator::tokens`]\n").unwrap();
    let found: Vec<(String, String)> = violations(temp.path()).into_iter().collect();
    assert_eq!(
        found,
        [
            ("src/agent/fleet.rs".into(), "coordinator::tokens".into()),
            ("src/api/tls.rs".into(), "coordinator::tls".into()),
            ("src/support/random.rs".into(), "model::hex".into()),
        ]
    );
}
