//! The arrows between the files of `src/` point one way.
//!
//! - The library (every file but `src/cli.rs`, `src/commands/**` and `src/main.rs`) never names
//!   the command line or the commands.
//! - The commands may name the command line; the command line never names a command.
//! - No two files name each other, directly or through others.
//!
//! A file names another when a `use` or a path in its code (`crate::a::b`, `super::x`,
//! `self::x`, a child module's name, `scalewise::` in `main.rs`) resolves to it; a path resolves
//! to the deepest file it reaches (`crate::metrics::plan::QueryPlan` is `src/metrics/plan.rs`,
//! `crate::api::Policy` is `src/api/mod.rs`). A `mod x;` declaration is structure, not use;
//! comments and string literals are skipped; inline modules (`mod tests { use super::*; }`)
//! stay in their file.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// One file naming another, at a line.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    from: String,
    to: String,
    line: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Ident(String),
    PathSep,
    Punct(char),
}

/// The tokens of a source that matter for paths, each with its line; comments, strings,
/// characters and numbers are dropped.
fn tokenize(source: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let count_lines = |from: usize, to: usize, line: &mut usize| {
        *line += chars[from..to].iter().filter(|c| **c == '\n').count();
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let start = i;
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            count_lines(start, i.min(chars.len()), &mut line);
        } else if let Some(end) = raw_string_end(&chars, i) {
            count_lines(i, end, &mut line);
            i = end;
        } else if c == '"' || ((c == 'b' || c == 'c') && next == Some('"')) {
            let start = i;
            i += if c == '"' { 1 } else { 2 };
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            count_lines(start, i.min(chars.len()), &mut line);
        } else if c == '\'' || (c == 'b' && next == Some('\'')) {
            // A character literal ('a', '\n', '\u{1F600}', b'x') or a lifetime ('a).
            let open = if c == 'b' { i + 1 } else { i };
            let body = open + 1;
            if chars.get(body) == Some(&'\\') {
                let mut j = body + 2;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
            } else if chars.get(body + 1) == Some(&'\'') {
                i = body + 2;
            } else {
                // A lifetime: skip the quote, its name is an identifier of no interest.
                i = body;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let word = word.strip_prefix("r#").map(str::to_owned).unwrap_or(word);
            tokens.push((Token::Ident(word), line));
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c == ':' && next == Some(':') {
            tokens.push((Token::PathSep, line));
            i += 2;
        } else {
            tokens.push((Token::Punct(c), line));
            i += 1;
        }
    }
    tokens
}

/// The end of a raw string (`r"…"`, `r#"…"#`, `br#"…"#`) starting at `i`, if one starts there.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return None;
    }
    let mut j = i;
    if chars.get(j) == Some(&'b') || chars.get(j) == Some(&'c') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while chars.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    if chars.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < chars.len() {
        if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(chars.len())
}

/// The module path of a file under `src/` (`metrics/plan.rs` is `["metrics", "plan"]`), and
/// which crate it belongs to (`main.rs` is its own).
fn module_of(file: &str) -> Vec<String> {
    let stem = file.strip_suffix(".rs").unwrap_or(file);
    let mut parts: Vec<String> = stem.split('/').map(str::to_owned).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The tree of files: which module path each file holds, and the files' sources.
struct Tree {
    files: BTreeMap<String, String>,
    modules: BTreeMap<Vec<String>, String>,
}

impl Tree {
    fn new(files: BTreeMap<String, String>) -> Self {
        let modules = files
            .keys()
            .filter(|file| file.as_str() != "main.rs")
            .map(|file| (module_of(file), file.clone()))
            .collect();
        Tree { files, modules }
    }

    /// The deepest file a crate-absolute module path reaches.
    fn resolve(&self, path: &[String]) -> Option<&String> {
        (0..=path.len())
            .rev()
            .find_map(|len| self.modules.get(&path[..len]))
    }

    /// Every edge of every file, in order.
    fn edges(&self) -> Vec<Edge> {
        let mut edges = Vec::new();
        for (file, source) in &self.files {
            edges.extend(self.edges_of(file, source));
        }
        edges.sort();
        edges.dedup();
        edges
    }

    fn edges_of(&self, file: &str, source: &str) -> Vec<Edge> {
        let tokens = tokenize(source);
        let root = if file == "main.rs" {
            Vec::new()
        } else {
            module_of(file)
        };
        // The scopes open at this point: the file, then each inline module inside it.
        let mut scopes = vec![Scope {
            name: None,
            closes_at: 0,
            children: declared_modules(&tokens, 0),
            aliases: BTreeMap::new(),
        }];
        let mut depth: usize = 0;
        let mut edges = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            let mut paths = Vec::new();
            match &tokens[i].0 {
                Token::Punct('{') => depth += 1,
                Token::Punct('}') => {
                    depth = depth.saturating_sub(1);
                    if scopes.len() > 1 && scopes.last().is_some_and(|s| s.closes_at == depth) {
                        scopes.pop();
                    }
                }
                Token::Ident(word) if word == "mod" => {
                    if let (Some((Token::Ident(name), _)), Some((Token::Punct('{'), _))) =
                        (tokens.get(i + 1), tokens.get(i + 2))
                    {
                        scopes.push(Scope {
                            name: Some(name.clone()),
                            closes_at: depth,
                            children: declared_modules(&tokens, i + 3),
                            aliases: BTreeMap::new(),
                        });
                        depth += 1;
                        i += 3;
                        continue;
                    }
                }
                Token::Ident(word) if word == "use" => {
                    let mut end = i + 1;
                    parse_use_tree(&tokens, &mut end, Vec::new(), &mut paths);
                    i = end - 1;
                }
                Token::Ident(_)
                    if (i == 0
                        || !matches!(tokens[i - 1].0, Token::PathSep | Token::Punct('.')))
                        && tokens.get(i + 1).map(|t| &t.0) == Some(&Token::PathSep) =>
                {
                    let mut segments = Vec::new();
                    let mut j = i;
                    while let Some((Token::Ident(word), _)) = tokens.get(j) {
                        segments.push(word.clone());
                        if tokens.get(j + 1).map(|t| &t.0) != Some(&Token::PathSep) {
                            break;
                        }
                        j += 2;
                    }
                    paths.push(Found {
                        segments,
                        line: tokens[i].1,
                        alias: None,
                    });
                    i = j;
                }
                _ => {}
            }
            for found in paths {
                let Some(absolute) = absolute_path(file, &root, &scopes, &found.segments) else {
                    continue;
                };
                if let Some(to) = self.resolve(&absolute)
                    && to != file
                {
                    edges.push(Edge {
                        from: file.to_owned(),
                        to: to.clone(),
                        line: found.line,
                    });
                }
                if let (Some(alias), Some(scope)) = (found.alias, scopes.last_mut()) {
                    scope.aliases.insert(alias, absolute);
                }
            }
            i += 1;
        }
        edges
    }
}

/// The crate-absolute module path a path written in `file`, inside `scopes`, names; `None` for
/// paths outside the crate.
fn absolute_path(
    file: &str,
    root: &[String],
    scopes: &[Scope],
    segments: &[String],
) -> Option<Vec<String>> {
    let is_main = file == "main.rs";
    let mut module: Vec<String> = root.to_vec();
    module.extend(scopes.iter().filter_map(|scope| scope.name.clone()));
    let first = segments.first()?;
    let scope = scopes.last()?;
    let absolute: Vec<String> = match first.as_str() {
        "crate" if !is_main => segments[1..].to_vec(),
        "scalewise" if is_main => segments[1..].to_vec(),
        "self" | "super" if !is_main => {
            let mut rest = segments;
            while let Some(head) = rest.first() {
                match head.as_str() {
                    "self" => {}
                    "super" => {
                        module.pop();
                    }
                    _ => break,
                }
                rest = &rest[1..];
            }
            module.extend(rest.iter().cloned());
            module
        }
        name if !is_main && scope.children.contains(name) => {
            module.extend(segments.iter().cloned());
            module
        }
        name => {
            let mut aliased = scope.aliases.get(name)?.clone();
            aliased.extend(segments[1..].iter().cloned());
            aliased
        }
    };
    Some(
        absolute
            .into_iter()
            .take_while(|segment| segment != "self" && segment != "*")
            .collect(),
    )
}

/// A module open at a point of a file: the file's own (no name) or an inline one.
struct Scope {
    name: Option<String>,
    /// The brace depth at which the module's block closes.
    closes_at: usize,
    /// The modules it declares.
    children: BTreeSet<String>,
    /// The names its `use` items bring in from the crate, with the paths they stand for.
    aliases: BTreeMap<String, Vec<String>>,
}

/// The modules declared (`mod x;` or `mod x { … }`) directly in the block starting at `start`.
fn declared_modules(tokens: &[(Token, usize)], start: usize) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut depth = 0usize;
    let mut i = start;
    while i < tokens.len() {
        match &tokens[i].0 {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            Token::Ident(word) if word == "mod" && depth == 0 => {
                if let Some((Token::Ident(name), _)) = tokens.get(i + 1) {
                    names.insert(name.clone());
                }
            }
            _ => {}
        }
        i += 1;
    }
    names
}

/// A path found in a source: its segments, its line, and for a `use` the name it brings into
/// scope.
struct Found {
    segments: Vec<String>,
    line: usize,
    alias: Option<String>,
}

/// Reads a use tree at `*i` (after `use` or inside a group) and adds each full path to `paths`,
/// with the line of its last segment.
fn parse_use_tree(
    tokens: &[(Token, usize)],
    i: &mut usize,
    mut prefix: Vec<String>,
    paths: &mut Vec<Found>,
) {
    if tokens.get(*i).map(|t| &t.0) == Some(&Token::PathSep) {
        *i += 1;
    }
    loop {
        match tokens.get(*i) {
            Some((Token::Ident(word), at)) => {
                let line = *at;
                prefix.push(word.clone());
                *i += 1;
                if tokens.get(*i).map(|t| &t.0) == Some(&Token::PathSep) {
                    *i += 1;
                    continue;
                }
                let mut alias = match prefix.as_slice() {
                    [.., parent, last] if last == "self" => Some(parent.clone()),
                    [.., last] => Some(last.clone()),
                    [] => None,
                };
                if let Some((Token::Ident(word), _)) = tokens.get(*i)
                    && word == "as"
                {
                    alias = match tokens.get(*i + 1) {
                        Some((Token::Ident(name), _)) if name != "_" => Some(name.clone()),
                        _ => None,
                    };
                    *i += 2;
                }
                paths.push(Found {
                    segments: prefix,
                    line,
                    alias,
                });
                break;
            }
            Some((Token::Punct('*'), at)) => {
                *i += 1;
                paths.push(Found {
                    segments: prefix,
                    line: *at,
                    alias: None,
                });
                break;
            }
            Some((Token::Punct('{'), _)) => {
                *i += 1;
                loop {
                    match tokens.get(*i).map(|t| &t.0) {
                        Some(Token::Punct('}')) => {
                            *i += 1;
                            break;
                        }
                        Some(Token::Punct(',')) => *i += 1,
                        None => break,
                        Some(_) => parse_use_tree(tokens, i, prefix.clone(), paths),
                    }
                }
                break;
            }
            _ => break,
        }
    }
    if tokens.get(*i).map(|t| &t.0) == Some(&Token::Punct(';')) {
        *i += 1;
    }
}

/// Is the file part of the command line or the commands?
fn is_cli(file: &str) -> bool {
    file == "cli.rs"
}

fn is_command(file: &str) -> bool {
    file.starts_with("commands/")
}

fn is_library(file: &str) -> bool {
    !is_cli(file) && !is_command(file) && file != "main.rs"
}

/// Every broken rule, one line each.
fn problems(tree: &Tree) -> Vec<String> {
    let edges = tree.edges();
    let mut problems = Vec::new();
    for edge in &edges {
        if is_library(&edge.from) && (is_cli(&edge.to) || is_command(&edge.to)) {
            problems.push(format!(
                "src/{}:{}: the library names src/{}",
                edge.from, edge.line, edge.to
            ));
        }
        if is_cli(&edge.from) && is_command(&edge.to) {
            problems.push(format!(
                "src/{}:{}: the command line names src/{} (commands -> cli only)",
                edge.from, edge.line, edge.to
            ));
        }
    }
    for cycle in cycles(&edges) {
        let chain: Vec<String> = cycle
            .iter()
            .map(|edge| format!("src/{}:{}", edge.from, edge.line))
            .collect();
        let first = cycle
            .first()
            .map_or(String::new(), |edge| edge.from.clone());
        problems.push(format!("cycle: {} -> src/{first}", chain.join(" -> ")));
    }
    problems
}

/// For each edge that lies on a cycle, the shortest cycle through it (each cycle once). An edge
/// is on a cycle when its target reaches its source; every such edge is on one reported cycle.
fn cycles(edges: &[Edge]) -> Vec<Vec<Edge>> {
    // The first line of each (from, to) pair stands for it.
    let mut first: BTreeMap<(&str, &str), &Edge> = BTreeMap::new();
    for edge in edges {
        first.entry((&edge.from, &edge.to)).or_insert(edge);
    }
    let mut out: BTreeMap<&str, Vec<&Edge>> = BTreeMap::new();
    for edge in first.values() {
        out.entry(edge.from.as_str()).or_default().push(edge);
    }
    let mut found: BTreeSet<Vec<Edge>> = BTreeSet::new();
    for edge in first.values() {
        // Shortest path from edge.to back to edge.from.
        let mut previous: BTreeMap<&str, &Edge> = BTreeMap::new();
        let mut queue = VecDeque::from([edge.to.as_str()]);
        let mut seen = BTreeSet::from([edge.to.as_str()]);
        while let Some(node) = queue.pop_front() {
            if node == edge.from {
                break;
            }
            for next in out.get(node).into_iter().flatten() {
                if seen.insert(next.to.as_str()) {
                    previous.insert(next.to.as_str(), next);
                    queue.push_back(next.to.as_str());
                }
            }
        }
        if !seen.contains(edge.from.as_str()) {
            continue;
        }
        let mut cycle = vec![(*edge).clone()];
        let mut node = edge.from.as_str();
        let mut back = Vec::new();
        while node != edge.to {
            let Some(step) = previous.get(node) else {
                break;
            };
            back.push((*step).clone());
            node = step.from.as_str();
        }
        cycle.extend(back.into_iter().rev());
        // One rotation for each cycle: start at its smallest file.
        let start = (0..cycle.len())
            .min_by_key(|&k| &cycle[k].from)
            .unwrap_or(0);
        cycle.rotate_left(start);
        found.insert(cycle);
    }
    found.into_iter().collect()
}

fn read_tree(dir: &Path, base: &Path, files: &mut BTreeMap<String, String>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("read {}: {error}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_tree(&path, base, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let name = path
                .strip_prefix(base)
                .expect("under src/")
                .to_string_lossy()
                .replace('\\', "/");
            let source = std::fs::read_to_string(&path)
                .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
            files.insert(name, source);
        }
    }
}

#[test]
fn the_arrows_of_src_point_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    read_tree(&src, &src, &mut files);
    assert!(files.contains_key("lib.rs"), "src/lib.rs is read");
    let problems = problems(&Tree::new(files));
    assert!(
        problems.is_empty(),
        "{} problem(s) with the arrows between files:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

fn tree(files: &[(&str, &str)]) -> Tree {
    Tree::new(
        files
            .iter()
            .map(|(name, source)| ((*name).to_owned(), (*source).to_owned()))
            .collect(),
    )
}

fn pairs(tree: &Tree) -> Vec<(String, String, usize)> {
    tree.edges()
        .into_iter()
        .map(|edge| (edge.from, edge.to, edge.line))
        .collect()
}

#[test]
fn a_cycle_between_two_files_is_reported_with_the_line_of_each_edge() {
    let tree = tree(&[
        ("lib.rs", "pub mod decide;\n"),
        ("decide/mod.rs", "mod engine;\nmod explain;\n"),
        ("decide/engine.rs", "use super::explain::why;\n"),
        (
            "decide/explain.rs",
            "\nfn f() { crate::decide::engine::run(); }\n",
        ),
    ]);
    assert_eq!(
        problems(&tree),
        ["cycle: src/decide/engine.rs:1 -> src/decide/explain.rs:2 -> src/decide/engine.rs"]
    );
}

#[test]
fn a_cycle_through_a_parent_that_re_exports_its_child_is_reported() {
    let tree = tree(&[
        ("lib.rs", "pub mod metrics;\n"),
        (
            "metrics/mod.rs",
            "mod answer;\npub use answer::Answer;\npub struct Failure;\n",
        ),
        (
            "metrics/answer.rs",
            "use super::Failure;\npub struct Answer;\n",
        ),
    ]);
    assert_eq!(
        problems(&tree),
        ["cycle: src/metrics/answer.rs:1 -> src/metrics/mod.rs:2 -> src/metrics/answer.rs"]
    );
}

#[test]
fn the_library_naming_the_command_line_is_refused() {
    let tree = tree(&[
        ("lib.rs", "pub mod cli;\npub mod commands;\npub mod api;\n"),
        ("cli.rs", "use crate::commands::decide::OutputFormat;\n"),
        ("commands/mod.rs", "pub mod decide;\n"),
        ("commands/decide.rs", "use crate::cli::Cli;\n"),
        (
            "api/mod.rs",
            "/// Not `crate::cli`.\nfn f() -> crate::cli::Cli { todo!() }\n",
        ),
    ]);
    let problems = problems(&tree);
    assert!(
        problems.contains(&"src/api/mod.rs:2: the library names src/cli.rs".to_owned()),
        "{problems:?}"
    );
    assert!(
        problems.contains(
            &"src/cli.rs:1: the command line names src/commands/decide.rs (commands -> cli only)"
                .to_owned()
        ),
        "{problems:?}"
    );
    assert!(
        !problems
            .iter()
            .any(|p| p.contains("src/commands/decide.rs:1: the library")),
        "commands -> cli is allowed: {problems:?}"
    );
}

#[test]
fn use_super_in_an_inline_test_module_stays_in_its_file() {
    let tree = tree(&[
        ("lib.rs", "pub mod api;\n"),
        ("api/mod.rs", "mod spec;\npub use spec::Spec;\n"),
        (
            "api/spec.rs",
            "pub struct Spec;\n#[cfg(test)]\nmod tests {\n    use super::*;\n    mod deeper {\n        use super::super::Spec;\n    }\n}\nfn after() { super::Other; }\n",
        ),
    ]);
    assert_eq!(
        pairs(&tree),
        [
            ("api/mod.rs".to_owned(), "api/spec.rs".to_owned(), 2),
            ("api/spec.rs".to_owned(), "api/mod.rs".to_owned(), 9),
        ]
    );
}

#[test]
fn paths_resolve_to_the_deepest_file_and_skip_comments_strings_and_declarations() {
    let tree = tree(&[
        ("lib.rs", "pub mod api;\npub mod metrics;\n"),
        ("api/mod.rs", "mod spec;\n"),
        ("api/spec.rs", ""),
        ("metrics/mod.rs", "mod plan;\nmod answer;\n"),
        ("metrics/plan.rs", ""),
        (
            "metrics/answer.rs",
            concat!(
                "// crate::metrics::plan::X\n",
                "/* crate::api::spec /* nested */ crate::api */\n",
                "const S: &str = \"crate::api::spec\";\n",
                "const R: &str = r#\"crate::api \"quoted\" \"#;\n",
                "fn f<'a>(c: char) -> bool { c == '\"' }\n",
                "use crate::{api::{self, spec::Spec as S2}, metrics::plan::QueryPlan};\n",
            ),
        ),
        (
            "main.rs",
            "use scalewise::metrics::plan::QueryPlan;\nfn main() { crate::x(); }\n",
        ),
    ]);
    assert_eq!(
        pairs(&tree),
        [
            ("main.rs".to_owned(), "metrics/plan.rs".to_owned(), 1),
            ("metrics/answer.rs".to_owned(), "api/mod.rs".to_owned(), 6),
            ("metrics/answer.rs".to_owned(), "api/spec.rs".to_owned(), 6),
            (
                "metrics/answer.rs".to_owned(),
                "metrics/plan.rs".to_owned(),
                6
            ),
        ]
    );
}

#[test]
fn a_child_module_name_at_the_start_of_a_path_names_the_child() {
    let tree = tree(&[
        ("lib.rs", "pub mod metrics;\n"),
        ("metrics/mod.rs", "mod plan;\nfn f(p: plan::QueryPlan) {}\n"),
        ("metrics/plan.rs", "fn g() { other::plan::x(); }\n"),
    ]);
    assert_eq!(
        pairs(&tree),
        [("metrics/mod.rs".to_owned(), "metrics/plan.rs".to_owned(), 2)]
    );
}

#[test]
fn a_name_brought_in_by_use_names_the_file_behind_it() {
    let tree = tree(&[
        ("lib.rs", "pub mod metrics;\npub mod commands;\n"),
        ("metrics/mod.rs", "pub mod plan;\n"),
        ("metrics/plan.rs", ""),
        ("commands/mod.rs", "pub mod run;\n"),
        (
            "main.rs",
            "use scalewise::commands::{self};\nfn main() { commands::run::start(); }\n",
        ),
        (
            "commands/run.rs",
            "use crate::metrics as m;\n\nfn f() { m::plan::x(); }\n",
        ),
    ]);
    assert_eq!(
        pairs(&tree),
        [
            ("commands/run.rs".to_owned(), "metrics/mod.rs".to_owned(), 1),
            (
                "commands/run.rs".to_owned(),
                "metrics/plan.rs".to_owned(),
                3
            ),
            ("main.rs".to_owned(), "commands/mod.rs".to_owned(), 1),
            ("main.rs".to_owned(), "commands/run.rs".to_owned(), 2),
        ]
    );
}
