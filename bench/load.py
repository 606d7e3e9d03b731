"""Load shapes for the HTTP benchmarks, each reporting what the load generator itself cost.

- `open_loop(rate, seconds, call)`: start `call()` every 1/rate s whatever the answers, as
  independent clients would; `lag` is how late each start was against its schedule (a client that
  cannot keep up shows here, not as server latency).
- `closed_loop(concurrency, seconds, call)`: `concurrency` clients each sending the next request
  as soon as the previous one is answered (throughput at saturation; latency is then queueing).

Both give the client's own CPU (time.process_time of this process over the phase) and the wall time."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Phase:
    results: list = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    wall: float = 0.0
    span: float = 0.0  # open loop: from the first start to the last (the rate actually offered is n / span)
    client_cpu: float = 0.0  # seconds of this process's CPU over the phase

    def client_ms_per_request(self) -> float:
        return self.client_cpu * 1000 / max(len(self.results), 1)

    def client_share(self) -> float:
        """The client's CPU as a fraction of one core."""
        return self.client_cpu / self.wall if self.wall else 0.0


async def open_loop(rate: float, seconds: float, call: Callable[[], Awaitable]) -> Phase:
    phase, tasks = Phase(), []
    loop = asyncio.get_running_loop()
    cpu0, start = time.process_time(), time.perf_counter()
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        phase.lag_ms.append((time.perf_counter() - due) * 1000)
        tasks.append(loop.create_task(call()))
    phase.span = time.perf_counter() - start
    phase.results = list(await asyncio.gather(*tasks))
    phase.wall, phase.client_cpu = time.perf_counter() - start, time.process_time() - cpu0
    return phase


async def closed_loop(
    concurrency: int,
    seconds: float,
    call: Callable[[int], Awaitable],
    warmup: float = 1.0,
    on_measure: Callable[[], Awaitable] | None = None,
) -> Phase:
    """Each of `concurrency` clients calls `call(client_index)` back to back for warmup + seconds;
    only answers to requests started after the warm-up are kept (`on_measure` runs then)."""
    phase = Phase()
    t_begin = time.perf_counter()
    t_measure, t_end = t_begin + warmup, t_begin + warmup + seconds
    marks: dict[str, float] = {}

    async def client(k: int) -> None:
        while (now := time.perf_counter()) < t_end:
            result = await call(k)
            if now >= t_measure:
                phase.results.append(result)

    async def mark() -> None:
        await asyncio.sleep(max(t_measure - time.perf_counter(), 0))
        if on_measure is not None:
            await on_measure()
        marks["cpu"], marks["t"] = time.process_time(), time.perf_counter()

    marker = asyncio.create_task(mark())
    await asyncio.gather(*(client(k) for k in range(concurrency)))
    await marker
    phase.wall, phase.client_cpu = time.perf_counter() - marks["t"], time.process_time() - marks["cpu"]
    return phase
