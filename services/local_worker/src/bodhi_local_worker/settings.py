from bodhi_shared.settings import DrainSettings, RedisSettings
from bodhi_shared.worker_metrics import WorkerMetricsSettings


class LocalWorkerSettings(RedisSettings, DrainSettings, WorkerMetricsSettings):
    """Settings of a local worker (``BODHI_*`` environment variables; ``--gpu`` and ``--models`` override two)."""

    # Models kept loaded between requests; loading another unloads the least recently used.
    local_max_loaded_models: int = 2
    # Requests each loaded model serves at once (batched), for aliases whose context params set no n_parallel;
    # None: 4 on the CPU, 8 on a GPU (models.n_parallel_of).
    local_n_parallel: int | None = None
    gpu: int | None = None  # the CUDA device this worker is pinned to; None: the CPU
    local_models: str | None = None  # comma-separated aliases; None: every alias in the catalogue
    job_timeout: float = 3600.0
    # How often the catalogue (RedisKeys.local_aliases) is re-read for aliases to start or stop serving: the safety
    # net, as the API's message on RedisKeys.local_worker_control has it re-read at once after each change.
    local_catalogue_interval: float = 2.0

    @property
    def model_aliases(self) -> list[str] | None:
        """The aliases named by ``--models``/``BODHI_LOCAL_MODELS``, or None to follow the catalogue."""
        if self.local_models is None:
            return None
        aliases = [alias.strip() for alias in self.local_models.split(",") if alias.strip()]
        return list(dict.fromkeys(aliases)) or None

    @property
    def device(self) -> str:
        return "cpu" if self.gpu is None else str(self.gpu)
