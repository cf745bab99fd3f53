-- Stored Responses API answers (`store`, on by default): read back by GET /v1/responses/{id} and continued with
-- `previous_response_id`, by their owner only, until `expires_at` (BODHI_RESPONSES_RETENTION_DAYS); expired rows
-- are never read and are deleted lazily (bodhi_api/responses_store.py).
CREATE TABLE responses (
    id           TEXT PRIMARY KEY,  -- the Response's own id (`resp_...`)
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    model        TEXT NOT NULL,  -- the served id asked for
    input_items  JSONB NOT NULL,  -- the input it answered, as sent, after its previous_response_id was expanded
    response     JSONB NOT NULL,  -- the final Response object
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX responses_expires_at ON responses (expires_at);
