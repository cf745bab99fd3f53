-- Routers: a model id served by an ordered list of targets (other served model ids: API models' models or local
-- aliases, never another router) with a strategy (`bodhi_api.model_routers`).
CREATE TABLE routers (
    model_id    TEXT PRIMARY KEY,
    strategy    TEXT NOT NULL CHECK (strategy IN ('fallback', 'round_robin', 'least_busy')),
    targets     TEXT[] NOT NULL CHECK (cardinality(targets) BETWEEN 1 AND 16),
    -- How long a failing target is left alone when its provider named no Retry-After.
    cooldown_s  INTEGER NOT NULL DEFAULT 30 CHECK (cooldown_s BETWEEN 0 AND 3600),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A router's id is a served id like any other: the one primary key keeps it unique among them.
ALTER TABLE served_models ADD COLUMN router TEXT REFERENCES routers (model_id) ON DELETE CASCADE;
ALTER TABLE served_models DROP CONSTRAINT served_models_one_source;
ALTER TABLE served_models ADD CONSTRAINT served_models_one_source CHECK (num_nonnulls(api_model_id, alias, router) = 1);

-- For a request to a router, `model` is the router's id and `target` the served id that answered it.
ALTER TABLE usage_records ADD COLUMN target TEXT;
