-- Local aliases: a name for a GGUF file and how to load and prompt it.
CREATE TABLE local_aliases (
    alias           TEXT PRIMARY KEY,
    path            TEXT NOT NULL,  -- the resolved absolute path of the GGUF file
    repo            TEXT,
    filename        TEXT,
    context_params  JSONB NOT NULL DEFAULT '{}',
    request_params  JSONB NOT NULL DEFAULT '{}',
    source          TEXT NOT NULL DEFAULT 'user' CHECK (source IN ('user', 'auto')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- served_models now holds local aliases too, so one primary key keeps every served id unique.
ALTER TABLE served_models ALTER COLUMN api_model_id DROP NOT NULL;
ALTER TABLE served_models ALTER COLUMN upstream_model DROP NOT NULL;
ALTER TABLE served_models ADD COLUMN alias TEXT REFERENCES local_aliases (alias) ON DELETE CASCADE;
ALTER TABLE served_models ADD CONSTRAINT served_models_one_source CHECK ((api_model_id IS NULL) <> (alias IS NULL));
