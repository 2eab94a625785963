"""Parallel ingestion of a large events file (``ltv-db ingest events FILE --jobs N``).

One backend validates and loads about 45,000 events a second, on one core; the rest of the
machine sits idle. With ``jobs`` > 1 the file is cut into chunks of whole lines (up to
:data:`CHUNK_BYTES` each, smaller towards the end) and ``jobs`` connections load them side by
side, each chunk in its own transaction, through exactly the single-batch path of :mod:`ltv_db.ingest` (the same
staging SQL, checks and reasons, line numbers counted from the start of the file).

What changes against one transaction per file:

- **Chunks commit one by one.** The batch row (``ltv.ingest_batches``) is committed first; each
  chunk adds its counts to it as it commits; the file's sha256 and ``finished_at`` are set
  when every chunk has landed. If a chunk fails, the chunks that committed stay (each is
  whole: its good rows, its rejects and its counts), the batch stays unfinished, and
  :class:`PartialBatchError` says so. Re-running the file loads the rest: the events that
  landed are then duplicates. Nothing is lost and nothing is loaded twice.
- **A key repeated in two chunks** is still loaded once and the other line rejected as a
  duplicate in the file (either line may win, as in one transaction, where keys are claimed in
  key order), but the reason names the event rather than the line. When the file is sent
  again, each chunk sees its copy as an identical re-send: two duplicates, where one
  transaction counts a duplicate and a repeat.
- **Partitions** a chunk needs are created on the coordinating connection and committed at
  once, so that their ACCESS EXCLUSIVE lock on ``ltv.revenue_events`` lasts milliseconds
  instead of the rest of a chunk's transaction (which would stall every other chunk).

Locks between the chunks cannot form a cycle: each chunk takes, in this order, ledger keys
(in key order), then its customers' live-statistics rows (in customer order, in the insert's
trigger), then the batch row, and commits. A chunk can wait for another's keys or statistics
rows, never the other way round at the same time.

Memory stays flat: the reader hands each chunk its 1 MB blocks through a small bounded queue,
so at most ``jobs`` × :data:`QUEUED_BLOCKS` blocks are in flight.
"""

from __future__ import annotations

import itertools
import logging
import queue
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import psycopg

from ltv_db.ingest import (
    CHUNK_SIZE,
    COPY_RAW,
    Batch,
    FileDigest,
    IngestError,
    IngestInvariantError,
    IngestResult,
    Layout,
    Outcome,
    batch_result,
    copy_ready,
    create_partitions,
    entity_spec,
    file_chunks,
    new_batch,
    read_file_header,
    record_batch,
    stage_and_load,
    start_batch_transaction,
    whole_line_blocks,
)

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 << 20  # ≈ 660,000 events of the demo marketplace (32 MB: 3-15 % slower, 128 MB: the same)
QUEUED_BLOCKS = 4  # blocks waiting for a chunk's COPY
POLL_SECONDS = 0.2  # how often a blocked reader or COPY looks whether another thread failed


class ChunkStopped(IngestError):
    """A chunk gave up because another one failed (not the cause worth reporting)."""


class PartialBatchError(IngestError):
    """A chunk failed after others had committed: the batch is unfinished, and re-running the
    file loads the rest (what landed counts as duplicates)."""


@dataclass
class Chunk:
    """Consecutive whole lines of the file: the first one's number, then the blocks as the
    reader produces them (``None`` ends the chunk)."""

    first_line: int
    blocks: queue.Queue[bytes | None] = field(default_factory=lambda: queue.Queue(QUEUED_BLOCKS))


class Loader:
    """The chunks' shared state: the batch, one connection per worker, the first failure."""

    def __init__(self, coordinator: psycopg.Connection, connect: Callable[[], psycopg.Connection], jobs: int,
                 batch_id: int, file_name: str, layout: Layout) -> None:
        self.coordinator = coordinator
        self.batch = Batch(batch_id, file_name, layout, create_partitions=self.create_partitions)
        self.failed = threading.Event()
        self.errors: list[BaseException] = []
        self.outcome = Outcome()
        self.rows_read = 0
        self.chunks_committed = 0
        self._lock = threading.Lock()
        self._coordinator_lock = threading.Lock()
        self._idle: queue.Queue[psycopg.Connection] = queue.Queue()
        self._connections: list[psycopg.Connection] = []
        try:
            for _ in range(jobs):
                self._connections.append(connect())
        except BaseException:
            self.close()
            raise
        for conn in self._connections:
            self._idle.put(conn)

    def close(self) -> None:
        for conn in self._connections:
            conn.close()

    def create_partitions(self, days: list[date]) -> None:
        # Committed at once: the partitions' ACCESS EXCLUSIVE lock must not outlive this call.
        # One transaction at a time on the one connection (psycopg would nest a second thread's).
        with self._coordinator_lock, self.coordinator.transaction():
            create_partitions(self.coordinator, days)

    def put(self, chunk: Chunk, block: bytes | None) -> bool:
        """Hand a block to a chunk; False when some chunk failed (stop reading)."""
        while not self.failed.is_set():
            try:
                chunk.blocks.put(block, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def blocks(self, chunk: Chunk) -> Iterator[bytes]:
        while True:
            try:
                block = chunk.blocks.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if self.failed.is_set():
                    raise ChunkStopped("stopped: another chunk failed") from None
                continue
            if block is None:
                return
            yield block

    def load(self, chunk: Chunk) -> None:
        """One chunk in one transaction, on an idle worker connection (run in a worker thread)."""
        if self.failed.is_set():
            return
        spec = entity_spec("events")
        conn = self._idle.get()
        try:
            with conn.transaction(), conn.cursor() as cur:
                start_batch_transaction(cur, chunk.first_line)
                with cur.copy(COPY_RAW) as copy:
                    for block in self.blocks(chunk):
                        copy.write(block)
                rows_read = cur.rowcount - (1 if chunk.first_line == 1 else 0)  # line 1 is the header
                outcome = stage_and_load(cur, spec, self.batch, rows_read)
                record_batch(cur, self.batch.batch_id, rows_read, outcome)
            log.debug("chunk from line %s: %s lines committed", chunk.first_line, rows_read)
            with self._lock:
                self.rows_read += rows_read
                self.chunks_committed += 1
                self.outcome.add(outcome)
        except BaseException as exc:
            with self._lock:
                self.errors.append(exc)
            self.failed.set()
        finally:
            self._idle.put(conn)


def ingest_events_parallel(
    conn: psycopg.Connection,
    path: Path,
    *,
    jobs: int,
    connect: Callable[[], psycopg.Connection],
    progress: Callable[[int], None] | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> IngestResult:
    """Ingest an events file with ``jobs`` connections from ``connect``, a chunk of about
    ``chunk_bytes`` per transaction (see the module docstring). ``conn`` must not be inside a
    transaction: it commits the batch row first and creates partitions for the chunks."""
    spec = entity_spec("events")
    digest = FileDigest(progress)
    raw_blocks = whole_line_blocks(file_chunks(path, min(CHUNK_SIZE, chunk_bytes)), digest)
    layout, ignored, first = read_file_header(spec, raw_blocks)
    blocks = (copy_ready(block) for block in itertools.chain([first], raw_blocks))
    with conn.transaction(), conn.cursor() as cur:
        batch_id = new_batch(cur, spec, str(path))
    loader = Loader(conn, connect, jobs, batch_id, str(path), layout)
    lines = 0
    try:
        loader.create_partitions(sampled_months(path, layout.positions["occurred_at"]))
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="ingest-chunk") as pool:
            try:
                lines = read_chunks(blocks, loader, pool, chunk_bytes, path.stat().st_size, jobs)
            except BaseException as exc:  # the file could not be read, or Ctrl-C: stop the chunks
                loader.errors.append(exc)
                loader.failed.set()
    finally:
        loader.close()
    if loader.errors:
        raise batch_failure(loader, batch_id)
    result = batch_result(spec, loader.batch, loader.rows_read, loader.outcome, ignored, digest.hexdigest())
    if result.rows_read != lines - 1:
        raise IngestInvariantError(f"events: {lines - 1} lines read but {result.rows_read} in the committed chunks "
                                   f"(batch {batch_id} left unfinished)")
    with conn.transaction(), conn.cursor() as cur:
        record_batch(cur, batch_id, 0, Outcome(), finished_sha256=result.sha256)
    return result


MONTH_PREFIX = re.compile(rb"(\d{4})-(\d{2})-")


def sampled_months(path: Path, occurred_at: int) -> list[date]:
    """The months of the first and last whole line of every 1 MB of the file, read in a quick
    pass before the chunks start. Creating their partitions up front matters: a partition's
    ACCESS EXCLUSIVE lock waits until every chunk that is inserting commits, so a chunk that
    creates one stalls for as long as the other chunk runs. A file in time order has every
    month of any size sampled; a month the samples miss is created by its chunk, as usual.
    Unparsable lines are skipped (staging judges them); the months are only a hint."""
    months: set[date] = set()
    for block in file_chunks(path):
        lines = block.split(b"\n")
        for line in (lines[1], lines[-2]) if len(lines) > 2 else ():
            fields = line.split(b",")
            match = MONTH_PREFIX.match(fields[occurred_at - 1]) if len(fields) >= occurred_at else None
            if match and int(match[1]) >= 1 and 1 <= int(match[2]) <= 12:
                months.add(date(int(match[1]), int(match[2]), 1))
    return sorted(months)


def read_chunks(blocks: Iterator[bytes], loader: Loader, pool: ThreadPoolExecutor,
                chunk_bytes: int, file_bytes: int, jobs: int) -> int:
    """Cut the file into chunks, hand each to the pool as it starts; the number of lines read.

    Chunks shrink towards the end of the file (guided scheduling): each is at most a
    ``2 × jobs``-th of what is left, down to an eighth of ``chunk_bytes``, so that the
    connections run out of work at about the same time instead of one of them finishing a
    full-size last chunk alone."""
    line_no = 1  # the number of the next chunk's first line
    position = 0  # bytes handed out so far
    chunk: Chunk | None = None
    size = target = 0
    for block in blocks:
        if chunk is None:
            chunk = Chunk(first_line=line_no)
            pool.submit(loader.load, chunk)
            size = 0
            target = max(chunk_bytes // 8, min(chunk_bytes, (file_bytes - position) // (2 * jobs)))
        if not loader.put(chunk, block):
            return line_no - 1
        line_no += block.count(b"\n")
        size += len(block)
        position += len(block)
        if size >= target:
            loader.put(chunk, None)
            chunk = None
    if chunk is not None:
        loader.put(chunk, None)
    return line_no - 1


def batch_failure(loader: Loader, batch_id: int) -> IngestError:
    """The first real error (not a chunk stopped because of it), worded for the user."""
    cause = next((e for e in loader.errors if not isinstance(e, ChunkStopped)), loader.errors[0])
    if isinstance(cause, KeyboardInterrupt):
        raise cause
    if not loader.chunks_committed:
        error = IngestError(f"nothing was loaded: {cause}")
    else:
        error = PartialBatchError(
            f"{cause} — {loader.chunks_committed} chunk(s) of batch {batch_id} committed "
            f"({loader.rows_read:,} lines); the batch is unfinished. Re-run the file to load the rest: "
            "what landed counts as duplicates."
        )
    error.__cause__ = cause
    return error
