//! Every `scalewise ...` command line the documentation shows still works: README.md,
//! BENCHMARKS.md, every Markdown, shell and YAML file under examples/ (their comments too), and
//! the Makefile (its `cargo run -- ARGS` lines) and the command lines `make bench-quality` builds
//! (tests/bench/quality.sh).
//!
//! - A line that can run offline (`check`, `decide`, `crd`, `simulate --trace`, `simulate
//!   --generate`, `--help`, `--version`) runs, with its output files (`--out`, `--out-csv`,
//!   `--plot`, `> FILE`) moved into a temporary directory; a later line of the same file reading
//!   such a file reads the moved one.
//! - A line that needs a cluster or Prometheus (`run`, `query`, `simulate --from --to`) is listed
//!   as skipped, with the reason, and must parse (clap's own parser, `Cli::try_parse_from`).
//! - A synopsis (`--policy FILE [--compare hpa]`) may only name flags the command has; an inline
//!   mention (`` `scalewise query` ``, `` `scalewise check -f` ``) only commands and flags that
//!   exist.
//!
//! Documented output is compared: a shell block followed by an output block (README) is the last
//! command's standard output byte for byte; in BENCHMARKS.md the ```text block and the table
//! after it are that output as `make bench-quality` splits it (the lines not starting with `|`, blank
//! ones dropped; then the `|` lines). A `# ...` line right after a command is its first line of
//! output. The `make bench-quality` command lines must be those BENCHMARKS.md shows, in order.

mod cmd;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};
use cmd::{TempDir, scalewise, stderr, stdout};
use scalewise::cli::Cli;

/// One command line as documented.
#[derive(Clone, Debug)]
struct Documented {
    /// `FILE:LINE`, for messages.
    origin: String,
    /// The file it comes from (output files are moved per file).
    file: String,
    /// The words after `scalewise`.
    args: Vec<String>,
    /// What the shell does with its standard output: `| jq .FIELD > FILE` or `> FILE`.
    redirect: Option<Redirect>,
    /// Inline code in prose or a comment (a mention may be incomplete: `scalewise check -f`).
    inline: bool,
    /// What the documentation says it prints.
    expected: Option<Expected>,
}

#[derive(Clone, Debug, PartialEq)]
enum Redirect {
    /// `| jq .FIELD > FILE`.
    JqField { field: String, file: String },
    /// `> FILE`.
    File(String),
}

#[derive(Clone, Debug, PartialEq)]
enum Expected {
    /// Standard output, byte for byte.
    Exact(String),
    /// `make bench`'s split: the text lines (no `|` lines, no blank ones), then the table rows.
    TextAndTable {
        text: Vec<String>,
        table: Vec<String>,
    },
    /// The first line of standard output (a `# ...` line after the command).
    FirstLine(String),
}

/// How a documented line is checked.
#[derive(Debug, PartialEq)]
enum Check {
    Run,
    /// Needs a cluster or Prometheus: parsed only.
    Parse(&'static str),
    /// Placeholders: its flags must exist.
    Synopsis,
    /// A command (and flag) named in prose: they must exist.
    Mention,
}

// --- Reading the documentation ---------------------------------------------------------------

/// Shell words: whitespace-separated, with '...' and "..." quoting.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(word);
    }
    out
}

/// A command line's words after `scalewise`, and its redirection.
fn command(origin: &str, file: &str, text: &str, inline: bool) -> Documented {
    let mut all = words(text);
    assert_eq!(
        all.first().map(String::as_str),
        Some("scalewise"),
        "{origin}: {text}"
    );
    all.remove(0);
    let (args, redirect) = match all.iter().position(|w| w == "|" || w == ">") {
        None => (all, None),
        Some(at) => {
            let rest: Vec<&str> = all[at..].iter().map(String::as_str).collect();
            let redirect = match rest.as_slice() {
                ["|", "jq", field, ">", target] if field.starts_with('.') => Redirect::JqField {
                    field: field[1..].to_owned(),
                    file: (*target).to_owned(),
                },
                [">", target] => Redirect::File((*target).to_owned()),
                other => panic!("{origin}: a shell construct this test cannot run: {other:?}"),
            };
            (all[..at].to_vec(), Some(redirect))
        }
    };
    Documented {
        origin: origin.to_owned(),
        file: file.to_owned(),
        args,
        redirect,
        inline,
        expected: None,
    }
}

/// The inline code spans of a line that start with `scalewise `.
fn inline_commands(origin: &str, file: &str, line: &str) -> Vec<Documented> {
    line.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, span)| span.trim())
        .map(|span| span.strip_prefix("$ ").unwrap_or(span))
        .filter(|span| span.starts_with("scalewise "))
        .map(|span| command(origin, file, span, true))
        .collect()
}

/// A command starting on `lines[i]` (after an optional `$ ` prompt), joined over `\` line ends;
/// returns it and the index of its last line.
fn joined(lines: &[&str], i: usize) -> Option<(String, usize)> {
    let first = lines[i].trim_start();
    let first = first.strip_prefix("$ ").unwrap_or(first);
    if !first.starts_with("scalewise ") && first != "scalewise" {
        return None;
    }
    let mut text = String::new();
    let mut j = i;
    let mut part = first;
    loop {
        match part.trim_end().strip_suffix('\\') {
            Some(head) => {
                text.push_str(head);
                text.push(' ');
                j += 1;
                part = lines.get(j)?.trim();
            }
            None => {
                text.push_str(part);
                return Some((text, j));
            }
        }
    }
}

const SHELL_BLOCKS: [&str; 5] = ["", "sh", "bash", "shell", "console"];

/// The command lines of a Markdown file: in shell (and untyped) blocks, and inline in the prose.
/// A shell block's last command takes the output documented right after the block.
fn markdown(file: &str, text: &str) -> Vec<Documented> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let Some(lang) = line.trim_start().strip_prefix("```") else {
            found.extend(inline_commands(&format!("{file}:{}", i + 1), file, line));
            i += 1;
            continue;
        };
        let lang = lang.trim();
        let close = (i + 1..lines.len())
            .find(|&k| lines[k].trim_start().starts_with("```"))
            .unwrap_or_else(|| panic!("{file}:{}: an unclosed code block", i + 1));
        let body = &lines[i + 1..close];
        if !SHELL_BLOCKS.contains(&lang) {
            for (k, l) in body.iter().enumerate() {
                found.extend(inline_commands(&format!("{file}:{}", i + 2 + k), file, l));
            }
            i = close + 1;
            continue;
        }
        let start = found.len();
        let mut k = 0;
        while k < body.len() {
            let origin = format!("{file}:{}", i + 2 + k);
            match joined(body, k) {
                Some((text, last)) => {
                    let mut c = command(&origin, file, &text, false);
                    if let Some(comment) = body.get(last + 1).and_then(|l| l.strip_prefix("# ")) {
                        c.expected = Some(Expected::FirstLine(comment.to_owned()));
                    }
                    found.push(c);
                    k = last + 1;
                }
                None => {
                    found.extend(inline_commands(&origin, file, body[k]));
                    k += 1;
                }
            }
        }
        i = close + 1;
        // A shell block's output: the next block, when it is untyped or text.
        if lang == "sh" && found.len() > start {
            let mut n = i;
            while lines.get(n).is_some_and(|l| l.trim().is_empty()) {
                n += 1;
            }
            let output_lang = lines.get(n).and_then(|l| l.trim().strip_prefix("```"));
            if let Some(output_lang @ ("" | "text")) = output_lang.map(str::trim) {
                let end = (n + 1..lines.len())
                    .find(|&k| lines[k].trim_start().starts_with("```"))
                    .unwrap_or_else(|| panic!("{file}:{}: an unclosed code block", n + 1));
                let block: Vec<String> = lines[n + 1..end].iter().map(|l| l.to_string()).collect();
                let mut t = end + 1;
                while lines.get(t).is_some_and(|l| l.trim().is_empty()) {
                    t += 1;
                }
                let table: Vec<String> = lines[t.min(lines.len())..]
                    .iter()
                    .take_while(|l| l.starts_with('|'))
                    .map(|l| l.to_string())
                    .collect();
                let expected = if output_lang == "text" && !table.is_empty() {
                    Expected::TextAndTable {
                        text: block.into_iter().filter(|l| !l.is_empty()).collect(),
                        table,
                    }
                } else {
                    Expected::Exact(block.iter().map(|l| format!("{l}\n")).collect())
                };
                if let Some(last) = found.last_mut() {
                    last.expected = Some(expected);
                }
            }
        }
    }
    found
}

/// Shell and YAML files: command lines in their comments, whole or inline.
fn comments(file: &str, text: &str) -> Vec<Documented> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let origin = format!("{file}:{}", i + 1);
        // A command is indented in its comment (`#   scalewise check -f FILE`); prose is not.
        match line.trim_start().strip_prefix('#') {
            Some(comment)
                if comment.starts_with("  ") && comment.trim_start().starts_with("scalewise ") =>
            {
                found.push(command(&origin, file, comment.trim(), false));
            }
            _ => found.extend(inline_commands(&origin, file, line)),
        }
    }
    found
}

/// The variables of `tests/bench/quality.sh` (the script behind `make bench-quality`): `name=value`
/// (also `local name=value`) and arrays `name=(word ...)`, over lines, as shell words.
fn script_variables(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut vars = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = line.trim();
        let line = line.strip_prefix("local ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            continue;
        }
        let value = match value.strip_prefix('(') {
            Some(first) => {
                let mut all = first.to_owned();
                while !all.trim_end().ends_with(')') {
                    let Some(next) = lines.next() else { break };
                    all = format!("{all} {}", next.trim());
                }
                words(all.trim_end().trim_end_matches(')'))
            }
            None => words(value),
        };
        vars.insert(name.to_owned(), value);
    }
    vars
}

/// Expands `$name` (a variable of the script or the Makefile, longest names first, again until
/// nothing changes: a variable may name another) and `$1` (`arg`).
fn expand(template: &str, vars: &BTreeMap<String, Vec<String>>, arg: &str) -> String {
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut text = template.replace("$1", arg);
    for _ in 0..8 {
        let before = text.clone();
        for name in &names {
            text = text.replace(&format!("${name}"), &vars[*name].join(" "));
        }
        if text == before {
            break;
        }
    }
    assert!(
        !text.contains('$'),
        "tests/bench/quality.sh: cannot expand {template:?}: {text:?}"
    );
    text
}

/// The Makefile's scalewise command lines (`$(CARGO) run ... -- ARGS`), and the ones
/// `make bench-quality` (tests/bench/quality.sh) runs, from its runs and held-out shapes, in its
/// order.
fn makefile(make: &str, script: &str) -> (Vec<Documented>, Vec<String>) {
    let file = "Makefile";
    let mut found = Vec::new();
    for (i, line) in make.lines().enumerate() {
        if let Some((_, args)) = line.split_once(" run --locked --quiet -- ") {
            let args = args.split(['>', '|', ';']).next().unwrap_or("").trim();
            found.push(command(
                &format!("{file}:{}", i + 1),
                file,
                &format!("scalewise {args}"),
                false,
            ));
        }
    }
    // The script's variables, and the Makefile's (`NAME := value`) that `make bench-quality`
    // passes to it, such as the test set's seed.
    let mut vars = script_variables(script);
    for line in make.lines() {
        if let Some((name, value)) = line.split_once(" := ")
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        {
            vars.insert(name.to_owned(), words(value));
        }
    }
    let var = |name: &str| {
        vars.get(name)
            .unwrap_or_else(|| panic!("tests/bench/quality.sh: no {name}=..."))
            .clone()
    };
    let one = |name: &str| var(name).join(" ");
    let (args, trace, generate) = (one("args"), one("trace"), one("generate"));
    let mut bench = Vec::new();
    for run in var("runs") {
        bench.push(expand(&args, &vars, &run));
    }
    for shape in var("held_out") {
        let mut with_shape = vars.clone();
        with_shape.insert("shape".to_owned(), vec![shape.clone()]);
        let trace = expand(&trace, &with_shape, "");
        with_shape.insert("trace".to_owned(), vec![trace.clone()]);
        bench.push(expand(&generate, &with_shape, ""));
        bench.push(expand(&args, &vars, &trace));
    }
    // Last, the forecast's run (its own section of BENCHMARKS.md).
    bench.push(expand(&one("forecast_args"), &vars, ""));
    let script_file = "tests/bench/quality.sh";
    for (n, line) in bench.iter().enumerate() {
        found.push(command(
            &format!("{script_file}: make bench-quality, command {}", n + 1),
            script_file,
            &format!("scalewise {line}"),
            false,
        ));
    }
    (found, bench)
}

/// Every documented command line, file by file.
fn documented() -> (Vec<Documented>, Vec<String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |path: &Path| {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let mut found = Vec::new();
    for name in ["README.md", "BENCHMARKS.md"] {
        found.extend(markdown(name, &read(&root.join(name))));
    }
    let mut files = Vec::new();
    let mut dirs = vec![root.join("examples")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    for path in files {
        let name = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        match path.extension().and_then(|e| e.to_str()) {
            Some("md") => found.extend(markdown(&name, &read(&path))),
            Some("sh" | "yaml" | "yml") => found.extend(comments(&name, &read(&path))),
            _ => {}
        }
    }
    let (make, bench) = makefile(
        &read(&root.join("Makefile")),
        &read(&root.join("tests/bench/quality.sh")),
    );
    found.extend(make);
    (found, bench)
}

// --- Judging a line --------------------------------------------------------------------------

/// The subcommand a line names, when it names one.
fn subcommand(args: &[String]) -> Option<clap::Command> {
    let name = args.first()?;
    Cli::command()
        .get_subcommands()
        .find(|c| c.get_name() == name)
        .cloned()
}

/// Whether a word stands for a value (`FILE`, `N`, `text|json`, `...`), not a value itself.
fn placeholder(word: &str) -> bool {
    let word = word.trim_matches(|c| c == '[' || c == ']');
    let caps = word.chars().any(|c| c.is_ascii_uppercase())
        && word
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    caps || word.contains('|') || word.contains("...")
}

/// The words of a line with its optional parts `[...]` taken in (`all`) or left out.
fn optional_parts(args: &[String], all: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    for w in args {
        let opens = w.starts_with('[');
        if opens {
            depth += 1;
        }
        let closes = w.ends_with(']');
        if depth == 0 || all {
            let bare = w.trim_start_matches('[').trim_end_matches(']');
            if !bare.is_empty() {
                out.push(bare.to_owned());
            }
        }
        if closes && depth > 0 {
            depth -= 1;
        }
    }
    out
}

/// The argument `flag` (`--name`, `--name=value` or `-x`) of `command`.
fn find_flag<'a>(command: &'a clap::Command, flag: &str) -> Option<&'a clap::Arg> {
    let flag = flag.split('=').next().unwrap_or(flag);
    command
        .get_arguments()
        .find(|a| match flag.strip_prefix("--") {
            Some(long) => a.get_long() == Some(long),
            None => flag
                .strip_prefix('-')
                .and_then(|s| s.chars().next())
                .is_some_and(|short| a.get_short() == Some(short)),
        })
}

/// Whether `flag` is a flag of `command` (`--help` and `--version` are everyone's).
fn has_flag(command: &clap::Command, flag: &str) -> bool {
    matches!(flag, "--help" | "-h" | "--version" | "-V") || find_flag(command, flag).is_some()
}

fn check_of(line: &Documented) -> Check {
    let args = &line.args;
    // Placeholders, or an optional part that is not a flag (`[model flags]`).
    if args
        .iter()
        .any(|w| placeholder(w) || (w.starts_with('[') && !w[1..].starts_with('-')))
    {
        return Check::Synopsis;
    }
    let sub = args.first().map(String::as_str);
    let asks_help = args
        .iter()
        .any(|w| matches!(w.as_str(), "--help" | "-h" | "--version" | "-V"))
        || sub == Some("help");
    if line.inline && !asks_help {
        // `scalewise run`, `scalewise check -f`: a name, not a command line to run.
        let mentions_only = match subcommand(args) {
            Some(c) => match args.len() {
                1 => true,
                2 => find_flag(&c, &args[1]).is_some_and(|a| a.get_action().takes_values()),
                _ => false,
            },
            None => false,
        };
        if mentions_only {
            return Check::Mention;
        }
    }
    if asks_help {
        return Check::Run;
    }
    match sub {
        Some("run") => Check::Parse("needs a Kubernetes cluster"),
        Some("query") => Check::Parse("needs Prometheus"),
        Some("simulate") if args.iter().any(|w| w == "--from" || w == "--to") => {
            Check::Parse("a backtest needs Prometheus")
        }
        _ => Check::Run,
    }
}

/// A documented path moved into the temporary directory.
fn moved(dir: &TempDir, documented: &str) -> String {
    dir.path(&documented.replace(['/', '\\'], "_"))
}

/// Runs a line; returns its standard output with the moved paths put back as documented.
fn run(line: &Documented, dir: &TempDir, moves: &mut BTreeMap<String, String>) -> String {
    let mut args = Vec::with_capacity(line.args.len());
    let mut outputs = Vec::new();
    let mut iter = line.args.iter();
    while let Some(w) = iter.next() {
        args.push(moves.get(w).cloned().unwrap_or_else(|| w.clone()));
        if matches!(w.as_str(), "--out" | "--out-csv" | "--plot")
            && let Some(path) = iter.next()
        {
            let to = moved(dir, path);
            moves.insert(path.clone(), to.clone());
            outputs.push((path.clone(), to.clone()));
            args.push(to);
        }
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = scalewise(&refs);
    assert!(
        out.status.success(),
        "{}: `scalewise {}` failed ({}):\n{}",
        line.origin,
        line.args.join(" "),
        out.status,
        stderr(&out)
    );
    let mut text = stdout(&out);
    match &line.redirect {
        Some(Redirect::JqField { field, file }) => {
            let value: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}):\n{text}", line.origin));
            let picked = value
                .get(field)
                .unwrap_or_else(|| panic!("{}: no .{field} in\n{text}", line.origin));
            let to = moved(dir, file);
            let json = serde_json::to_string_pretty(picked).unwrap_or_default();
            std::fs::write(&to, format!("{json}\n")).unwrap_or_else(|e| panic!("{to}: {e}"));
            moves.insert(file.clone(), to);
        }
        Some(Redirect::File(file)) => {
            let to = moved(dir, file);
            std::fs::write(&to, &text).unwrap_or_else(|e| panic!("{to}: {e}"));
            moves.insert(file.clone(), to);
        }
        None => {}
    }
    // A file the documentation says a command reproduces (not one under target/) is compared.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (documented, to) in &outputs {
        let committed: PathBuf = root.join(documented);
        if !documented.starts_with("target/") && committed.is_file() {
            assert!(
                std::fs::read(&committed).ok() == std::fs::read(to).ok(),
                "{}: `scalewise {}` no longer writes {documented} as committed",
                line.origin,
                line.args.join(" ")
            );
        }
    }
    for (documented, to) in moves.iter() {
        text = text.replace(to.as_str(), documented);
    }
    text
}

fn compare(line: &Documented, printed: &str) {
    let command = format!("{}: `scalewise {}`", line.origin, line.args.join(" "));
    match &line.expected {
        None => {}
        Some(Expected::Exact(text)) => assert_eq!(
            printed,
            text.as_str(),
            "{command} prints other bytes than documented"
        ),
        Some(Expected::FirstLine(text)) => assert_eq!(
            printed.lines().next().unwrap_or_default(),
            text.as_str(),
            "{command}: its first line is not the documented one"
        ),
        Some(Expected::TextAndTable { text, table }) => {
            let printed_text: Vec<&str> = printed
                .lines()
                .filter(|l| !l.starts_with('|') && !l.is_empty())
                .collect();
            let printed_table: Vec<&str> = printed.lines().filter(|l| l.starts_with('|')).collect();
            assert_eq!(
                printed_text, *text,
                "{command}: its text differs from the documented block"
            );
            assert_eq!(
                printed_table, *table,
                "{command}: its table differs from the documented one"
            );
        }
    }
}

// --- The tests -------------------------------------------------------------------------------

#[test]
fn every_documented_command_line_works_and_prints_what_is_documented() {
    let (lines, _) = documented();
    let dir = TempDir::new("documented");
    let mut moves_by_file: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let (mut ran, mut compared) = (0, 0);
    let mut skipped = Vec::new();
    let mut done = Vec::new();
    for line in &lines {
        let shown = format!("scalewise {}", line.args.join(" "));
        match check_of(line) {
            Check::Run => {
                let moves = moves_by_file.entry(line.file.clone()).or_default();
                let printed = run(line, &dir, moves);
                compare(line, &printed);
                ran += 1;
                compared += usize::from(line.expected.is_some());
                done.push(format!("{}: `{shown}`", line.origin));
            }
            Check::Parse(reason) => {
                for form in [false, true] {
                    let args = optional_parts(&line.args, form);
                    let parsed = Cli::try_parse_from(
                        std::iter::once("scalewise").chain(args.iter().map(String::as_str)),
                    );
                    if let Err(e) = parsed {
                        panic!("{}: `{shown}` does not parse:\n{e}", line.origin);
                    }
                }
                skipped.push(format!("{}: `{shown}`: skipped, {reason}", line.origin));
            }
            Check::Synopsis => {
                let command = subcommand(&line.args).unwrap_or_else(Cli::command);
                for w in optional_parts(&line.args, true) {
                    if w.starts_with('-') {
                        assert!(
                            has_flag(&command, &w),
                            "{}: `{shown}` names {w}, which `scalewise {}` does not have",
                            line.origin,
                            command.get_name()
                        );
                    }
                }
                skipped.push(format!(
                    "{}: `{shown}`: a synopsis, its flags exist",
                    line.origin
                ));
            }
            Check::Mention => {
                let command = subcommand(&line.args).unwrap_or_else(|| {
                    panic!("{}: `{shown}` names no command of scalewise", line.origin)
                });
                if let Some(flag) = line.args.get(1) {
                    assert!(
                        has_flag(&command, flag),
                        "{}: `{shown}`: no such flag",
                        line.origin
                    );
                }
            }
        }
    }
    println!(
        "ran {ran} documented command lines ({compared} with documented output):\n{}\nnot run:\n{}",
        done.join("\n"),
        skipped.join("\n")
    );
    // The parts of the documentation this test is for: if they vanish, the extraction broke.
    assert!(ran >= 20, "only {ran} documented command lines ran");
    assert!(compared >= 9, "only {compared} documented outputs compared");
}

#[test]
fn make_bench_runs_the_command_lines_benchmarks_md_shows() {
    let (lines, bench) = documented();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("BENCHMARKS.md")).unwrap_or_default();
    // The sections make bench-quality writes, in the order it runs them.
    let mut shown: Vec<String> = Vec::new();
    for name in ["decision-quality", "forecast"] {
        let begin = text
            .find(&format!("<!-- {name}:begin"))
            .unwrap_or_else(|| panic!("BENCHMARKS.md: no {name}:begin marker"));
        let end = text
            .find(&format!("<!-- {name}:end"))
            .unwrap_or_else(|| panic!("BENCHMARKS.md: no {name}:end marker"));
        shown.extend(
            markdown("BENCHMARKS.md", &text[begin..end])
                .into_iter()
                .filter(|c| !c.inline)
                .map(|c| c.args.join(" ")),
        );
    }
    let built: Vec<String> = bench.iter().map(|line| words(line).join(" ")).collect();
    assert_eq!(
        built, shown,
        "make bench-quality runs other command lines than BENCHMARKS.md shows: run make bench-quality"
    );
    // Every simulation of the section shows its output, which the other test compares.
    let section: Vec<&Documented> = lines
        .iter()
        .filter(|c| c.file == "BENCHMARKS.md" && c.args.iter().any(|w| w == "--trace"))
        .collect();
    assert!(!section.is_empty(), "BENCHMARKS.md: no simulation");
    for c in section {
        assert!(
            matches!(c.expected, Some(Expected::TextAndTable { .. })),
            "{}: a run without its documented output",
            c.origin
        );
    }
}

#[test]
fn the_extraction_reads_blocks_continuations_pipes_and_outputs() {
    let doc = "Run `scalewise crd` or `scalewise check -f FILE`.\n\n```sh\nscalewise decide --policy p.yaml \\\n  --replicas 4 -o json | jq .state > state.json\nscalewise decide --policy p.yaml --state state.json\n# Hold at 4\n```\n\n```text\nline one\n\nline two\n```\n\n| a |\n| b |\n";
    let found = markdown("doc.md", doc);
    let shown: Vec<(String, bool)> = found.iter().map(|c| (c.args.join(" "), c.inline)).collect();
    assert_eq!(
        shown,
        [
            ("crd".to_owned(), true),
            ("check -f FILE".to_owned(), true),
            (
                "decide --policy p.yaml --replicas 4 -o json".to_owned(),
                false
            ),
            (
                "decide --policy p.yaml --state state.json".to_owned(),
                false
            ),
        ]
    );
    assert_eq!(
        found[2].redirect,
        Some(Redirect::JqField {
            field: "state".into(),
            file: "state.json".into()
        })
    );
    assert_eq!(
        found[3].expected,
        Some(Expected::TextAndTable {
            text: vec!["line one".into(), "line two".into()],
            table: vec!["| a |".into(), "| b |".into()],
        })
    );
    assert_eq!(check_of(&found[0]), Check::Mention);
    assert_eq!(check_of(&found[1]), Check::Synopsis);
    let mention = &inline_commands("x", "x", "`scalewise check -f` and `scalewise query`");
    assert_eq!(check_of(&mention[0]), Check::Mention);
    assert_eq!(check_of(&mention[1]), Check::Mention);
    let backtest = command(
        "x",
        "x",
        "scalewise simulate --policy p --from now-1h --to now [--step 15s]",
        false,
    );
    assert_eq!(
        check_of(&backtest),
        Check::Parse("a backtest needs Prometheus")
    );
    assert_eq!(
        optional_parts(&backtest.args, false).len() + 2,
        optional_parts(&backtest.args, true).len()
    );
}
