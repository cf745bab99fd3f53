-- TEMPORARY until the API-models issue: upstreams registered with `bodhi temporary-upstream add`.
-- The key is stored in plain text here; the api_models table will replace this one with encrypted keys.
CREATE TABLE temporary_upstreams (
    model       TEXT PRIMARY KEY,
    base_url    TEXT NOT NULL,
    api_key     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
