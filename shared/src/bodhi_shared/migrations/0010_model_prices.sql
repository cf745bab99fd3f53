-- Optional prices of served model ids, in US dollars per million tokens (input: prompt tokens, output: completion
-- tokens). Usage is priced when it is read (`bodhi_api.prices`, `GET /bodhi/v1/usage`), at the prices of the day.
-- Keyed by the model id as usage records name it, with no foreign key: any served id (an API model's model, a local
-- alias, a router) may be priced, and a price outlives the model it names, as the usage records do.
CREATE TABLE model_prices (
    model_id            TEXT PRIMARY KEY,
    input_per_million   NUMERIC(16, 6) NOT NULL CHECK (input_per_million >= 0),
    output_per_million  NUMERIC(16, 6) NOT NULL CHECK (output_per_million >= 0),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by          UUID
);
