-- One row per model call that reached a front door (see mcplane_core::calls::RequestRecord).
CREATE TABLE model_calls (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at_ms    INTEGER NOT NULL,
    request_id        TEXT    NOT NULL,
    principal         TEXT,
    front_door        TEXT    NOT NULL,
    requested         TEXT    NOT NULL,
    model             TEXT,
    endpoint          TEXT,
    stream            INTEGER NOT NULL,
    status            INTEGER NOT NULL,
    outcome           TEXT    NOT NULL,
    error             TEXT,
    latency_ms        INTEGER NOT NULL,
    ttft_ms           INTEGER,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    usage_source      TEXT    NOT NULL,
    cost_micros       INTEGER NOT NULL,
    route_reason      TEXT    NOT NULL,
    attempts          INTEGER NOT NULL
);
CREATE INDEX model_calls_recorded ON model_calls (recorded_at_ms);
CREATE INDEX model_calls_model ON model_calls (model, recorded_at_ms);
CREATE INDEX model_calls_principal ON model_calls (principal, recorded_at_ms);
