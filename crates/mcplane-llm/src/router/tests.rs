use super::*;
use mcplane_config::CircuitBreakerConfig;
use std::time::Duration;

const MODELS: &str = "models:
  - id: fast-pricey
    provider: openai
    capabilities: [chat, tools, vision, json_mode]
    cost: { input_per_1k: 0.01, output_per_1k: 0.03 }
    performance: { latency_p95_ms: 200, max_tokens: 128000, max_output_tokens: 4096, quality: 0.95 }
    compliance: { data_residency: [us, eu] }
    endpoints: [{ url: 'http://us/v1', region: us-east-1 }, { url: 'http://eu/v1', region: eu-west-1 }]
  - id: slow-cheap
    provider: anthropic
    capabilities: [chat, tools]
    cost: { input_per_1k: 0.0005, output_per_1k: 0.0015 }
    performance: { latency_p95_ms: 2000, max_tokens: 200000, quality: 0.75 }
    compliance: { data_residency: [us] }
    endpoints: [{ url: 'http://a' }]
  - id: mid
    provider: gemini
    capabilities: [chat, vision]
    cost: { input_per_1k: 0.002, output_per_1k: 0.006 }
    performance: { latency_p95_ms: 800, max_tokens: 1000, quality: 0.85 }
    compliance: { data_residency: [eu] }
    endpoints: [{ url: 'http://g', region: eu }]
  - id: emb
    provider: openai
    capabilities: [embeddings]
    endpoints: [{ url: 'http://e/v1' }]
";

fn setup(routing: &str) -> (Registry, Health, Router) {
    let yaml = format!("{MODELS}routing:\n{routing}");
    let c = mcplane_config::parse(&yaml, &|_| None).unwrap().config;
    let reg = Registry::new(&c.models, &c.routing).unwrap();
    let health = Health::new(
        reg.slot_count(),
        CircuitBreakerConfig {
            consecutive_failures: 2,
            error_rate: 1.0,
            cooldown: Duration::from_secs(30),
        },
    );
    (reg, health, Router::new(c.routing.weights))
}

fn input<'a>(requested: &'a str, id: &'a str) -> RouteInput<'a> {
    RouteInput {
        requested,
        request_id: id,
        kind: CallKind::Chat,
        needs: Needs {
            choices: 1,
            prompt_tokens: 100,
            ..Needs::default()
        },
        residency: &[],
    }
}

fn models(reg: &Registry, plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in &plan.steps {
        let id = &reg.model_at(s.model).id;
        if out.last() != Some(id) {
            out.push(id.clone());
        }
    }
    out
}

#[test]
fn weights_decide_the_score_order() {
    let aliases =
        "  aliases: { all: { candidates: [fast-pricey, slow-cheap, mid], fallbacks: 2 } }\n";
    // Performance only: fastest first.
    let (reg, h, r) = setup(&format!(
        "  weights: {{ performance: 1, cost: 0, availability: 0 }}\n{aliases}"
    ));
    let p = r
        .plan(&reg, &h, &input("all", "x"), Instant::now())
        .unwrap();
    assert_eq!(models(&reg, &p), ["fast-pricey", "mid", "slow-cheap"]);
    assert!(
        p.reason.starts_with("alias all (score): fast-pricey 1.000"),
        "{}",
        p.reason
    );
    // Cost only: cheapest first.
    let (reg, h, r) = setup(&format!(
        "  weights: {{ performance: 0, cost: 1, availability: 0 }}\n{aliases}"
    ));
    let p = r
        .plan(&reg, &h, &input("all", "x"), Instant::now())
        .unwrap();
    assert_eq!(models(&reg, &p), ["slow-cheap", "mid", "fast-pricey"]);
    // Availability: a failing endpoint sinks its model.
    let (reg, h, r) = setup(&format!(
        "  weights: {{ performance: 0, cost: 0.1, availability: 1 }}\n{aliases}"
    ));
    let now = Instant::now();
    h.acquire(reg.model_at(1).endpoints[0].slot, now)
        .unwrap()
        .failure_at(now);
    let p = r.plan(&reg, &h, &input("all", "x"), now).unwrap();
    assert_eq!(models(&reg, &p)[2], "slow-cheap");
    assert_eq!(p.candidates.len(), 3);
}

#[test]
fn capabilities_filter_with_reasons() {
    let (reg, h, r) =
        setup("  aliases: { all: { candidates: [fast-pricey, slow-cheap, mid], fallbacks: 2 } }\n");
    let mut i = input("all", "x");
    i.needs.vision = true;
    let p = r.plan(&reg, &h, &i, Instant::now()).unwrap();
    assert_eq!(models(&reg, &p), ["fast-pricey", "mid"]);
    assert!(
        p.reason
            .contains("excluded slow-cheap (no image input (capability vision))"),
        "{}",
        p.reason
    );
    i.needs.tools = true;
    i.needs.json_mode = true;
    let p = r.plan(&reg, &h, &i, Instant::now()).unwrap();
    assert_eq!(models(&reg, &p), ["fast-pricey"]);
    // n > 1 rules out the Anthropic model; a huge max_tokens rules out the others.
    let mut i = input("all", "x");
    i.needs.choices = 2;
    i.needs.max_output = Some(100_000);
    let err = r.plan(&reg, &h, &i, Instant::now()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("slow-cheap: n = 2 is not possible"), "{text}");
    assert!(
        text.contains("fast-pricey: max tokens 100000 exceeds its max_output_tokens 4096"),
        "{text}"
    );
    assert!(
        text.contains("mid: context window 1000 < estimated 100100 tokens"),
        "{text}"
    );
    // Embeddings models only serve embeddings.
    let err = r
        .plan(&reg, &h, &input("emb", "x"), Instant::now())
        .unwrap_err();
    assert!(err.to_string().contains("not a chat model"), "{err}");
    let mut e = input("emb", "x");
    e.kind = CallKind::Embeddings;
    assert!(r.plan(&reg, &h, &e, Instant::now()).is_ok());
    assert_eq!(
        r.plan(&reg, &h, &input("nope", "x"), Instant::now())
            .unwrap_err(),
        RouteError::UnknownModel("nope".into())
    );
}

#[test]
fn data_residency_filters_models_and_endpoints() {
    let (reg, h, r) =
        setup("  aliases: { all: { candidates: [fast-pricey, slow-cheap, mid], fallbacks: 2 } }\n");
    let eu = [vec!["eu".to_string()]];
    let mut i = input("all", "x");
    i.residency = &eu;
    let p = r.plan(&reg, &h, &i, Instant::now()).unwrap();
    assert_eq!(models(&reg, &p), ["fast-pricey", "mid"]);
    // Only the EU endpoint of fast-pricey.
    let fp: Vec<_> = p.steps.iter().filter(|s| s.model == 0).collect();
    assert_eq!(fp.len(), 1);
    assert_eq!(
        reg.model_at(0).endpoints[fp[0].endpoint].label,
        "fast-pricey@eu-west-1"
    );
    // Two requirements (config + header) must both hold.
    let both = [vec!["eu".to_string()], vec!["us".to_string()]];
    i.residency = &both;
    let err = r.plan(&reg, &h, &i, Instant::now()).unwrap_err();
    assert!(
        err.to_string().contains("no endpoint in region us"),
        "{err}"
    );
}

#[test]
fn cheapest_maximizes_quality_per_dollar_above_the_threshold() {
    let (reg, h, r) = setup(
        "  aliases: { cheap: { candidates: [fast-pricey, slow-cheap, mid], strategy: cheapest, quality_threshold: 0.8, fallbacks: 2 } }\n",
    );
    let p = r
        .plan(&reg, &h, &input("cheap", "x"), Instant::now())
        .unwrap();
    // slow-cheap is cheapest but below 0.8; mid (0.85 for ~$0.0017) beats fast-pricey (0.95 for
    // ~$0.0087).
    assert_eq!(models(&reg, &p), ["mid", "fast-pricey"]);
    assert!(
        p.reason
            .contains("excluded slow-cheap (quality 0.75 < threshold 0.8)"),
        "{}",
        p.reason
    );
    assert!(p.reason.contains("mid q 0.85"), "{}", p.reason);
    // A lower threshold lets the cheap one win.
    let (reg, h, r) = setup(
        "  aliases: { cheap: { candidates: [fast-pricey, slow-cheap, mid], strategy: cheapest, quality_threshold: 0.7 } }\n",
    );
    let p = r
        .plan(&reg, &h, &input("cheap", "x"), Instant::now())
        .unwrap();
    assert_eq!(models(&reg, &p), ["slow-cheap", "mid"]);
}

#[test]
fn weighted_split_is_deterministic_per_request_id_and_follows_shares() {
    let (reg, h, r) = setup(
        "  aliases: { ab: { candidates: [fast-pricey, slow-cheap], strategy: weighted, split: { fast-pricey: 3, slow-cheap: 1 } } }\n",
    );
    let now = Instant::now();
    let mut first = 0;
    for n in 0..4000 {
        let id = format!("req-{n}");
        let p = r.plan(&reg, &h, &input("ab", &id), now).unwrap();
        let again = r.plan(&reg, &h, &input("ab", &id), now).unwrap();
        assert_eq!(p.steps, again.steps);
        if p.steps[0].model == 0 {
            first += 1;
        }
        assert_eq!(models(&reg, &p).len(), 2, "primary plus one fallback");
    }
    // 75% ± 3 points.
    assert!((2880..=3120).contains(&first), "{first}");
}

#[test]
fn latency_prefers_observed_latency() {
    let (reg, h, r) = setup(
        "  aliases: { quick: { candidates: [fast-pricey, slow-cheap, mid], strategy: latency, fallbacks: 2 } }\n",
    );
    let now = Instant::now();
    let p = r.plan(&reg, &h, &input("quick", "x"), now).unwrap();
    assert_eq!(models(&reg, &p), ["fast-pricey", "mid", "slow-cheap"]);
    // Observed: slow-cheap answers in 50 ms.
    h.acquire(reg.model_at(1).endpoints[0].slot, now)
        .unwrap()
        .success_at(Duration::from_millis(50), now);
    let p = r.plan(&reg, &h, &input("quick", "x"), now).unwrap();
    assert_eq!(models(&reg, &p)[0], "slow-cheap");
    assert!(
        p.reason.contains("slow-cheap 50ms < fast-pricey 200ms"),
        "{}",
        p.reason
    );
}

#[test]
fn open_circuits_go_last_within_a_model() {
    let (reg, h, r) = setup("  {}\n");
    let now = Instant::now();
    let us = reg.model_at(0).endpoints[0].slot;
    for _ in 0..2 {
        h.acquire(us, now).unwrap().failure_at(now);
    }
    let p = r.plan(&reg, &h, &input("fast-pricey", "x"), now).unwrap();
    assert_eq!(
        p.steps.iter().map(|s| s.endpoint).collect::<Vec<_>>(),
        [1, 0]
    );
    assert_eq!(p.strategy, "direct");
    assert_eq!(p.reason, "direct: fast-pricey");
}

#[test]
fn bucket_is_uniform_enough_and_stable() {
    assert_eq!(score::bucket("abc"), score::bucket("abc"));
    let below: usize = (0..10_000)
        .filter(|n| score::bucket(&n.to_string()) < 0.5)
        .count();
    assert!((4800..5200).contains(&below), "{below}");
}
