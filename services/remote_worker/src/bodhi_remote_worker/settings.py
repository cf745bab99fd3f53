from bodhi_shared.settings import DrainSettings, RedisSettings, UpstreamPolicySettings
from bodhi_shared.worker_keys import WorkerPrivateKeySettings
from bodhi_shared.worker_metrics import WorkerMetricsSettings


class RemoteWorkerSettings(
    RedisSettings, WorkerPrivateKeySettings, UpstreamPolicySettings, DrainSettings, WorkerMetricsSettings
):
    """Settings of a remote worker (``BODHI_*`` environment variables)."""

    max_jobs: int = 200
    job_timeout: float = 3600.0
    upstream_connect_timeout: float = 10.0
    # Longest silence from a provider: before its first byte, and between two chunks.
    upstream_read_timeout: float = 300.0
    # A whole fetch-models or test-connection check, retries included: someone is waiting on a form.
    provider_check_timeout: float = 15.0
