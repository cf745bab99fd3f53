-- API models: providers with their sealed keys.
CREATE TABLE api_models (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    api_format  TEXT NOT NULL,
    base_url    TEXT NOT NULL,
    prefix      TEXT UNIQUE,
    models      TEXT[] NOT NULL,
    -- bodhi_shared.crypto.SealedSecret: AES-256-GCM under a data key wrapped for the remote workers only.
    sealed_key  BYTEA NOT NULL,
    key_hint    TEXT NOT NULL,
    created_by  UUID REFERENCES users (id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every model id the deployment serves, one row each: routing is a primary-key lookup, and the primary key
-- is what makes an ambiguous id impossible. Local aliases will add rows here too.
CREATE TABLE served_models (
    model_id        TEXT PRIMARY KEY,
    api_model_id    UUID NOT NULL REFERENCES api_models (id) ON DELETE CASCADE,
    upstream_model  TEXT NOT NULL
);
CREATE INDEX served_models_api_model_id ON served_models (api_model_id);
