"""Recording one usage event per request: durably, and off the answer's path.

The request's `finally` appends one JSON line to this process's spool segment (a plain `write`
to an O_APPEND file: microseconds, and the line survives a crash of the process). A writer thread
drains the segment into the database in batches (`bulk_create(ignore_conflicts=True)` on the
unique request id, so a replay can never record an event twice) and remembers how far it got.
When the database is down, lines wait in the spool and are replayed when it returns. Segments
left by a dead process (its flock released) are claimed and replayed by a live one.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

logger = logging.getLogger(__name__)

BATCH = 500
WRITE_INTERVAL = 0.2  # seconds between the writer's rounds when traffic does not fill a batch
SEGMENT_MAX_BYTES = 16 * 1024 * 1024
ORPHAN_SCAN_SECONDS = 30.0

_FIELDS = (
    "client_request_id", "model_slug", "route_id", "route_name", "provider", "endpoint_type", "stream",
    "outcome", "http_status", "service_tier", "input_tokens", "cached_input_tokens", "cache_write_tokens",
    "output_tokens", "reasoning_tokens", "estimated", "attempts", "latency_ms", "first_byte_ms", "error_code",
)  # fmt: skip


class Segment:
    """One spool file, flock-ed by its owner for as long as the owner lives."""

    def __init__(self, path: Path, *, create: bool) -> None:
        self.path = path
        flags = os.O_RDWR | os.O_APPEND | (os.O_CREAT if create else 0)
        self.fd = os.open(path, flags, 0o600)
        self.offset_path = path.with_suffix(".offset")

    def try_lock(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def read_offset(self) -> int:
        try:
            return int(self.offset_path.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def write_offset(self, offset: int) -> None:
        tmp = self.offset_path.with_suffix(".offset.tmp")
        tmp.write_text(str(offset))
        os.replace(tmp, self.offset_path)

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def read_from(self, offset: int, limit: int = 4 * 1024 * 1024) -> bytes:
        return os.pread(self.fd, limit, offset)

    def remove(self) -> None:
        os.close(self.fd)
        for path in (self.path, self.offset_path):
            path.unlink(missing_ok=True)


def _to_model_kwargs(record: dict[str, Any]) -> dict[str, Any]:
    kwargs = {name: record[name] for name in _FIELDS if name in record}
    kwargs["request_id"] = uuid.UUID(record["request_id"])
    kwargs["created_at"] = datetime.fromtimestamp(record["created_at"], tz=UTC)
    kwargs["workspace_id"] = record["workspace_id"]
    kwargs["api_key_id"] = record.get("api_key_id")
    return kwargs


def write_batch(records: list[dict[str, Any]]) -> list[str]:
    """Insert a batch idempotently; returns the request ids that are now in the database."""
    from django.db import IntegrityError, transaction

    from billing.models import UsageEvent
    from workspaces.models import ApiKey

    objects = [UsageEvent(**_to_model_kwargs(r)) for r in records]
    try:
        with transaction.atomic():
            UsageEvent.objects.bulk_create(objects, ignore_conflicts=True, batch_size=BATCH)
    except IntegrityError:
        # A row refers to something that no longer exists (a deleted key): insert one by one,
        # dropping only the dangling key reference, never the event.
        for obj in objects:
            try:
                with transaction.atomic():
                    UsageEvent.objects.bulk_create([obj], ignore_conflicts=True)
            except IntegrityError:
                logger.warning(
                    "usage writer: API key %s no longer exists; event recorded without it",
                    obj.api_key_id,
                    extra={"request_id": str(obj.request_id)},  # this thread has no request of its own
                )
                obj.api_key_id = None
                with transaction.atomic():
                    UsageEvent.objects.bulk_create([obj], ignore_conflicts=True)
    last_used: dict[int, datetime] = {}
    for obj in objects:
        if obj.api_key_id and (obj.api_key_id not in last_used or obj.created_at > last_used[obj.api_key_id]):
            last_used[obj.api_key_id] = obj.created_at
    for key_id, used_at in last_used.items():
        # A queryset update sends no signal: last use does not invalidate the gateway's snapshot.
        ApiKey.objects.filter(id=key_id).exclude(last_used_at__gte=used_at).update(last_used_at=used_at)
    return [r["request_id"] for r in records]


class UsageRecorder:
    def __init__(self, directory: Path, *, on_recorded: Callable[[list[str]], None] | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.on_recorded = on_recorded
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._appended = 0  # lines appended by this process
        self._stored = 0  # of those, lines known to be in the database
        self._segment = self._new_segment()
        self._read_offset = 0
        self._retired: list[Segment] = []
        self._thread = threading.Thread(target=self._run, name="omixa-usage-writer", daemon=True)
        self._backoff = 0.0
        self._last_orphan_scan = 0.0

    def _new_segment(self) -> Segment:
        name = f"usage-{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
        segment = Segment(self.directory / name, create=True)
        segment.try_lock()
        return segment

    def start(self) -> None:
        self._thread.start()

    # ---- the request's side: called in `finally`, must not block --------------------------
    def record(self, event: dict[str, Any]) -> None:
        line = orjson.dumps(event) + b"\n"
        with self._lock:
            os.write(self._segment.fd, line)
            self._appended += 1
            pending = self._appended - self._stored
        # Waking the writer thread for every event hands it the GIL on every request; it wakes on
        # its own every WRITE_INTERVAL, and early only when a full batch is waiting.
        if pending >= BATCH:
            self._wake.set()

    # ---- the writer thread ----------------------------------------------------------------------
    def _run(self) -> None:
        self._replay_orphans()
        while not self._stopping.is_set():
            self._wake.wait(timeout=WRITE_INTERVAL)
            self._wake.clear()
            if self._backoff and time.monotonic() < self._backoff:
                continue
            self._drain_once()
            if time.monotonic() - self._last_orphan_scan > ORPHAN_SCAN_SECONDS:
                self._replay_orphans()
        self._drain_once()
        from django.db import connections

        connections.close_all()  # this thread's own connections: nobody else can close them

    def _drain_once(self) -> None:
        from django.db import close_old_connections, connection, reset_queries

        try:
            # With DEBUG on, Django keeps every query of this long-lived thread: drop them each round.
            reset_queries()
            close_old_connections()
            while True:
                with self._lock:
                    segment = self._segment
                moved = self._drain_segment(segment, own=True)
                if not moved:
                    break
            if self._segment.size() >= SEGMENT_MAX_BYTES and self._read_offset >= self._segment.size():
                self._rotate()
            self._backoff = 0.0
        except Exception:
            logger.exception("usage writer: database write failed; events stay spooled and will be replayed")
            connection.close()
            self._backoff = time.monotonic() + 2.0

    def _drain_segment(self, segment: Segment, *, own: bool) -> int:
        offset = self._read_offset if own else segment.read_offset()
        data = segment.read_from(offset)
        end = data.rfind(b"\n")
        if end < 0:
            return 0
        lines = data[: end + 1].splitlines()
        records = []
        for line in lines:
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                logger.error("usage writer: unreadable spool line in %s kept aside", segment.path.name)
                self._dead_letter(line)
        stored = write_batch(records) if records else []
        new_offset = offset + end + 1
        segment.write_offset(new_offset)
        if own:
            self._read_offset = new_offset
        if stored and self.on_recorded is not None:
            try:
                self.on_recorded(stored)
            except Exception:
                logger.exception("usage writer: scheduling pricing failed; the pricing sweep will catch up")
        if own:
            # Counted once pricing was handed on too (eager: done), so `flush` means "stored and priced".
            with self._cond:
                self._stored += len(lines)
                self._cond.notify_all()
        return len(lines)

    def _rotate(self) -> None:
        with self._lock:
            old, self._segment = self._segment, self._new_segment()
        self._drain_segment(old, own=True)
        old.remove()
        self._read_offset = 0

    def _replay_orphans(self) -> None:
        from django.db import close_old_connections

        self._last_orphan_scan = time.monotonic()
        for path in sorted(self.directory.glob("usage-*.jsonl")):
            if path == self._segment.path:
                continue
            try:
                segment = Segment(path, create=False)
            except FileNotFoundError:
                continue
            if not segment.try_lock():
                os.close(segment.fd)  # a live process owns it
                continue
            try:
                close_old_connections()
                while self._drain_segment(segment, own=False):
                    pass
                if segment.read_offset() >= segment.size():
                    logger.info("usage writer: replayed spool segment %s of a stopped process", path.name)
                    segment.remove()
                else:
                    os.close(segment.fd)
            except Exception:
                logger.exception("usage writer: replaying %s failed; will retry", path.name)
                os.close(segment.fd)

    def _dead_letter(self, line: bytes) -> None:
        dead = self.directory / "dead-letter.jsonl"
        with open(dead, "ab") as handle:
            handle.write(line + b"\n")

    # ---- control ------------------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event recorded so far by this process is in the database, and its pricing
        scheduled (with eager Celery: done)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._stored < self._appended:
                self._wake.set()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(timeout=min(remaining, 0.1))
        return True

    def stop(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)
