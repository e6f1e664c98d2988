"""The Vanta simulator running in a thread of this process, on its own event loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from vanta_vuln_sync.simulator import Simulator, SimulatorConfig


class SimulatorThread:
    """Starts `Simulator(config)` on loopback in a background thread; `stop()` closes it."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vanta-simulator", daemon=True)
        self._simulator: Simulator | None = None

    def start(self, timeout: float = 60.0) -> Simulator:
        """Start the loop and the simulator (generating its dataset); returns it once it listens."""
        self._thread.start()
        simulator = Simulator(self.config)
        asyncio.run_coroutine_threadsafe(simulator.start(), self._loop).result(timeout)
        self._simulator = simulator
        return simulator

    @property
    def simulator(self) -> Simulator:
        assert self._simulator is not None, "start() first"
        return self._simulator

    def counters(self) -> dict[str, Any]:
        """The simulator's counters, read on its own loop (consistent, no torn reads)."""

        async def read() -> dict[str, Any]:
            return self.simulator.counters.as_dict()

        return asyncio.run_coroutine_threadsafe(read(), self._loop).result(5.0)

    def stop(self) -> None:
        """Close the simulator and end its loop and thread."""
        if self._simulator is not None:
            asyncio.run_coroutine_threadsafe(self._simulator.close(), self._loop).result(10.0)
            self._simulator = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)
        if not self._loop.is_closed():
            self._loop.close()
