//! The shape of `server/src`, checked: modules import only from lower layers (the
//! order `lib.rs` gives), no folder imports from itself in a circle, no production
//! file outgrows the size the team agreed on, and every records namespace comes from
//! the one list.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules of the crate, lowest layer first. A module may use modules
/// of lower layers only; modules of one layer do not use each other.
const LAYERS: &[&[&str]] = &[
    &["error", "metrics", "shutdown", "config", "health"],
    &["ids", "backplane", "store", "telemetry", "test_backplane"],
    &["webhooks"],
    &["records"],
    &["access"],
    &["conversations"],
    &["fanout"],
    &["presence"],
    &["assistant"],
    &["state"],
    &["connection", "reload"],
    &["http"],
    &["cli"],
];

/// Lines a production file may have before its first `#[cfg(test)]`.
const MAX_PRODUCTION_LINES: usize = 600;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The path of `file` inside `src/`, as module names (`access/policy/tests.rs` →
/// `["access", "policy", "tests"]`; `mod.rs` names its folder).
fn module_path(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src()).expect("under src");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The code of a file without comments (a doc comment may name any module).
fn code_of(file: &Path) -> String {
    let text = std::fs::read_to_string(file).expect("read a source file");
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a::b…` path in `code`, as its first two names.
fn crate_paths(code: &str) -> Vec<(String, Option<String>)> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let mut names = rest.split("::").map(|segment| {
            segment
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        });
        let first = names.next().unwrap_or_default();
        let second = names.next().filter(|s| !s.is_empty());
        if !first.is_empty() {
            found.push((first, second));
        }
    }
    found
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every module of the crate sits in a layer, and imports only from layers below.
#[test]
fn modules_import_only_from_lower_layers() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let path = module_path(file);
        let Some(top) = path.first() else { continue };
        if top == "lib" || top == "main" {
            continue;
        }
        let Some(own) = layer_of(top) else {
            wrong.push(format!(
                "{top} is in no layer: add it to LAYERS and to lib.rs"
            ));
            continue;
        };
        for (used, _) in crate_paths(&code_of(file)) {
            if used == *top {
                continue;
            }
            match layer_of(&used) {
                Some(layer) if layer < own => {}
                _ => wrong.push(format!(
                    "{} uses crate::{used}, which is not in a lower layer",
                    file.strip_prefix(src()).unwrap_or(file).display()
                )),
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Inside each folder, its parts (`access::auth`, `access::policy`, …) do not import
/// each other in a circle. The folder's `mod.rs` is its map and is left out.
#[test]
fn no_folder_imports_itself_in_a_circle() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut parts_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let path = module_path(file);
        if path.len() < 2 {
            continue;
        }
        parts_of
            .entry(path[0].clone())
            .or_default()
            .insert(path[1].clone());
    }
    for file in &files {
        let path = module_path(file);
        if path.len() < 2 {
            continue;
        }
        let (top, part) = (&path[0], &path[1]);
        let from = format!("{top}::{part}");
        let code = code_of(file);
        let mut used: BTreeSet<String> = crate_paths(&code)
            .into_iter()
            .filter(|(t, _)| t == top)
            .filter_map(|(_, second)| second)
            .collect();
        // `super::x` in `top/part.rs` names the sibling `top::x`.
        if path.len() == 2 {
            for sibling in parts_of.get(top).into_iter().flatten() {
                if code.contains(&format!("super::{sibling}"))
                    || code.contains(&format!("super::{{{sibling}"))
                {
                    used.insert(sibling.clone());
                }
            }
        }
        for to in used {
            if &to != part && parts_of.get(top).is_some_and(|p| p.contains(&to)) {
                edges
                    .entry(from.clone())
                    .or_default()
                    .insert(format!("{top}::{to}"));
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut circle = stack[at..].to_vec();
            circle.push(node.to_string());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, edges, stack, done) {
                return Some(circle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(circle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            panic!("an import circle: {}", circle.join(" → "));
        }
    }
}

/// No production file (the part before its first `#[cfg(test)]`) is over 600 lines.
#[test]
fn no_production_file_is_over_600_lines() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut big = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        if name == "tests.rs" || file.components().any(|c| c.as_os_str() == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read a source file");
        let production = text
            .lines()
            .take_while(|line| !line.starts_with("#[cfg(test)]"))
            .count();
        if production > MAX_PRODUCTION_LINES {
            big.push(format!("{} ({production} lines)", file.display()));
        }
    }
    assert!(big.is_empty(), "split these along their seams: {big:?}");
}

/// Every records namespace the gateway writes is one of `records::namespace`: no
/// production code names a namespace with a literal of its own.
#[test]
fn records_namespaces_come_from_the_one_list() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut literals = Vec::new();
    for file in &files {
        if file.components().any(|c| c.as_os_str() == "tests")
            || file.file_name().is_some_and(|n| n == "tests.rs")
        {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read a source file");
        let production: String = text
            .lines()
            .take_while(|line| !line.starts_with("#[cfg(test)]"))
            .collect::<Vec<_>>()
            .join("\n");
        let squeezed: String = production.split_whitespace().collect();
        if squeezed.contains("RecordKey::new(\"") {
            literals.push(file.display().to_string());
        }
    }
    assert!(
        literals.is_empty(),
        "name the namespace in records::namespace instead: {literals:?}"
    );
}
