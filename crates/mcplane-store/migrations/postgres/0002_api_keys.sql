-- mcplane API keys: the secret is never stored, only its SHA-256 (hex).
CREATE TABLE api_keys (
    id              TEXT    PRIMARY KEY,
    hash            TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    principal       TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    org             TEXT,
    team            TEXT,
    project         TEXT,
    roles           TEXT    NOT NULL,  -- JSON array
    models          TEXT,              -- JSON array; NULL = any
    tools           TEXT,              -- JSON array of SERVER/TOOL globs; NULL = any
    created_at_ms   BIGINT  NOT NULL,
    expires_at_ms   BIGINT,
    revoked_at_ms   BIGINT
);
