// What the API-model form and the setup wizard's API-model step both know of the API's rules.

// The API's limit on the models of one API model (api_models/schemas.py MAX_MODELS).
export const MAX_MODELS = 50;

// A provider check's failure code names the field to look at again.
export const FIELD_OF_CODE = {
  invalid_api_key: "api_key",
  network_error: "base_url",
  connection_failed: "base_url",
  upstream_address_refused: "base_url",
  model_not_found: "models",
};
