-- Rate limits (requests and tokens per minute) and token budgets (per UTC day or month) of a token or a user;
-- NULL: unlimited. Enforced in Redis (`bodhi_shared.rate_limits`), loaded with the principal.
ALTER TABLE api_tokens
    ADD COLUMN rpm_limit     INTEGER CHECK (rpm_limit > 0),
    ADD COLUMN tpm_limit     INTEGER CHECK (tpm_limit > 0),
    ADD COLUMN budget_tokens BIGINT  CHECK (budget_tokens > 0),
    ADD COLUMN budget_period TEXT    CHECK (budget_period IN ('day', 'month')),
    ADD CONSTRAINT budget_has_a_period CHECK ((budget_tokens IS NULL) = (budget_period IS NULL));
ALTER TABLE users
    ADD COLUMN rpm_limit     INTEGER CHECK (rpm_limit > 0),
    ADD COLUMN tpm_limit     INTEGER CHECK (tpm_limit > 0),
    ADD COLUMN budget_tokens BIGINT  CHECK (budget_tokens > 0),
    ADD COLUMN budget_period TEXT    CHECK (budget_period IN ('day', 'month')),
    ADD CONSTRAINT budget_has_a_period CHECK ((budget_tokens IS NULL) = (budget_period IS NULL));
