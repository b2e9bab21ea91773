//! The architecture, checked: in `amring-proto`, `amring` and `loadgen` no
//! source files import each other in a circle, and in the engine every
//! import goes down the layers (amring-proto, base, `conn`, `runtime`, API).
//!
//! Imports are read from the source text: every `crate::a::b` and
//! `super::a` path outside comments, resolved to the file that defines the
//! module. A glob `super::*` (the inline test modules) is the file itself.
//! A parent module's relative paths to its own children (`child::Item` in a
//! `mod.rs`) are not edges: a parent declares its children.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path of a source file relative to `src/`: `conn/state.rs` →
/// `["conn", "state"]`, `conn/mod.rs` → `["conn"]`, `lib.rs` → `[]`.
fn module_of(rel: &str) -> Vec<String> {
    let p = rel.trim_end_matches(".rs");
    let mut parts: Vec<String> = p.split('/').map(str::to_owned).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Files of a crate by module path, and the import edges between them.
struct Graph {
    files: BTreeMap<Vec<String>, String>,
    edges: BTreeMap<String, BTreeSet<String>>,
}

/// The file defining the longest existing prefix of `path`.
fn resolve(files: &BTreeMap<Vec<String>, String>, path: &[String]) -> Option<String> {
    (1..=path.len()).rev().find_map(|n| files.get(&path[..n]).cloned())
}

fn graph(src: &Path, external: &[&str]) -> Graph {
    let mut paths = Vec::new();
    rust_files(src, &mut paths);
    let mut files = BTreeMap::new();
    for p in &paths {
        let rel = p.strip_prefix(src).unwrap().to_string_lossy().replace('\\', "/");
        files.insert(module_of(&rel), rel);
    }
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, rel) in &files {
        let text = std::fs::read_to_string(src.join(rel)).unwrap();
        let mut in_tests = false;
        for line in text.lines() {
            let t = line.trim_start();
            if t.starts_with("mod tests {") {
                in_tests = true;
            }
            if t.starts_with("//") {
                continue;
            }
            for (kw, base) in [
                ("crate::", Vec::new()),
                ("super::", {
                    // In an inline `mod tests`, `super` is the file's own module.
                    let mut m = module.clone();
                    if !in_tests {
                        m.pop();
                    }
                    m
                }),
            ] {
                let mut rest = line;
                while let Some(i) = rest.find(kw) {
                    let before = rest[..i].chars().last();
                    let after = &rest[i + kw.len()..];
                    rest = after;
                    if matches!(before, Some(c) if c.is_alphanumeric() || c == '_' || c == '$') {
                        continue;
                    }
                    let mut path = base.clone();
                    let mut segs = after.split("::");
                    let mut n = 0;
                    for s in segs.by_ref() {
                        let id: String = s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                        if id.is_empty() || id.len() != s.len() && n > 0 && !s.starts_with(&id) {
                            break;
                        }
                        if id.is_empty() {
                            break;
                        }
                        path.push(id.clone());
                        n += 1;
                        if id.len() != s.len() {
                            break;
                        }
                    }
                    if kw == "super::" && n == 0 {
                        continue; // `super::*` / `super::{..}` of inline tests
                    }
                    if path.first().is_some_and(|f| external.contains(&f.as_str())) {
                        continue;
                    }
                    let target = resolve(&files, &path).unwrap_or_else(|| files[&Vec::new()].clone());
                    if &target != rel {
                        edges.entry(rel.clone()).or_default().insert(target);
                    }
                }
            }
        }
    }
    Graph { files, edges }
}

/// Every import circle (strongly connected component of more than one file).
fn circles(g: &Graph) -> Vec<Vec<String>> {
    // Tarjan's algorithm, iterative enough for a few hundred files.
    struct T<'a> {
        g: &'a Graph,
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        on: BTreeSet<String>,
        out: Vec<Vec<String>>,
    }
    fn visit(t: &mut T<'_>, v: &str) {
        let i = t.index.len();
        t.index.insert(v.to_owned(), i);
        t.low.insert(v.to_owned(), i);
        t.stack.push(v.to_owned());
        t.on.insert(v.to_owned());
        let next: Vec<String> = t.g.edges.get(v).into_iter().flatten().cloned().collect();
        for w in next {
            if !t.index.contains_key(&w) {
                visit(t, &w);
                let lw = t.low[&w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(&w) {
                let iw = t.index[&w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(&w);
                let done = w == v;
                comp.push(w);
                if done {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for f in g.files.values() {
        if !t.index.contains_key(f) {
            visit(&mut t, f);
        }
    }
    t.out
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn no_crate_has_an_import_circle() {
    for (krate, external) in [
        ("amring-proto", &[][..]),
        ("engine", &["proto", "codec"][..]),
        ("loadgen", &[][..]),
    ] {
        let g = graph(&workspace().join(krate).join("src"), external);
        assert!(
            g.edges.values().map(BTreeSet::len).sum::<usize>() > 0,
            "{krate}: no imports found"
        );
        let mut c = circles(&g);
        // The MessagePack deserializer is one recursive type family (a value
        // holds sequences and maps, whose elements are values, whose absent
        // fields are Go zero values, which may hold values): its three files
        // under `codec/de/` refer to each other by construction. This is the
        // one circle allowed, and only inside that folder.
        c.retain(|comp| !(krate == "amring-proto" && comp.iter().all(|f| f.starts_with("codec/de/"))));
        assert!(c.is_empty(), "{krate}: files importing each other in a circle: {c:?}");
    }
}

/// The engine's layer of a file (bottom = 0).
fn engine_layer(rel: &str) -> usize {
    match rel {
        "error.rs" | "addr.rs" | "debug.rs" | "panic.rs" | "exec.rs" => 1,
        r if r.starts_with("conn/") => 2,
        r if r.starts_with("runtime/") => 3,
        "server.rs" | "client.rs" | "remote.rs" => 4,
        "lib.rs" => 5,
        other => panic!("engine/src/{other}: assign it a layer in tests/tests/layers.rs"),
    }
}

#[test]
fn engine_imports_go_down_the_layers() {
    let g = graph(&workspace().join("engine/src"), &["proto", "codec"]);
    let mut wrong = Vec::new();
    for (from, tos) in &g.edges {
        for to in tos {
            if engine_layer(to) > engine_layer(from) {
                wrong.push(format!(
                    "{from} (layer {}) imports {to} (layer {})",
                    engine_layer(from),
                    engine_layer(to)
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "imports going up: {wrong:#?}");
    // The check sees real edges: the API uses the runtime, the runtime the conn layer.
    assert!(g.edges["server.rs"].iter().any(|t| t.starts_with("runtime/")));
    assert!(g.edges["runtime/conn.rs"].iter().any(|t| t.starts_with("conn/")));
}

#[test]
fn the_sans_io_crate_has_no_runtime_dependency() {
    let toml = std::fs::read_to_string(workspace().join("amring-proto/Cargo.toml")).unwrap();
    let deps = toml
        .split("[dependencies]")
        .nth(1)
        .and_then(|s| s.split("\n[").next())
        .expect("a [dependencies] table");
    for banned in [
        "glommio", "tokio", "socket2", "libc", "io-uring", "futures", "tracing", "amring ", "amring.",
    ] {
        assert!(!deps.contains(banned), "amring-proto depends on {banned}");
    }
}

#[test]
fn a_circle_is_detected() {
    let dir = std::env::temp_dir().join(format!("amring-layers-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::write(dir.join("lib.rs"), "mod a;\n").unwrap();
    std::fs::write(dir.join("a/mod.rs"), "mod x;\nmod y;\n").unwrap();
    std::fs::write(dir.join("a/x.rs"), "use crate::a::y::Y;\npub struct X;\n").unwrap();
    std::fs::write(dir.join("a/y.rs"), "use super::x::X;\npub struct Y;\n").unwrap();
    let c = circles(&graph(&dir, &[]));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(c, vec![vec!["a/x.rs".to_owned(), "a/y.rs".to_owned()]]);
}
