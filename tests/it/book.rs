//! The book must not rot: every `{{#include PATH}}` / `{{#include PATH:ANCHOR}}` in `book/src`
//! names a file that exists (relative to the chapter) and, if given, an anchor with both its
//! `ANCHOR: name` and `ANCHOR_END: name` lines; every chapter listed in SUMMARY.md exists.
//! Runs without mdBook installed.

use std::path::{Path, PathBuf};

/// One `{{#include ...}}` directive found in a chapter.
#[derive(Debug, PartialEq)]
struct Include {
    /// Line number (1-based) in the chapter.
    line: usize,
    /// The path as written, relative to the chapter's directory.
    path: String,
    /// What follows the path: an anchor name, a line range (`10:20`), or None.
    selector: Option<String>,
}

/// How an include picks its part of the file.
#[derive(Debug, PartialEq)]
enum Selector<'a> {
    Whole,
    Anchor(&'a str),
    /// Line numbers or ranges (`3`, `3:`, `:9`, `3:9`); allowed, but they rot when the file changes.
    Lines,
}

fn book_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src")
}

/// The `{{#include ...}}` (and `{{#rustdoc_include ...}}`) directives of a chapter, skipping
/// escaped ones (`\{{#include ...}}`).
fn includes(text: &str) -> Vec<Include> {
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("{{#") {
            let escaped = rest[..at].ends_with('\\');
            rest = &rest[at + 3..];
            let Some(args) = ["include", "rustdoc_include"]
                .iter()
                .find_map(|name| rest.strip_prefix(name))
                .filter(|args| args.starts_with(char::is_whitespace))
            else {
                continue;
            };
            let Some(close) = args.find("}}") else { break };
            let arg = args[..close].trim();
            if !escaped && !arg.is_empty() {
                let (path, selector) = match arg.split_once(':') {
                    Some((path, selector)) => (path, Some(selector.trim().to_string())),
                    None => (arg, None),
                };
                found.push(Include {
                    line: index + 1,
                    path: path.trim().to_string(),
                    selector,
                });
            }
            rest = &args[close + 2..];
        }
    }
    found
}

fn selector(include: &Include) -> Selector<'_> {
    match include.selector.as_deref() {
        None | Some("") => Selector::Whole,
        Some(s) if s.chars().all(|c| c.is_ascii_digit() || c == ':') => Selector::Lines,
        Some(anchor) => Selector::Anchor(anchor),
    }
}

/// Whether `text` has the anchor's start and end markers, start first (mdBook matches
/// `ANCHOR: name` / `ANCHOR_END: name` anywhere on a line, after any comment syntax).
fn has_anchor(text: &str, name: &str) -> bool {
    let marker = |line: &str, tag: &str| {
        line.split_once(tag)
            .is_some_and(|(_, rest)| rest.split_whitespace().next() == Some(name))
    };
    let start = text.lines().position(|l| marker(l, "ANCHOR:"));
    let end = text.lines().position(|l| marker(l, "ANCHOR_END:"));
    matches!((start, end), (Some(s), Some(e)) if s < e)
}

/// Chapter paths linked from SUMMARY.md: every `](path.md)` link.
fn summary_chapters(summary: &str) -> Vec<String> {
    let mut chapters = Vec::new();
    for line in summary.lines() {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(close) = after.find(')') else { break };
            let target = after[..close].trim();
            if !target.is_empty() && !target.contains("://") {
                chapters.push(target.split('#').next().unwrap_or(target).to_string());
            }
            rest = &after[close + 1..];
        }
    }
    chapters
}

/// Every problem with the includes of the chapter at `path`, as readable lines.
fn check_chapter(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let dir = path.parent().unwrap();
    let mut problems = Vec::new();
    for include in includes(&text) {
        let at = format!("{}:{}", path.display(), include.line);
        let target = dir.join(&include.path);
        let Ok(source) = std::fs::read_to_string(&target) else {
            problems.push(format!(
                "{at}: included file {} does not exist",
                target.display()
            ));
            continue;
        };
        if let Selector::Anchor(name) = selector(&include)
            && !has_anchor(&source, name)
        {
            problems.push(format!(
                "{at}: {} has no `ANCHOR: {name}` followed by `ANCHOR_END: {name}`",
                target.display()
            ));
        }
    }
    problems
}

fn chapters() -> Vec<PathBuf> {
    saferlhf_testkit::files_with_extension(&book_src(), "md")
}

#[test]
fn includes_resolve() {
    let chapters = chapters();
    assert!(
        chapters.len() > 1,
        "no chapters found in {}",
        book_src().display()
    );
    let mut count = 0;
    let mut problems = Vec::new();
    for chapter in &chapters {
        count += includes(&std::fs::read_to_string(chapter).unwrap()).len();
        problems.extend(check_chapter(chapter));
    }
    assert!(count > 0, "the book includes no code at all");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn summary_chapters_exist() {
    let src = book_src();
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).unwrap();
    let chapters = summary_chapters(&summary);
    assert!(!chapters.is_empty(), "SUMMARY.md lists no chapters");
    let missing: Vec<&String> = chapters.iter().filter(|c| !src.join(c).is_file()).collect();
    assert!(
        missing.is_empty(),
        "SUMMARY.md lists missing chapters: {missing:?}"
    );
    // And every chapter file is reachable from SUMMARY.md (mdBook ignores the others).
    for chapter in chapters_in(&src) {
        assert!(
            chapters.contains(&chapter),
            "book/src/{chapter} is not listed in SUMMARY.md"
        );
    }
}

fn chapters_in(src: &Path) -> Vec<String> {
    chapters()
        .iter()
        .filter_map(|p| p.strip_prefix(src).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|name| name != "SUMMARY.md")
        .collect()
}

/// The checker itself: it finds directives, skips escaped ones, and flags broken anchors and paths.
#[test]
fn checker_catches_rot() {
    let text = "a\n```rust\n{{#include ../x.rs:load}}\n```\n\
                see `\\{{#include y:z}}` and {{#include  w.rs }} {{#title t}}\n\
                {{#rustdoc_include v.rs:3:9}}";
    let found = includes(text);
    assert_eq!(
        found,
        vec![
            Include {
                line: 3,
                path: "../x.rs".into(),
                selector: Some("load".into())
            },
            Include {
                line: 5,
                path: "w.rs".into(),
                selector: None
            },
            Include {
                line: 6,
                path: "v.rs".into(),
                selector: Some("3:9".into())
            },
        ]
    );
    assert_eq!(selector(&found[0]), Selector::Anchor("load"));
    assert_eq!(selector(&found[1]), Selector::Whole);
    assert_eq!(selector(&found[2]), Selector::Lines);

    let source = "// ANCHOR: load\nlet x = 1;\n// ANCHOR_END: load\n// ANCHOR: half\n";
    assert!(has_anchor(source, "load"));
    assert!(!has_anchor(source, "half"), "no end marker");
    assert!(!has_anchor(source, "lo"), "names match whole");
    assert!(
        !has_anchor("// ANCHOR_END: a\n// ANCHOR: a\n", "a"),
        "end before start"
    );

    // A chapter in a scratch book whose include names a missing anchor and a missing file.
    let dir = std::env::temp_dir().join(format!("saferlhf-book-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("code.rs"), source).unwrap();
    let chapter = dir.join("src/chapter.md");
    std::fs::write(
        &chapter,
        "{{#include ../code.rs:load}}\n{{#include ../code.rs:half}}\n{{#include ../gone.rs}}\n",
    )
    .unwrap();
    let problems = check_chapter(&chapter);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("ANCHOR: half"), "{}", problems[0]);
    assert!(problems[1].contains("does not exist"), "{}", problems[1]);

    assert_eq!(
        summary_chapters(
            "# Summary\n\n[Intro](introduction.md)\n- [A](a.md#x)\n- [Web](https://x.org)\n"
        ),
        vec!["introduction.md", "a.md"]
    );
}
