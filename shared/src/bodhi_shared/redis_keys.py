"""Every Redis key, channel and queue name Bodhi uses, in one place.

All names start with a namespace (``BODHI_REDIS_PREFIX``, default ``bodhi``) so that several deployments,
or several test runs, can share one Redis server without seeing each other's data.
"""

from dataclasses import dataclass

REMOTE_WORKER_KIND = "remote"
LOCAL_WORKER_KIND = "local"


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Builds the names under one namespace."""

    namespace: str = "bodhi"

    @property
    def remote_queue(self) -> str:
        """The arq queue (a sorted set) that remote workers consume."""
        return f"{self.namespace}:queue:remote"

    def local_queue(self, alias: str) -> str:
        """The arq queue of one local alias: only workers that serve the alias consume it."""
        return f"{self.namespace}:queue:local:{alias}"

    def alias_workers(self, alias: str) -> str:
        """Sorted set of the local workers serving ``alias``, scored by the time of their last heartbeat."""
        return f"{self.namespace}:alias-workers:{alias}"

    @property
    def local_aliases(self) -> str:
        """Hash alias -> JSON ``LocalModel`` (path, context params): the catalogue local workers read."""
        return f"{self.namespace}:local-aliases"

    def wake_channel(self, queue: str) -> str:
        """Pub/sub channel an enqueuer publishes to so idle workers poll ``queue`` at once."""
        return f"{queue}:wake"

    def replica_channel(self, replica_id: str) -> str:
        """Pub/sub channel of one API replica: workers publish there the events of the requests it sent."""
        return f"{self.namespace}:replica:{replica_id}"

    @property
    def cancel_channel(self) -> str:
        """Pub/sub channel on which the API publishes the request id of a job whose client went away."""
        return f"{self.namespace}:cancel"

    @property
    def api_control(self) -> str:
        """Pub/sub channel telling every API replica to drop a cache: ``credentials`` or ``routes`` changed."""
        return f"{self.namespace}:api-control"

    def workers(self, kind: str) -> str:
        """Sorted set of worker ids of one kind, scored by the time of their last heartbeat."""
        return f"{self.namespace}:workers:{kind}"

    def worker_info(self, worker_id: str) -> str:
        """Hash describing one worker (kind, host, pid, queue); expires with its heartbeat."""
        return f"{self.namespace}:worker:{worker_id}"

    def session(self, digest: str) -> str:
        """A browser session (keyed by the SHA-256 of its id) -> user id; expires."""
        return f"{self.namespace}:session:{digest}"

    def user_sessions(self, user_id: str) -> str:
        """Set of the session digests of one user, so all can be ended at once."""
        return f"{self.namespace}:user-sessions:{user_id}"

    def rate_limit(self, kind: str, subject: str) -> str:
        """A subject's (``token:<id>``, ``user:<id>``) rpm or tpm GCRA arrival time (``rate_limits``); expires."""
        return f"{self.namespace}:limit:{kind}:{subject}"

    def budget(self, subject: str, period_tag: str) -> str:
        """Tokens a subject used in one UTC day or month (``2026-12-01``, ``2026-12``); expires after it."""
        return f"{self.namespace}:budget:{subject}:{period_tag}"

    def login_client_failures(self, client_digest: str) -> str:
        """Count of failed logins from one client address (keyed by its SHA-256); expires with its window."""
        return f"{self.namespace}:login-failures:client:{client_digest}"

    def login_user_failures(self, username_digest: str) -> str:
        """Hash (failures, time of the last) of one username (keyed by the SHA-256 of its normalised form)."""
        return f"{self.namespace}:login-failures:user:{username_digest}"

    @property
    def local_followers(self) -> str:
        """Sorted set of the local workers that follow the catalogue (no ``--models``), scored by last heartbeat.

        While one is alive, the API waits briefly for a new alias's worker set to gain a member instead of a 503."""
        return f"{self.namespace}:local-followers"

    @property
    def local_worker_control(self) -> str:
        """Pub/sub channel the API publishes to after it rewrote the alias catalogue: followers re-read it at once."""
        return f"{self.namespace}:local-worker-control"

    def target_cooldown(self, model_id: str) -> str:
        """Set while a router target (a served model id) is cooling down after a failure; expires when it ends."""
        return f"{self.namespace}:cooldown:{model_id}"

    def target_in_flight(self, model_id: str) -> str:
        """Sorted set of the requests a router sent to a served model id, scored by when each is given up for lost
        (``model_routers.picking``): a ``least_busy`` router's count of in-flight requests."""
        return f"{self.namespace}:in-flight:{model_id}"

    def router_turn(self, router: str) -> str:
        """Counter of a ``round_robin`` router: whose turn it is, shared by every replica."""
        return f"{self.namespace}:router-turn:{router}"
