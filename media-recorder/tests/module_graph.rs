//! The modules of this crate import each other without cycles (issue 9: `peer` and `sfu` used
//! to import each other). Every `crate::`/`super::` path in the sources is resolved to the module
//! it names; the crate root only declares and re-exports, and no module may go through it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`finalize::plan`) of a source file under `src/`.
fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

fn sources(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under src");
            out.insert(
                module_of(rel),
                std::fs::read_to_string(&path).expect("source"),
            );
        }
    }
}

/// The code without comments (doc links are not imports) and without the unit tests at the
/// end of a file (their `super` is the file's own module).
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Every path `crate::a::b…` or `super::…` (also inside `use crate::{…}` groups), as segments
/// from the crate root.
fn paths(module: &str, code: &str) -> Vec<Vec<String>> {
    let here: Vec<String> = if module.is_empty() {
        vec![]
    } else {
        module.split("::").map(String::from).collect()
    };
    let mut out = Vec::new();
    for (start, base) in [("crate::", 0usize), ("super::", 1)] {
        let mut rest = code;
        while let Some(i) = rest.find(start) {
            let prefix_ok = i == 0
                || !rest[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':');
            rest = &rest[i + start.len()..];
            if !prefix_ok {
                continue;
            }
            let mut from: Vec<String> = if base == 0 {
                vec![]
            } else {
                here[..here.len().saturating_sub(1)].to_vec()
            };
            // `super::super::x`.
            let mut tail = rest;
            while let Some(t) = tail.strip_prefix("super::") {
                from.pop();
                tail = t;
            }
            if let Some(group) = tail.strip_prefix('{') {
                group_paths(&from, group, &mut out);
            } else {
                let mut p = from.clone();
                let mut t = tail;
                loop {
                    let id = ident_at(t);
                    if id.is_empty() {
                        break;
                    }
                    p.push(id.to_string());
                    match t[id.len()..].strip_prefix("::") {
                        Some(next) => t = next,
                        None => break,
                    }
                }
                out.push(p);
            }
        }
    }
    out
}

/// The paths of a `{…}` use group (its text after the `{`), nested groups included.
fn group_paths(from: &[String], group: &str, out: &mut Vec<Vec<String>>) {
    let mut depth = 0;
    let mut item_start = 0;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                item_paths(from, &group[item_start..i], out);
                return;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                item_paths(from, &group[item_start..i], out);
                item_start = i + 1;
            }
            _ => {}
        }
    }
}

/// One item of a use group: `a::b::C`, `a::{…}`, `self`.
fn item_paths(from: &[String], item: &str, out: &mut Vec<Vec<String>>) {
    let mut p = from.to_vec();
    let mut t = item.trim();
    loop {
        if let Some(group) = t.strip_prefix('{') {
            group_paths(&p, group, out);
            return;
        }
        let id = ident_at(t);
        if id.is_empty() {
            break;
        }
        if id != "self" {
            p.push(id.to_string());
        }
        match t[id.len()..].trim_start().strip_prefix("::") {
            Some(next) => t = next.trim_start(),
            None => break,
        }
    }
    if !p.is_empty() {
        out.push(p);
    }
}

#[test]
fn modules_import_each_other_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    sources(&src, &src, &mut files);
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in &files {
        if module.is_empty() {
            continue;
        }
        for path in paths(module, &code(text)) {
            // The longest prefix that is a module is what the path imports.
            let target = (1..=path.len())
                .rev()
                .map(|n| path[..n].join("::"))
                .find(|m| modules.contains(m));
            match target {
                Some(t) if t != *module && !module.starts_with(&format!("{t}::")) => {
                    edges.entry(module.clone()).or_default().insert(t);
                }
                Some(_) => {}
                None => panic!(
                    "{module} goes through the crate root: crate::{}",
                    path.join("::")
                ),
            }
        }
    }
    assert!(
        edges.get("forward").is_some_and(|e| e.contains("writer")),
        "the parser sees imports: {edges:?}"
    );
    // Depth-first search for a cycle.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = stack.iter().position(|s| s == m) {
            panic!("import cycle: {} -> {m}", stack[i..].join(" -> "));
        }
        stack.push(m.to_string());
        for next in edges.get(m).into_iter().flatten() {
            visit(next, edges, done, stack);
        }
        stack.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in &modules {
        visit(m, &edges, &mut done, &mut Vec::new());
    }
}

#[test]
fn the_parser_finds_a_cycle() {
    let a = paths(
        "peer",
        &code("use crate::sfu::Hub; // crate::x is a comment"),
    );
    let b = paths("sfu", "use crate::{peer::{self, PeerHandler}, rtp};");
    assert_eq!(a, vec![vec!["sfu".to_string(), "Hub".to_string()]]);
    let b: Vec<String> = b.iter().map(|p| p.join("::")).collect();
    assert_eq!(b, ["peer", "peer::PeerHandler", "rtp"]);
    let s = paths(
        "finalize::mux",
        "use super::plan::Plan; use super::super::journal;",
    );
    assert_eq!(s[0][..2], ["finalize".to_string(), "plan".to_string()]);
    assert_eq!(s[1], vec!["journal".to_string()]);
}
