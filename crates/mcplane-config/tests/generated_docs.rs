//! Keeps the generated docs current: `docs/mcplane.schema.json` (from `json_schema()`) and
//! `docs/config-reference.md` (from `reference_markdown()`). With `MCPLANE_BLESS=1` the files are
//! rewritten; otherwise a difference fails with the command that regenerates them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn check_or_bless(rel: &str, expected: &str) {
    let path = repo_file(rel);
    if std::env::var("MCPLANE_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    if actual != expected {
        let line = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| actual.lines().count().min(expected.lines().count()))
            + 1;
        panic!(
            "{rel} is out of date with the config types (first difference at line {line}).\n\
             Regenerate it with:\n    MCPLANE_BLESS=1 cargo test -p mcplane-config --test generated_docs\n\
             and commit the result."
        );
    }
}

#[test]
fn schema_is_current() {
    let text = serde_json::to_string_pretty(&mcplane_config::json_schema()).unwrap() + "\n";
    check_or_bless("docs/mcplane.schema.json", &text);
}

#[test]
fn reference_is_current() {
    check_or_bless(
        "docs/config-reference.md",
        &mcplane_config::reference_markdown(),
    );
}
