//! `mcplane policy test`: the decision, the deciding rule, the rules that applied and the
//! obligations for sample requests, as text and JSON; bad samples and bad policies are errors
//! that say what to fix.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{exe, tempdir};
use serde_json::Value;
use std::process::{Command, Output};

const POLICIES: &str = r#"
policies:
  - name: admins-anything
    when: '"admin" in principal.roles'
    then: allow
  - name: pii-to-private-models
    when: 'request.data_classification == "pii" && principal.roles.exists(r, r in ["analyst"])'
    then: { route_to: [private-llama], log: full, require_approval: true }
  - name: no-destructive-tools-for-interns
    when: 'operation.tool.annotations.destructiveHint && "intern" in principal.roles'
    then: { deny: true, reason: "interns may not run destructive tools" }
"#;

fn run(config: &str, args: &[&str]) -> Output {
    let dir = tempdir::Dir::new();
    let path = dir.0.join("mcplane.yaml");
    std::fs::write(&path, config).unwrap();
    Command::new(exe())
        .args(["policy", "test", "--config"])
        .arg(&path)
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}

#[test]
fn decisions_name_their_rule_and_obligations() {
    let o = run(POLICIES, &["--role", "intern", "--tool", "files/delete"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).starts_with(
            "deny, by rule no-destructive-tools-for-interns: interns may not run destructive tools"
        ),
        "{}",
        text(&o)
    );
    let o = run(
        POLICIES,
        &[
            "--role",
            "intern",
            "--tool",
            "files/read",
            "--annotations",
            r#"{"readOnlyHint": true, "destructiveHint": false}"#,
        ],
    );
    assert!(
        text(&o).starts_with("allow (no rule denies it)"),
        "{}",
        text(&o)
    );
    let o = run(
        POLICIES,
        &[
            "--role",
            "admin",
            "--role",
            "intern",
            "--tool",
            "files/delete",
        ],
    );
    assert!(
        text(&o).starts_with("allow, by rule admins-anything"),
        "{}",
        text(&o)
    );
    let o = run(
        POLICIES,
        &[
            "--role",
            "analyst",
            "--model",
            "gpt-4o",
            "--classification",
            "pii",
            "--json",
        ],
    );
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["effect"], "allow");
    assert_eq!(j["route_to"], serde_json::json!(["private-llama"]));
    assert_eq!(j["require_approval"], "pii-to-private-models");
    assert_eq!(j["log"], "full");
}

#[test]
fn bad_samples_and_bad_policies_say_what_to_fix() {
    let o = run(POLICIES, &["--tool", "no-slash"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("--tool must be SERVER/TOOL"),
        "{}",
        text(&o)
    );
    let o = run(POLICIES, &["--tool", "a/b", "--arguments", "{oops"]);
    assert!(
        text(&o).contains("--arguments is not valid JSON"),
        "{}",
        text(&o)
    );
    let o = run(POLICIES, &[]);
    assert!(
        text(&o).contains("--tool, --model or --list"),
        "{}",
        text(&o)
    );
    let o = run(
        "policies:\n  - { name: broken, when: 'principal.roles ==', then: deny }\n",
        &["--list", "tools"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("policies[0].when: not a valid CEL expression"),
        "{}",
        text(&o)
    );
    // `mcplane check` finds it too.
    let dir = tempdir::Dir::new();
    let path = dir.0.join("mcplane.yaml");
    std::fs::write(
        &path,
        "policies:\n  - { name: ok, then: allow }\n  - { name: broken, when: '1 +', then: deny }\n",
    )
    .unwrap();
    let o = Command::new(exe())
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("policies[1].when: not a valid CEL expression"),
        "{}",
        text(&o)
    );
}
