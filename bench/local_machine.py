"""Other work on the machine, which disturbs every local benchmark's numbers (each target uses all the cores):
``Watch`` waits for quiet before each measurement and measures again when it was not."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

if __package__:  # imported as `bench.local_machine`: bench/ is not on sys.path
    from bench import common
else:  # run as a script, or imported by one: bench/ is the script directory
    import common  # puts the repository root on sys.path, for `tests.support`

if __package__:
    from bench.local_gateway import Gateway, concurrent, redis_cpu_seconds
    from bench.local_streams import Stream
else:
    from local_gateway import Gateway, concurrent, redis_cpu_seconds
    from local_streams import Stream

T = TypeVar("T")
log = common.logger("local-bench")


def machine_cpu() -> tuple[float, float]:
    """CPU seconds since boot of the whole machine: busy (user, nice, system, irq, softirq) and steal."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq) / common.CLOCK_TICKS, steal / common.CLOCK_TICKS


QUIET = 0.05  # cores other processes may use for the machine to count as idle
DISTURBED = 0.1  # cores other processes used during a measurement that make it count as disturbed
EXTRA_BUDGET = 240.0  # seconds a run may spend waiting for quiet and measuring again, in all
RETRIES = 3  # measurements again of one disturbed cell, at most


class Watch:
    """Other work on the machine disturbs every number here (each target uses all the cores): before each
    measurement, wait until other processes are idle; measure again when they were not, within a time budget.

    Ours: this process, the gateway's and the server's processes, and Redis (its INFO). Postgres backends count as
    others (the gateway barely uses Postgres while streaming).
    """

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self._pids = pids
        self.extra: list[int] = []  # more of our processes, for a while
        self.wall = self.other = self.steal = 0.0
        self.waited = 0.0
        self.retried: list[str] = []
        self.disturbed: list[str] = []
        self._extra_until = time.monotonic() + EXTRA_BUDGET

    def _sample(self) -> tuple[float, float, float, float]:
        busy, steal = machine_cpu()
        return busy, steal, common.cpu_seconds([*self._pids(), *self.extra]) + redis_cpu_seconds(), time.perf_counter()

    def _other(self, before: tuple[float, float, float, float]) -> tuple[float, float, float]:
        """(other processes' CPU seconds, steal seconds, wall seconds) since ``before``."""
        after = self._sample()
        return max(0.0, (after[0] - before[0]) - (after[2] - before[2])), after[1] - before[1], after[3] - before[3]

    def wait_quiet(self) -> None:
        started = time.monotonic()
        while time.monotonic() < self._extra_until:
            before = self._sample()
            time.sleep(1)
            other, _, wall = self._other(before)
            if other / wall <= QUIET:
                break
        self.waited += time.monotonic() - started

    def streams(
        self, label: str, gateway: Gateway, alias: str, count: int, *, max_tokens: int, first_index: int, budget: float
    ) -> tuple[list[Stream], float]:
        """``count`` streams of ``alias`` sent at once through ``gateway``, measured by ``run``: the streams (each
        checked to be whole) and the wall time until the last ended. Every gateway process must still be alive."""

        def timed(attempt: int) -> tuple[list[Stream], float]:
            started = time.perf_counter()
            streams = concurrent(
                gateway, alias, count, max_tokens=max_tokens, first_index=first_index + 20 * attempt, budget=budget
            )
            return streams, max(stream.end for stream in streams) - started

        streams, wall = self.run(label, timed)
        for stream in streams:
            stream.check(max_tokens, label)
        for child in gateway.processes:
            child.check_alive()
        return streams, wall

    def run(self, label: str, call: Callable[[int], T]) -> T:
        """``call(attempt)`` measured when the machine is quiet; measured again (at most ``RETRIES`` times) if it was
        not. Each attempt must use prompts of its own: a repeated prompt would be answered from the KV cache."""
        for attempt in range(RETRIES + 1):
            self.wait_quiet()
            before = self._sample()
            result = call(attempt)
            other, steal, wall = self._other(before)
            cores = other / wall
            if cores <= DISTURBED or attempt == RETRIES or time.monotonic() >= self._extra_until:
                self.wall, self.other, self.steal = self.wall + wall, self.other + other, self.steal + steal
                if cores > DISTURBED:
                    self.disturbed.append(f"{label} ({cores:.2f} cores)")
                    log(f"{label}: other processes used {cores:.2f} cores meanwhile; kept, marked as disturbed")
                return result
            self.retried.append(label)
            log(f"{label}: other processes used {cores:.2f} cores meanwhile; measuring again")
        raise AssertionError("unreachable")

    def summary(self) -> str:
        if not self.wall:
            return "nothing measured"
        line = (
            f"other processes used {self.other:.1f} CPU-seconds during the {self.wall:.0f} s of the measurements "
            f"kept ({self.other / self.wall:.3f} cores on average; steal {self.steal:.1f} s); "
            f"{self.waited:.0f} s spent waiting for other work to end; {len(self.retried)} measurements taken "
            f"again because other processes used more than {DISTURBED:g} cores meanwhile"
        )
        if self.disturbed:
            line += "; still disturbed when kept: " + "; ".join(self.disturbed)
        return line
