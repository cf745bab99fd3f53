"""API models: provider connections (base URL, sealed key, selected models) shared by the deployment."""
