//! Imports run one way: the router (src/app.rs) sits above the handlers, which take their context
//! from `crate::context`, so no module below the router refers to it and the router is in no
//! cycle of the graph of top-level modules.
//!
//! The graph is read from the source: every `crate::<module>` path, and every `super::` path that
//! climbs to the crate root, in the code of src/**/*.rs (comments and `#[cfg(test)]` items left
//! out: unit tests, like tests/, sit above the router).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that sit above the router and may call it.
const ABOVE_ROUTER: &[&str] = &["app", "lib", "worker", "testing"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file under src/: `oauth/token.rs` is `[oauth, token]`, `oauth/mod.rs`
/// `[oauth]`, `lib.rs` `[lib]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.len() > 1 && parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    parts
}

/// The code of a file without comment lines and without `#[cfg(test)]` items.
fn code_lines(text: &str) -> Vec<&str> {
    numbered_code_lines(text)
        .into_iter()
        .map(|(_, l)| l)
        .collect()
}

/// [`code_lines`] with their 1-based line numbers.
fn numbered_code_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate().map(|(n, l)| (n + 1, l));
    while let Some((n, line)) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("//") {
            continue;
        }
        if t.starts_with("#[cfg(test)]") {
            // Skip the next item: up to the line where its braces balance, or its `;`.
            let mut depth = 0i32;
            for (_, l) in lines.by_ref() {
                depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
                if depth <= 0 && (l.contains('}') || l.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        out.push((n, line));
    }
    out
}

/// The statements to read for paths: the code lines, with a group that spans lines
/// (`use crate::{\n    app::App,\n};`, as rustfmt writes a long one) joined into its first line.
fn statements(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut open = 0i32;
    for (n, line) in numbered_code_lines(text) {
        if open > 0 {
            let last = out.last_mut().unwrap();
            last.1.push(' ');
            last.1.push_str(line.trim());
        } else {
            out.push((n, line.to_string()));
        }
        if open > 0 || line.contains("::{") {
            open += line.matches('{').count() as i32 - line.matches('}').count() as i32;
            open = open.max(0);
        }
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules `line` refers to, from a file whose module path is `me`.
fn references(line: &str, me: &[String], tops: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut add = |name: &str| {
        if tops.contains(name) {
            found.insert(name.to_string());
        }
    };
    for (i, _) in line.match_indices("crate::") {
        if i > 0 && line[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue; // `my_crate::`, not `crate::`
        }
        let after = &line[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                add(ident_at(item.trim()));
            }
        } else if after.starts_with('*') {
            tops.iter().for_each(|t| add(t)); // a glob of the crate root names every module
        } else {
            add(ident_at(after));
        }
    }
    // `super::super::x` from `[oauth, token]` is `crate::x`.
    let mut rest = line;
    while let Some(i) = rest.find("super::") {
        let start_ok = i == 0
            || !rest[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        let mut s = &rest[i..];
        let mut ups = 0;
        while let Some(r) = s.strip_prefix("super::") {
            ups += 1;
            s = r;
        }
        if start_ok && ups >= me.len() {
            if s.starts_with('*') {
                tops.iter().for_each(|t| add(t));
            } else if let Some(group) = s.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                for item in group.split(',') {
                    add(ident_at(item.trim()));
                }
            } else {
                add(ident_at(s));
            }
        }
        rest = s;
    }
    found
}

/// `module -> modules it refers to`, over the top-level modules of src/.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let tops: BTreeSet<String> = files
        .iter()
        .map(|f| module_path(f.strip_prefix(&src).unwrap())[0].clone())
        .collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let me = module_path(f.strip_prefix(&src).unwrap());
        let text = std::fs::read_to_string(f).unwrap();
        let edges = g.entry(me[0].clone()).or_default();
        for (_, line) in statements(&text) {
            for t in references(&line, &me, &tops) {
                if t != me[0] {
                    edges.insert(t);
                }
            }
        }
    }
    g
}

/// Files below the router that refer to `crate::app`, as `path:line: text`.
fn uses_of_the_router() -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let tops: BTreeSet<String> = ["app".to_string()].into();
    let mut out = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let me = module_path(rel);
        if ABOVE_ROUTER.contains(&me[0].as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in statements(&text) {
            if !references(&line, &me, &tops).is_empty() {
                out.push(format!("src/{}:{}: {}", rel.display(), n, line.trim()));
            }
        }
    }
    out
}

/// The strongly connected components with more than one module (Tarjan).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        let g = t.g;
        for w in g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut c = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                c.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                c.sort();
                t.out.push(c);
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
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn no_module_below_the_router_refers_to_it() {
    let uses = uses_of_the_router();
    assert!(
        uses.is_empty(),
        "{} line(s) below the router refer to crate::app (take App, Outcome, ... from \
         crate::context; only {ABOVE_ROUTER:?} may use the router):\n{}",
        uses.len(),
        uses.join("\n")
    );
}

#[test]
fn the_router_is_in_no_cycle() {
    let g = graph();
    assert!(g.contains_key("app") && g.contains_key("oauth"));
    assert!(
        g["app"].contains("oauth") && g["oauth"].contains("error"),
        "the graph reader lost edges it must see: {g:?}"
    );
    let cycles = cycles(&g);
    for c in &cycles {
        println!("cycle among top-level modules: {}", c.join(", "));
    }
    let with_app: Vec<&Vec<String>> = cycles
        .iter()
        .filter(|c| c.contains(&"app".into()))
        .collect();
    assert!(
        with_app.is_empty(),
        "src/app.rs is in an import cycle with: {:?}",
        with_app
    );
    // Nothing but the adapters and the test doubles sits above the router.
    let callers: Vec<&String> = g
        .iter()
        .filter(|(m, refs)| refs.contains("app") && !ABOVE_ROUTER.contains(&m.as_str()))
        .map(|(m, _)| m)
        .collect();
    assert!(
        callers.is_empty(),
        "modules that import the router: {callers:?}"
    );
}

#[test]
fn the_reader_sees_every_form_of_path() {
    let tops: BTreeSet<String> = ["app", "context", "error"].map(String::from).into();
    let me = |p: &str| p.split('/').map(String::from).collect::<Vec<_>>();
    let r = |line: &str, m: &str| references(line, &me(m), &tops);
    assert!(r("use crate::app::App;", "oauth/token").contains("app"));
    assert!(r("use crate::{app::App, error::Error};", "admin").contains("app"));
    assert!(r("use crate::{app::App, error::Error};", "admin").contains("error"));
    assert!(r("use super::super::app::App;", "oauth/token").contains("app"));
    assert!(r("use super::app::App;", "oauth").contains("app"));
    assert!(r("use super::app::App;", "oauth/token").is_empty());
    assert!(r("let x = my_crate::app::f();", "admin").is_empty());
    // A glob of the crate root names the router too; a group after `super::` as after `crate::`.
    assert!(r("use crate::*;", "admin").contains("app"));
    assert!(r("use super::super::*;", "oauth/token").contains("app"));
    assert!(r("use super::{app::App, error::Error};", "admin").contains("app"));
    // A group over several lines, as rustfmt writes a long one.
    let joined = statements("use crate::{\n    error::Error,\n    app::App,\n};\nfn f() {}");
    assert_eq!(joined.len(), 2, "{joined:?}");
    assert!(r(&joined[0].1, "admin").contains("app"), "{joined:?}");
    assert_eq!(joined[1], (5, "fn f() {}".to_string()));
    assert!(code_lines("/// see crate::app::App\nfn f() {}").len() == 1);
    assert!(
        code_lines("#[cfg(test)]\nmod tests {\n use crate::app::App;\n}\nfn g() {}")
            == vec!["fn g() {}"]
    );
}
