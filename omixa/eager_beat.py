"""The beat schedule, run in process when there is no broker (the embedded default).

With a broker, `celery beat` sends CELERY_BEAT_SCHEDULE's tasks to the workers. Without one, tasks
run eagerly and nobody runs beat: pending usage would never be swept and draft invoices never
rolled up. So the gateway process runs the same schedule itself, in one daemon thread, calling
each task in place. The tasks are idempotent (SKIP LOCKED pricing, locked roll-up), so several
gateway workers each running it is safe.
"""

from __future__ import annotations

import importlib
import logging
import threading
from datetime import datetime

from celery.schedules import schedule as every

logger = logging.getLogger(__name__)


class EagerBeat:
    def __init__(self, app, *, tick: float = 1.0) -> None:
        self.app = app
        self.tick = tick
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="omixa-eager-beat", daemon=True)
        self._last_run: dict[str, datetime] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _entries(self) -> list[tuple[str, str, object]]:
        entries = []
        for name, entry in (self.app.conf.beat_schedule or {}).items():
            # Celery discovers task modules lazily; import the entry's own module (not the loader's
            # import_default_modules, whose Django fix-up would run django.setup() all over again).
            importlib.import_module(entry["task"].rpartition(".")[0])
            sched = entry["schedule"]
            if isinstance(sched, int | float):
                sched = every(sched, app=self.app)
            entries.append((name, entry["task"], sched))
        return entries

    def run_due(self) -> list[str]:
        """Run every entry that is due now; return the names that ran (and did not fail)."""
        ran = []
        now = datetime.now().astimezone()
        for name, task_name, sched in self._entries():
            last = self._last_run.setdefault(name, now)  # first due one interval after start, as beat does
            due, _ = sched.is_due(last)
            if not due:
                continue
            self._last_run[name] = now
            try:
                self.app.tasks[task_name].apply()
                ran.append(name)
            except Exception:
                logger.exception("eager beat: %s failed; it runs again at its next time", name)
        return ran

    def _run(self) -> None:
        from django.db import close_old_connections, connections

        while not self._stopping.wait(self.tick):
            close_old_connections()
            self.run_due()
        connections.close_all()
