-- One row per inference request: who, which model, how many tokens, how fast, how it ended.
-- No foreign keys: a record outlives the user, token or API model it names, and a batch must never fail
-- because one of them was deleted a moment before it was written.
CREATE TABLE usage_records (
    id                 BIGSERIAL PRIMARY KEY,
    created_at         TIMESTAMPTZ NOT NULL,
    request_id         TEXT NOT NULL,
    user_id            UUID,
    token_id           UUID,
    endpoint           TEXT NOT NULL,
    model              TEXT NOT NULL,
    api_model_id       UUID,
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    total_tokens       INTEGER,
    ttft_ms            DOUBLE PRECISION,
    duration_ms        DOUBLE PRECISION NOT NULL,
    status             TEXT NOT NULL,
    http_status        INTEGER NOT NULL
);
CREATE INDEX usage_records_created_at ON usage_records (created_at);
CREATE INDEX usage_records_user_created ON usage_records (user_id, created_at);
