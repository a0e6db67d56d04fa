//! Errors name the key path of what is wrong, in words a config author uses (never Rust type
//! names), for every section — the active ones and those accepted but not active yet.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcplane_config::{ConfigError, parse};

fn env(name: &str) -> Option<String> {
    (name == "KEY").then(|| "hunter2-secret".to_string())
}

/// Parses `yaml`, expecting an error; returns (path, message) and checks the message is clean.
fn err(yaml: &str) -> (String, String) {
    match parse(yaml, &env) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(ConfigError::Invalid { path, message }) => {
            for rust in [
                "f64", "f32", "u32", "u64", "usize", "i64", "struct ", "enum ", "Spec", "Option<",
                "Vec<", "YAML tag", "hunter2",
            ] {
                assert!(
                    !message.contains(rust),
                    "{path}: {message:?} mentions {rust:?}"
                );
            }
            (path, message)
        }
        Err(other) => panic!("unexpected error kind: {other}"),
    }
}

const MODEL: &str = "models:\n  - id: m\n    provider: openai\n";

#[test]
fn wrong_types_name_the_path_and_the_expected_kind() {
    let cases = [
        (
            "mcp: { naming: { max_len: \"x\" } }",
            "mcp.naming.max_len",
            "non-negative integer",
        ),
        (
            "mcp: { naming: { max_len: -3 } }",
            "mcp.naming.max_len",
            "non-negative integer",
        ),
        (
            "mcp: { naming: { max_len: 1.5 } }",
            "mcp.naming.max_len",
            "non-negative integer",
        ),
        ("mcp: { naming: x }", "mcp.naming", "expected a mapping"),
        ("mcp: { servers: [] }", "mcp.servers", "expected a map"),
        (
            "server: { max_body_bytes: lots }",
            "server.max_body_bytes",
            "non-negative integer",
        ),
        (
            "server: { shutdown_grace: 10 }",
            "server.shutdown_grace",
            "duration",
        ),
        (
            "models:\n  - id: m\n    provider: openai\n    cost: { input_per_1k: x, output_per_1k: 1 }\n",
            "models[0].cost.input_per_1k",
            "expected a number",
        ),
        (
            "models:\n  - id: m\n    provider: openai\n    cost: cheap\n",
            "models[0].cost",
            "expected a mapping",
        ),
        (
            "models:\n  - id: m\n    provider: openai\n    performance: { latency_p95_ms: fast }\n",
            "models[0].performance.latency_p95_ms",
            "non-negative integer",
        ),
        ("models: { id: m }", "models", "expected a sequence"),
        (
            "models:\n  - id: m\n    provider: [openai]\n",
            "models[0].provider",
            "allowed names",
        ),
        (
            "auth: { api_keys: maybe }",
            "auth.api_keys",
            "expected a boolean",
        ),
        (
            "budgets: [{ scope: 'team:a', daily_usd: [1] }]",
            "budgets[0].daily_usd",
            "number",
        ),
        (
            "budgets: [{ scope: 'team:a', daily_usd: 1, alert_at: [0.5, x] }]",
            "budgets[0].alert_at[1]",
            "number",
        ),
        (
            "budgets: [{ scope: 'team:a', daily_usd: 1, alert_at: high }]",
            "budgets[0].alert_at",
            "a number from 0 to 1",
        ),
        (
            "policies: [{ name: p, then: [deny] }]",
            "policies[0].then",
            "an action",
        ),
        (
            "policies: [{ name: p, then: { route_to: x } }]",
            "policies[0].then.route_to",
            "sequence",
        ),
        (
            "guardrails: { max_depth: deep }",
            "guardrails.max_depth",
            "non-negative integer",
        ),
        (
            "cache: { exact: { ttl: forever } }",
            "cache.exact.ttl",
            "invalid duration",
        ),
        (
            "tenants: { orgs: [{ id: a, teams: [{ id: t, projects: [[x]] }] }] }",
            "tenants.orgs[0].teams[0].projects[0]",
            "a project id or a mapping",
        ),
    ];
    for (yaml, path, expected) in cases {
        let (p, m) = err(yaml);
        assert_eq!(p, path, "{yaml}: {m}");
        assert!(m.contains(expected), "{yaml}: {p}: {m}");
    }
}

#[test]
fn unknown_keys_are_errors_at_every_depth() {
    let cases = [
        ("modles: []", "modles"),
        ("server: { listn: x }", "server.listn"),
        ("mcp: { naming: { prefx: always } }", "mcp.naming.prefx"),
        ("store: { uri: 'sqlite://x.db' }", "store.uri"),
        (
            "auth: { jwt: [{ issuer: i, audience: a, jwks_url: 'https://x/j', claim: {} }] }",
            "auth.jwt[0].claim",
        ),
        (
            "auth: { jwt: [{ issuer: i, audience: a, jwks_url: 'https://x/j', claims: { rol: r } }] }",
            "auth.jwt[0].claims.rol",
        ),
        (
            "tenants: { orgs: [{ id: a, team: [] }] }",
            "tenants.orgs[0].team",
        ),
        (
            "tenants: { orgs: [{ id: a, teams: [{ id: t, projects: [{ id: p, nam: x }] }] }] }",
            "tenants.orgs[0].teams[0].projects[0].nam",
        ),
        (
            "models:\n  - id: m\n    provider: openai\n    cots: {}\n",
            "models[0].cots",
        ),
        (
            "models:\n  - id: m\n    provider: openai\n    cost: { input_per_1k: 1, output_per_1k: 1, cached_per_1k: 1 }\n",
            "models[0].cost.cached_per_1k",
        ),
        (
            "models:\n  - id: m\n    provider: openai\n    endpoints: [{ url: 'https://x', apikey: y }]\n",
            "models[0].endpoints[0].apikey",
        ),
        (
            "routing: { aliases: { smart: { candidates: [m], fallback: 2 } } }",
            "routing.aliases.smart.fallback",
        ),
        (
            "policies: [{ name: p, then: { rout_to: [m] } }]",
            "policies[0].then.rout_to",
        ),
        (
            "policies: [{ name: p, if: x, then: deny }]",
            "policies[0].if",
        ),
        (
            "budgets: [{ scope: 'team:a', dayly_usd: 1 }]",
            "budgets[0].dayly_usd",
        ),
        (
            "cache: { semantic: { threshold: 0.8, embedding_model: e, treshold: 1 } }",
            "cache.semantic.treshold",
        ),
        (
            "guardrails: { classifier: { ur: x } }",
            "guardrails.classifier.ur",
        ),
        ("audit: { signingkey: x }", "audit.signingkey"),
        (
            "mcp:\n  servers: { a: { transport: stdio, command: x } }\n  virtual_servers: { v: { overides: {} } }\n",
            "mcp.virtual_servers.v.overides",
        ),
        (
            "mcp:\n  servers: { a: { transport: stdio, command: x } }\n  virtual_servers: { v: { overrides: { a/t: { nme: y } } } }\n",
            "mcp.virtual_servers.v.overrides.a/t.nme",
        ),
    ];
    for (yaml, path) in cases {
        let (p, m) = err(yaml);
        assert_eq!(p, path, "{yaml}: {m}");
        let key = path.rsplit(['.', ']']).next().unwrap_or_default();
        assert!(m.contains(&format!("unknown field `{key}`")), "{yaml}: {m}");
        assert!(m.contains("expected"), "lists the known keys: {m}");
    }
}

#[test]
fn unknown_names_list_the_allowed_ones() {
    let (p, m) = err("models:\n  - id: m\n    provider: openia\n");
    assert_eq!(p, "models[0].provider");
    assert!(
        m.contains("unknown variant `openia`") && m.contains("`openai`"),
        "{m}"
    );
    let (p, m) = err("guardrails: { pii: mask }");
    assert_eq!(p, "guardrails.pii");
    assert!(m.contains("`redact`"), "{m}");
    let (p, m) = err("policies: [{ name: p, then: dny }]");
    assert_eq!(p, "policies[0].then");
    assert!(
        m.contains("unknown variant `dny`") && m.contains("`require_approval`"),
        "{m}"
    );
    let (p, m) = err(&format!("{MODEL}    capabilities: [chat, vison]\n"));
    assert_eq!(p, "models[0].capabilities[1]");
    assert!(m.contains("`vision`"), "{m}");
}

#[test]
fn missing_required_keys_name_the_parent() {
    let (p, m) = err("models:\n  - provider: openai\n");
    assert_eq!(p, "models[0]");
    assert!(m.contains("missing field `id`"), "{m}");
    let (p, m) = err("policies: [{ name: p }]");
    assert_eq!(p, "policies[0]");
    assert!(m.contains("missing field `then`"), "{m}");
    let (p, m) = err("auth: { jwt: [{ issuer: 'https://i/', audience: a }] }");
    assert_eq!(p, "auth.jwt[0]");
    assert!(m.contains("jwks_url"), "{m}");
}

#[test]
fn values_are_validated_with_their_path() {
    let cases = [
        (
            "store: { url: 'mysql://u:p@h/db' }",
            "store.url",
            "sqlite://",
        ),
        ("store: { redis: 'http://x' }", "store.redis", "redis://"),
        (
            "auth: { jwt: [{ issuer: i, audience: a, jwks_url: 'ftp://x' }] }",
            "auth.jwt[0].jwks_url",
            "https://",
        ),
        (
            "auth: { jwt: [{ issuer: i, audience: a, jwks_url: 'https://x', jwks_file: f }] }",
            "auth.jwt[0].jwks_file",
            "not both",
        ),
        (
            "tenants: { orgs: [{ id: a }, { id: a }] }",
            "tenants.orgs[1].id",
            "duplicate",
        ),
        (
            "tenants: { orgs: [{ id: 'a b' }] }",
            "tenants.orgs[0].id",
            "not a valid id",
        ),
        (
            "tenants: { orgs: [{ id: a, teams: [{ id: t, projects: [p, p] }] }] }",
            "tenants.orgs[0].teams[0].projects[1]",
            "duplicate",
        ),
        (
            &format!("{MODEL}    cost: {{ input_per_1k: -1, output_per_1k: 1 }}\n"),
            "models[0].cost.input_per_1k",
            "≥ 0",
        ),
        (
            &format!("{MODEL}  - id: m\n    provider: anthropic\n"),
            "models[1].id",
            "duplicate model id",
        ),
        (
            &format!("{MODEL}    endpoints: [{{ url: 'api.openai.com' }}]\n"),
            "models[0].endpoints[0].url",
            "URL",
        ),
        (
            &format!("{MODEL}    performance: {{ quality: 2 }}\n"),
            "models[0].performance.quality",
            "0 to 1",
        ),
        (
            "routing: { weights: { cost: -1 } }",
            "routing.weights.cost",
            "≥ 0",
        ),
        (
            "routing: { aliases: { smart: { candidates: [] } } }",
            "routing.aliases.smart.candidates",
            "at least one",
        ),
        (
            "routing: { aliases: { ab: { candidates: [a, b], strategy: weighted } } }",
            "routing.aliases.ab.split",
            "required",
        ),
        (
            "routing: { aliases: { ab: { candidates: [a], split: { c: 1 } } } }",
            "routing.aliases.ab.split.c",
            "candidates",
        ),
        (
            "policies: [{ name: p, then: deny }, { name: p, then: allow }]",
            "policies[1].name",
            "duplicate",
        ),
        (
            "policies: [{ name: p, then: {} }]",
            "policies[0].then",
            "at least one action",
        ),
        (
            "policies: [{ name: p, then: { allow: true, deny: true } }]",
            "policies[0].then.deny",
            "both",
        ),
        (
            "policies: [{ name: p, then: { shadow: { to: m, percent: 150 } } }]",
            "policies[0].then.shadow.percent",
            "0 to 100",
        ),
        (
            "budgets: [{ scope: payments, daily_usd: 1 }]",
            "budgets[0].scope",
            "KIND:ID",
        ),
        (
            "budgets: [{ scope: 'squad:x', daily_usd: 1 }]",
            "budgets[0].scope",
            "unknown scope kind",
        ),
        ("budgets: [{ scope: 'team:x' }]", "budgets[0]", "no limit"),
        (
            "budgets: [{ scope: 'team:x', daily_usd: 1, alert_at: 1.5 }]",
            "budgets[0].alert_at",
            "at most 1",
        ),
        (
            "budgets: [{ scope: 'team:x', daily_usd: 1, alert_at: [0.5, 0] }]",
            "budgets[0].alert_at[1]",
            "above 0",
        ),
        (
            "budgets: [{ scope: 'team:x', daily_usd: 1, on_limit: degrade }]",
            "budgets[0].degrade_to",
            "required",
        ),
        (
            "cache: { semantic: { threshold: 1.2, embedding_model: e } }",
            "cache.semantic.threshold",
            "0 to 1",
        ),
        (
            "guardrails: { max_depth: 0 }",
            "guardrails.max_depth",
            "at least 1",
        ),
        ("audit: { signing_key: '' }", "audit.signing_key", "empty"),
        (
            "audit: { export: { syslog: 'http://x' } }",
            "audit.export.syslog",
            "udp://",
        ),
        (
            "mcp:\n  servers: { a: { transport: stdio, command: x } }\n  virtual_servers: { v: { include: [b/x] } }\n",
            "mcp.virtual_servers.v.include[0]",
            "no server named \"b\"",
        ),
        (
            "mcp:\n  servers: { a: { transport: stdio, command: x } }\n  virtual_servers: { v: { exclude: [nothing] } }\n",
            "mcp.virtual_servers.v.exclude[0]",
            "SERVER/ITEM",
        ),
        (
            "mcp:\n  servers: { a: { transport: stdio, command: x } }\n  virtual_servers: { v: { overrides: { 'a/*': { name: y } } } }\n",
            "mcp.virtual_servers.v.overrides.a/*",
            "globs are not allowed",
        ),
        (
            "mcp:\n  servers: { a: { transport: stdio, command: x } }\n  virtual_servers: { v: { overrides: { a/t: { name: 'has space' } } } }\n",
            "mcp.virtual_servers.v.overrides.a/t.name",
            "not a valid name",
        ),
        (
            "mcp: { virtual_servers: { 'a b': {} } }",
            "mcp.virtual_servers.a b",
            "[A-Za-z0-9_-]",
        ),
        (MODEL, "models[0].endpoints", "at least one endpoint"),
        (
            "models:\n  - id: az\n    provider: azure_openai\n    endpoints: [{ url: 'https://x.openai.azure.com', api_key: k }]\n",
            "models[0].endpoints[0].api_version",
            "required for provider azure_openai",
        ),
        (
            &format!("{MODEL}    endpoints: [{{ url: 'https://x/v1?key=abc' }}]\n"),
            "models[0].endpoints[0].url",
            "without ?query",
        ),
        (
            "models:\n  - id: c\n    provider: anthropic\n    capabilities: [chat, embeddings]\n    endpoints: [{ url: 'https://x' }]\n",
            "models[0].capabilities",
            "no embeddings API",
        ),
        (
            &format!(
                "{MODEL}    endpoints: [{{ url: 'https://x/v1' }}]\nrouting: {{ aliases: {{ m: {{ candidates: [m] }} }} }}\n"
            ),
            "routing.aliases.m",
            "already a model id",
        ),
        (
            "routing: { weights: { performance: 0, cost: 0, availability: 0 } }",
            "routing.weights",
            "above 0",
        ),
        (
            "routing: { retry: { initial_backoff: 10s, max_backoff: 1s } }",
            "routing.retry.initial_backoff",
            "max_backoff",
        ),
        (
            "routing: { timeouts: { first_token: 0s } }",
            "routing.timeouts.first_token",
            "longer than 0",
        ),
    ];
    for (yaml, path, expected) in cases {
        let (p, m) = err(yaml);
        assert_eq!(p, path, "{yaml}: {m}");
        assert!(m.contains(expected), "{yaml}: {p}: {m}");
    }
}

#[test]
fn secrets_never_reach_errors_or_debug() {
    let (_, m) = err("store: { url: 'mysql://u:${KEY}@h/db' }");
    assert!(!m.contains("hunter2"), "{m}");
    let loaded = parse(
        "store: { url: 'postgres://u:${KEY}@h/db', redis: 'redis://:${KEY}@h' }\n\
         audit: { signing_key: '${KEY}' }\n\
         guardrails: { classifier: { url: 'https://c', api_key: '${KEY}' } }\n\
         mcp:\n  servers:\n    s: { transport: streamable_http, url: 'https://u:${KEY}@h/mcp', headers: { Authorization: 'Bearer ${KEY}' } }\n    t: { transport: stdio, command: x, env: { TOKEN: '${KEY}' } }\n",
        &env,
    )
    .unwrap();
    let dump = format!("{loaded:?}");
    assert!(!dump.contains("hunter2"), "{dump}");
    assert!(dump.contains("[redacted]"));
    let spec = serde_json::to_string(&loaded.config.pending.audit).unwrap();
    assert!(!spec.contains("hunter2"), "{spec}");
    let key = loaded
        .config
        .pending
        .audit
        .as_ref()
        .and_then(|a| a.signing_key.as_ref());
    assert_eq!(key.map(|k| k.expose()), Some("hunter2-secret"));
}

#[test]
fn tenants_and_budgets_parse_into_typed_specs() {
    let yaml = "tenants: { orgs: [{ id: acme, teams: [{ id: payments, projects: [bot, { id: app, limits: { requests_per_minute: 60 } }] }] }] }\n\
                budgets: [{ scope: 'org:acme', monthly_usd: 10, alert_at: [0.5, 0.9], windows: [{ every: 7d, usd: 3 }] }]\n";
    let loaded = parse(yaml, &env).unwrap();
    let t = loaded.config.tenants.as_ref().unwrap();
    let projects = t.orgs.as_ref().unwrap()[0].teams.as_ref().unwrap()[0]
        .projects
        .as_ref()
        .unwrap();
    let ids: Vec<_> = projects.iter().map(|p| p.id()).collect();
    assert_eq!(ids, ["bot", "app"]);
    let b = &loaded.config.budgets[0];
    assert_eq!(b.alert_at.as_ref().unwrap().thresholds(), [0.5, 0.9]);
    let paths: Vec<_> = loaded.notices.iter().map(|n| n.path.as_str()).collect();
    assert!(
        paths.is_empty(),
        "tenants and budgets are active: {paths:?}"
    );
}

#[test]
fn model_registry_is_lowered_with_notices_for_what_cannot_work() {
    let yaml = "models:
  - id: gpt
    provider: openai
    capabilities: [tools, chat, tools]
    compliance: { data_residency: [EU] }
    endpoints: [{ url: 'https://api.example/v1/', api_key: '${KEY}' }]
  - id: local
    provider: openai_compatible
    endpoints: [{ url: 'http://127.0.0.1:8000/v1', model: llama-3 }]
  - id: claude
    provider: anthropic
    endpoints: [{ url: 'https://api.anthropic.com' }]
routing:
  data_residency: [EU]
  aliases:
    smart: { candidates: [gpt, nope, claude], fallbacks: 2 }
";
    let loaded = parse(yaml, &env).unwrap();
    let c = &loaded.config;
    let gpt = &c.models[0];
    assert_eq!(
        gpt.capabilities,
        [
            mcplane_config::Capability::Chat,
            mcplane_config::Capability::Tools
        ]
    );
    assert_eq!(gpt.endpoints[0].url, "https://api.example/v1");
    assert_eq!(
        gpt.compliance.data_residency.as_deref(),
        Some(&["eu".to_string()][..])
    );
    assert_eq!(c.models[1].endpoints[0].upstream_model, "llama-3");
    assert!(c.models[1].endpoints[0].api_key.is_none());
    assert_eq!(c.routing.data_residency, ["eu"]);
    assert_eq!(c.routing.aliases[0].candidates, ["gpt", "claude"]);
    let paths: Vec<_> = loaded.notices.iter().map(|n| n.path.as_str()).collect();
    // No key on the Anthropic endpoint (an OpenAI-compatible one may need none); the unknown
    // candidate.
    assert_eq!(
        paths,
        [
            "models[2].endpoints[0].api_key",
            "routing.aliases.smart.candidates[1]"
        ]
    );
    assert!(!format!("{c:?}").contains("hunter2"));
}
