-- An API model's extra HTTP headers (name -> value), sent on every call to its provider. Not secrets: every user
-- sees them; a key belongs in sealed_key. A keyless API model (a local server) has the empty string sealed and
-- an empty key_hint.
ALTER TABLE api_models ADD COLUMN extra_headers JSONB NOT NULL DEFAULT '{}';
