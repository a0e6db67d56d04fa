//! The DESIGN.md §4 example (checked in as `examples/design-example.yaml`) is a contract: it must
//! parse, with the environment variables it references supplied.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcplane_config::{PolicyThen, PrefixMode, parse};
use std::path::PathBuf;

const EXAMPLE: &str = include_str!("../../../examples/design-example.yaml");

fn env(name: &str) -> Option<String> {
    match name {
        "GITHUB_TOKEN" => Some("ghp_test".into()),
        "OPENAI_API_KEY" => Some("sk-test-openai".into()),
        "MCPLANE_AUDIT_KEY" => Some("dGVzdC1zaWduaW5nLWtleQ==".into()),
        _ => None,
    }
}

#[test]
fn design_example_parses() {
    let loaded = parse(EXAMPLE, &env).unwrap_or_else(|e| panic!("{e}"));
    let c = &loaded.config;
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:4000");
    assert_eq!(c.mcp.naming.prefix, PrefixMode::WhenNeeded);
    assert_eq!(c.mcp.naming.max_len, 64);
    let names: Vec<_> = c.mcp.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["files", "github"]);

    let models = &c.models;
    assert_eq!(models[0].id, "gpt-4o");
    let key = models[0].endpoints[0].api_key.as_ref().unwrap();
    assert_eq!(key.expose(), "sk-test-openai");
    assert_eq!(models[0].endpoints[0].upstream_model, "gpt-4o");
    // `claude-sonnet` is not in the example's registry: the alias keeps the models that are.
    assert_eq!(c.routing.aliases[0].name, "smart");
    assert_eq!(c.routing.aliases[0].candidates, ["gpt-4o"]);
    assert_eq!(c.routing.aliases[0].fallbacks, 2);
    assert_eq!(c.routing.weights.performance, 0.4);
    assert!(
        !format!("{c:?}").contains("sk-test-openai"),
        "a secret leaked into Debug"
    );
    assert!(!format!("{c:?}").contains("dGVzdC1zaWduaW5nLWtleQ"));
    let policies = &c.policies;
    assert!(matches!(policies[0].then, PolicyThen::Actions(_)));
    assert!(matches!(policies[1].then, PolicyThen::Action(_)));
    assert_eq!(c.budgets[0].scope, "team:payments");
    let support = &c.mcp.virtual_servers[0];
    assert_eq!(support.name, "support");
    assert!(support.shows("github", "list_issues") && !support.shows("github", "create_issue"));
    assert!(support.shows("files", "echo"));

    let paths: Vec<_> = loaded.notices.iter().map(|n| n.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "cache",
            "guardrails",
            "audit",
            "routing.aliases.smart.candidates[1]",
        ]
    );
    let (inactive, rest) = loaded.notices.split_at(loaded.notices.len() - 1);
    assert!(
        inactive
            .iter()
            .all(|n| n.message.contains("not active yet"))
    );
    assert!(
        rest[0]
            .message
            .contains("\"claude-sonnet\" is not a model id")
    );
}

#[test]
fn design_example_needs_its_env() {
    let err = parse(EXAMPLE, &|_| None).unwrap_err().to_string();
    assert!(err.contains("GITHUB_TOKEN"), "{err}");
}

/// The checked-in example is DESIGN.md's, verbatim (when the shared design is beside the repo).
#[test]
fn design_example_matches_design_md() {
    let design = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/DESIGN.md");
    let Ok(text) = std::fs::read_to_string(&design) else {
        return; // not checked out beside the repo
    };
    let Some(section) = text.find("## 4.") else {
        return;
    };
    let block = text[section..]
        .split_once("```yaml\n")
        .and_then(|(_, rest)| rest.split_once("```\n"))
        .map(|(yaml, _)| yaml);
    if let Some(yaml) = block {
        assert_eq!(
            yaml, EXAMPLE,
            "examples/design-example.yaml differs from the example in DESIGN.md §4; copy it over"
        );
    }
}
