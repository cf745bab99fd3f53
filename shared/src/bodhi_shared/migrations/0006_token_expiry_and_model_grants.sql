-- When an API token stops working (NULL: never), and which models a token or a user may use: ids or patterns
-- with `*` (NULL: every model). A request must be allowed by both its user's list and its token's.
ALTER TABLE api_tokens
    ADD COLUMN expires_at     TIMESTAMPTZ,
    ADD COLUMN allowed_models TEXT[];
ALTER TABLE users
    ADD COLUMN allowed_models TEXT[];
