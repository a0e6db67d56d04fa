-- One row per model call that reached a front door (see mcplane_core::calls::RequestRecord).
CREATE TABLE model_calls (
    id                BIGSERIAL PRIMARY KEY,
    recorded_at_ms    BIGINT  NOT NULL,
    request_id        TEXT    NOT NULL,
    principal         TEXT,
    front_door        TEXT    NOT NULL,
    requested         TEXT    NOT NULL,
    model             TEXT,
    endpoint          TEXT,
    stream            BOOLEAN NOT NULL,
    status            INTEGER NOT NULL,
    outcome           TEXT    NOT NULL,
    error             TEXT,
    latency_ms        BIGINT  NOT NULL,
    ttft_ms           BIGINT,
    prompt_tokens     BIGINT  NOT NULL,
    completion_tokens BIGINT  NOT NULL,
    usage_source      TEXT    NOT NULL,
    cost_micros       BIGINT  NOT NULL,
    route_reason      TEXT    NOT NULL,
    attempts          INTEGER NOT NULL
);
CREATE INDEX model_calls_recorded ON model_calls (recorded_at_ms);
CREATE INDEX model_calls_model ON model_calls (model, recorded_at_ms);
CREATE INDEX model_calls_principal ON model_calls (principal, recorded_at_ms);
