"""What ``bodhi_shared.queue`` relies on inside arq (pinned ``>=0.28,<0.29``): each test fails naming what changed.

``WakeableWorker`` subclasses arq's ``Worker``: it replaces ``main`` (its start-up copied), ``start_jobs`` (the
claim redone in one script) and extends ``_release_sem_dec_counter_on_complete``; it calls ``run_job`` and
``_poll_iteration``, reads and writes a dozen attributes, wraps ``on_job_start``, and the enqueue functions write
jobs in arq's format under arq's key prefixes. None of that is arq's public API, so an upgrade of arq must be read
against queue.py. Here:

- the names queue.py imports from arq exist, and the key prefixes have the values the docs list as not namespaced;
- every ``self.X`` / ``super().X`` in ``WakeableWorker`` that is not its own exists on arq's ``Worker`` and is
  listed in ``RELIED_ON`` (found by reading queue.py, so a new use of arq's internals has to be listed too);
- what ``WakeableWorker`` shadows is exactly ``OVERRIDES``; the signatures it calls or overrides are unchanged;
- the source of every arq function whose steps queue.py copies or depends on has the fingerprint it was read at.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import textwrap
from pathlib import Path
from typing import Any

import arq
import arq.connections
import arq.constants
import arq.jobs
import arq.worker
import pytest
from arq import ArqRedis, Worker
from arq.worker import func

import bodhi_shared.queue
from bodhi_shared.contract import pack, unpack

QUEUE_PY = Path(bodhi_shared.queue.__file__)

# arq's Redis key names outside BODHI_REDIS_PREFIX (README, BODHI_REDIS_PREFIX; docs/ARCHITECTURE.md, Redis names).
CONSTANTS = {
    "job_key_prefix": "arq:job:",  # written by enqueue_job / enqueue_if_capacity, read by run_job
    "in_progress_key_prefix": "arq:in-progress:",  # written by the _CLAIM script
    "retry_key_prefix": "arq:retry:",  # written by run_job; deleted by _forget_arq_keys
    "result_key_prefix": "arq:result:",  # never written: keep_result=0
    "abort_jobs_ss": "arq:abort",  # never written: allow_abort_jobs is off
    "health_check_key_suffix": ":health-check",  # after the queue's name, so under the prefix
}

# arq's Worker attributes and methods that WakeableWorker uses without defining them, and what for.
RELIED_ON = {
    "_pool": "main creates the pool when none was given, as arq's main does",
    "redis_settings": "main: the pool's settings",
    "job_serializer": "main: the pool's serializer",
    "job_deserializer": "main: the pool's deserializer",
    "expires_extra_ms": "main: the pool's job expiry",
    "queue_name": "the sorted set it claims from, the wake and active-at keys",
    "ctx": "main sets ctx['redis'], as arq's main does",
    "on_startup": "main calls it, as arq's main does",
    "pool": "the property every Redis call goes through",
    "allow_pick_jobs": "the loop runs while it is set; stop_taking_jobs clears it (arq's own flag)",
    "poll_delay_s": "the safety-net poll interval",
    "job_counter": "start_jobs counts running jobs as arq's does",
    "max_jobs": "start_jobs and _round stop at it",
    "sem": "start_jobs acquires it as arq's does; _release_sem_dec_counter_on_complete releases it",
    "in_progress_timeout_s": "the TTL of the in-progress mark _CLAIM writes, as arq's start_jobs does",
    "loop": "start_jobs creates the job's task on it",
    "tasks": "start_jobs registers each job's task there, drain waits on them, _poll_iteration reaps them",
    "main_task": "set by arq's async_run; drain waits for the loop through it",
    "run_job": "start_jobs runs each claimed job with run_job(job_id, score)",
    "_poll_iteration": "_round: the timed poll (start due jobs, reap finished tasks, heart_beat)",
    "start_jobs": "_round starts the announced jobs; _poll_iteration calls the override",
    "_release_sem_dec_counter_on_complete": "extended: a job ending frees a slot, as in arq",
}
# Attributes the services use on a worker (local worker consumers, remote worker), not found by reading queue.py.
USED_BY_SERVICES = ("async_run", "close", "health_check_key", "tasks", "queue_name")

# What WakeableWorker defines that arq's Worker has too: each a deliberate override.
OVERRIDES = {"__init__", "main", "start_jobs", "_release_sem_dec_counter_on_complete", "on_job_start"}

# Parameters by name, as queue.py and the services call (or override) them.
SIGNATURES: dict[str, tuple[Any, list[str]]] = {
    "Worker.main": (Worker.main, ["self"]),
    "Worker.async_run": (Worker.async_run, ["self"]),
    "Worker.close": (Worker.close, ["self"]),
    "Worker.start_jobs": (Worker.start_jobs, ["self", "job_ids"]),
    "Worker.run_job": (Worker.run_job, ["self", "job_id", "score"]),
    "Worker._poll_iteration": (Worker._poll_iteration, ["self"]),
    "Worker._release_sem_dec_counter_on_complete": (Worker._release_sem_dec_counter_on_complete, ["self"]),
    "arq.jobs.serialize_job": (
        arq.jobs.serialize_job,
        ["function_name", "args", "kwargs", "job_try", "enqueue_time_ms", "serializer"],
    ),
    "arq.connections.RedisSettings.from_dsn": (arq.connections.RedisSettings.from_dsn, ["dsn"]),
}
KEYWORDS: dict[str, tuple[Any, set[str]]] = {
    "Worker.__init__": (
        Worker.__init__,
        {
            "functions",
            "queue_name",
            "redis_pool",
            "max_jobs",
            "poll_delay",
            "keep_result",
            "handle_signals",
            "on_startup",
            "on_shutdown",
            "ctx",
            "job_serializer",
            "job_deserializer",
        },
    ),
    "arq.create_pool": (
        arq.create_pool,
        {"job_serializer", "job_deserializer", "default_queue_name", "expires_extra_ms"},
    ),
    "arq.worker.func": (func, {"name", "max_tries", "timeout"}),
}

# sha256 (first 16 hex digits) of the dedented source of each arq function queue.py copies or depends on, as read
# for arq 0.28.0. A mismatch: read the new source against what the note says, adapt queue.py, update the digest.
FINGERPRINTS: dict[str, tuple[Any, str, str]] = {
    "Worker.main": (Worker.main, "0ecb21ce3368eccd", "WakeableWorker.main copies its start-up (pool, ctx, on_startup)"),
    "Worker.start_jobs": (
        Worker.start_jobs,
        "a38f54558b8cd0e0",
        "replaced by WakeableWorker.start_jobs: _CLAIM redoes its checks (in progress? still queued? due?), its "
        "in-progress mark and its counter/semaphore bookkeeping",
    ),
    "Worker._release_sem_dec_counter_on_complete": (
        Worker._release_sem_dec_counter_on_complete,
        "4a26f100774efecc",
        "extended by WakeableWorker: must still only decrement job_counter and release sem",
    ),
    "Worker.run_job": (
        Worker.run_job,
        "3ba41d10a68f7bcc",
        "reads arq:job:{id}, counts the try in arq:retry:{id}, then calls on_job_start(ctx) with ctx['job_id'] "
        "before the job: _forget_arq_keys deletes those keys there; max_tries=1 jobs are never retried",
    ),
    "Worker.finish_job": (
        Worker.finish_job,
        "93bb5bdcf65892e5",
        "the keys a finished job leaves: none outside the prefix with keep_result=0 (README, BODHI_REDIS_PREFIX)",
    ),
    "Worker.finish_failed_job": (
        Worker.finish_failed_job,
        "103418320f3ae56c",
        "the keys a failed job leaves: none outside the prefix with keep_result=0",
    ),
    "Worker._poll_iteration": (
        Worker._poll_iteration,
        "489ccd5a28868742",
        "_round calls it for the timed poll: it must start due jobs via start_jobs, reap self.tasks, heart_beat",
    ),
    "Worker.async_run": (
        Worker.async_run,
        "46cb47b608d32802",
        "must set main_task and await main(): drain and the services rely on both",
    ),
    "arq.jobs.serialize_job": (
        arq.jobs.serialize_job,
        "1fc854cc50e16e5c",
        "enqueue_job / enqueue_if_capacity / requeue_job write jobs in this format for run_job to read",
    ),
}


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(textwrap.dedent(inspect.getsource(obj)).encode()).hexdigest()[:16]


def wakeable_worker_class() -> ast.ClassDef:
    tree = ast.parse(QUEUE_PY.read_text())
    found = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "WakeableWorker"]
    assert found, f"no class WakeableWorker in {QUEUE_PY}: this test reads it"
    return found[0]


def _is_self_or_super(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id == "self"
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"


def attributes_used(cls: ast.ClassDef) -> set[str]:
    """Every ``self.X`` and ``super().X`` in the class, read or written."""
    return {node.attr for node in ast.walk(cls) if isinstance(node, ast.Attribute) and _is_self_or_super(node.value)}


def own_names(cls: ast.ClassDef) -> set[str]:
    """What the class defines: its methods and class attributes, and what its ``__init__`` assigns to ``self``."""
    names: set[str] = set()
    for node in cls.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
    init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    for assignment in ast.walk(init):
        targets: list[ast.expr] = []
        if isinstance(assignment, ast.Assign):
            targets = [
                t for target in assignment.targets for t in (target.elts if isinstance(target, ast.Tuple) else [target])
            ]
        elif isinstance(assignment, ast.AnnAssign | ast.AugAssign):
            targets = [assignment.target]
        names |= {t.attr for t in targets if isinstance(t, ast.Attribute) and _is_self_or_super(t.value)}
    return names


@pytest.fixture
async def plain_worker() -> Any:
    """arq's own Worker, built as the services build theirs (no Redis is contacted)."""

    async def job(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
        return None

    async def hook(ctx: dict[str, Any]) -> None:
        return None

    pool = ArqRedis(host="127.0.0.1")
    worker = Worker(
        functions=[func(job, name="job", max_tries=1, timeout=60)],
        queue_name="bodhitest:queue:internals",
        redis_pool=pool,
        max_jobs=2,
        poll_delay=0.5,
        keep_result=0,
        handle_signals=False,
        on_startup=hook,
        on_shutdown=hook,
        ctx={},
        job_serializer=pack,
        job_deserializer=unpack,
    )
    yield worker
    await pool.aclose()


def test_arq_is_the_pinned_minor() -> None:
    assert arq.VERSION.startswith("0.28."), f"arq {arq.VERSION}: queue.py was read against 0.28 (see this module)"


def test_the_names_queue_imports_from_arq_exist() -> None:
    imported = [
        (node.module, alias.name)
        for node in ast.walk(ast.parse(QUEUE_PY.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "arq"
        for alias in node.names
    ]
    assert imported, "queue.py imports nothing from arq any more: this test is out of date"
    missing = [f"{module}.{name}" for module, name in imported if not hasattr(importlib.import_module(module), name)]
    assert missing == [], f"arq no longer has {missing}, which queue.py imports"


def test_the_key_constants_have_the_documented_values() -> None:
    changed = {
        name: getattr(arq.constants, name, "<gone>")
        for name, value in CONSTANTS.items()
        if getattr(arq.constants, name, None) != value
    }
    assert changed == {}, (
        f"arq's key names changed: {changed} (was {CONSTANTS}); the README's BODHI_REDIS_PREFIX row, "
        "docs/ARCHITECTURE.md (Redis names) and the scripts in queue.py name the old ones"
    )


def test_what_wakeable_worker_uses_of_arqs_worker_exists_and_is_listed(plain_worker: Worker) -> None:
    cls = wakeable_worker_class()
    arq_names = set(dir(Worker)) | set(vars(plain_worker))
    own = own_names(cls) - arq_names
    relied = attributes_used(cls) - own
    gone = sorted(name for name in relied if name not in arq_names)
    assert gone == [], f"WakeableWorker uses {gone}, which arq's Worker no longer has"
    unlisted = sorted(relied - set(RELIED_ON) - OVERRIDES)
    assert unlisted == [], f"queue.py now relies on arq's Worker.{unlisted}: add each to RELIED_ON, saying why"
    shadowed = own_names(cls) & arq_names
    assert shadowed == OVERRIDES, (
        f"WakeableWorker overrides {sorted(shadowed - OVERRIDES)} of arq's Worker that are not in OVERRIDES, "
        f"or no longer overrides {sorted(OVERRIDES - shadowed)} (arq renamed or dropped it?)"
    )


def test_every_listed_attribute_is_still_on_arqs_worker(plain_worker: Worker) -> None:
    names = set(RELIED_ON) | set(USED_BY_SERVICES) | (OVERRIDES - {"__init__"})
    gone = sorted(name for name in names if not hasattr(plain_worker, name))
    assert gone == [], f"arq's Worker no longer has {gone}"
    assert isinstance(inspect.getattr_static(Worker, "pool"), property), "Worker.pool is no longer a property"
    assert plain_worker.health_check_key == "bodhitest:queue:internals" + CONSTANTS["health_check_key_suffix"]
    assert plain_worker.allow_pick_jobs is True
    assert plain_worker.main_task is None  # set by async_run
    assert plain_worker.in_progress_timeout_s == 60 + 10  # the function's timeout + 10 s, as _CLAIM's TTL assumes


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_the_signatures_queue_calls_or_overrides_are_unchanged(name: str) -> None:
    function, expected = SIGNATURES[name]
    found = list(inspect.signature(function).parameters)
    assert found == expected, f"arq's {name} now takes {found}, not {expected}"


@pytest.mark.parametrize("name", sorted(KEYWORDS))
def test_the_keywords_queue_and_the_services_pass_are_accepted(name: str) -> None:
    function, expected = KEYWORDS[name]
    missing = sorted(expected - set(inspect.signature(function).parameters))
    assert missing == [], f"arq's {name} no longer takes {missing}"


@pytest.mark.parametrize("name", sorted(FINGERPRINTS))
def test_the_arq_code_queue_copies_or_depends_on_is_unchanged(name: str) -> None:
    function, expected, why = FINGERPRINTS[name]
    found = fingerprint(function)
    assert found == expected, (
        f"arq's {name} changed (source digest {found}, read at {expected}). queue.py depends on it: {why}. "
        "Re-read it against bodhi_shared/queue.py, adapt queue.py, then update FINGERPRINTS here."
    )


def test_a_job_serialized_as_queue_writes_it_reads_back_as_run_job_expects() -> None:
    job = arq.jobs.serialize_job("inference", ({"k": "v"},), {}, None, 1234, serializer=pack)
    function, args, kwargs, job_try, enqueued_ms = arq.jobs.deserialize_job_raw(job, deserializer=unpack)
    read: tuple[object, ...] = (function, list(args), kwargs, job_try, enqueued_ms)
    assert read == ("inference", [{"k": "v"}], {}, None, 1234)


def test_run_job_hands_on_job_start_the_job_id() -> None:
    # _forget_arq_keys reads ctx["job_id"]; the digest above pins the rest of run_job.
    source = inspect.getsource(Worker.run_job)
    needs = "WakeableWorker._forget_arq_keys needs it"
    assert "'job_id': job_id" in source, f"arq's run_job no longer puts job_id in the job's ctx: {needs}"
    assert "await self.on_job_start(ctx)" in source, f"arq's run_job no longer calls on_job_start(ctx): {needs}"
