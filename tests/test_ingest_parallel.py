"""Parallel ingestion of an events file (ltv_db.ingest_parallel, `ltv-db ingest events --jobs N`)
against a real PostgreSQL 15: chunks of a file in concurrent transactions must land exactly what
one transaction lands — the same events, counts, rejects and line numbers — and a run that
fails half-way must lose nothing and load nothing twice when the file is run again.

The chunks here are tiny (a few KB) so that a few thousand lines make a dozen chunks.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path

import psycopg
import pytest

from ltv_db import ingest_parallel
from ltv_db.ingest import IngestResult, ingest_stream
from tests.conftest import run_cli
from tests.test_ingest import EVENT_HEADER, count, event, rejects, setup_marketplace, write

CHUNK = 6_000  # bytes: a chunk is one or two blocks of ~100 lines
LINES = 3_000
REPEATED_KEYS = ((1_498, 1_501), (12, 2_900))  # data lines: in one chunk, and far apart in two


def event_lines() -> list[str]:
    """Good events over twelve months, with bad lines, a key repeated inside one chunk and a key
    repeated in another chunk. The file is one 1 MB sample, so the pass before the chunks
    creates the partitions of its first and last line's months and the chunks the other ten."""
    rows = []
    for i in range(1, LINES + 1):
        month = 1 + i % 12
        at = f"2023-{month:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z"
        customer = ("c1", "c2", "c3")[i % 3]
        rows.append(event(f"e{i}", customer=customer, at=at, amount=f"{i % 97 + 1}.{i % 100:02d}"))
    rows[99] = event("e99", customer="nobody")  # unknown customer
    rows[499] = event("e500", amount="12.345")  # over-precise
    rows[999] = "stripe,e1000,c1"  # wrong column count
    for first, second in REPEATED_KEYS:
        rows[second - 1] = rows[first - 1]
    return rows


def table_contents(db: psycopg.Connection) -> list[tuple[object, ...]]:
    return db.execute(
        "SELECT source, external_id, customer_id, occurred_at, kind, amount_minor, currency, amount_base "
        "FROM ltv.revenue_events ORDER BY source, external_id"
    ).fetchall()


def reject_kinds(db: psycopg.Connection, batch_id: int) -> set[tuple[int, str]]:
    return {(line, reason.split(":")[0]) for line, _, reason in rejects(db, batch_id)}


def connections_to(url: str, made: list[psycopg.Connection]) -> Callable[[], psycopg.Connection]:
    """Chunk connections that give up on a lock after 20 s: a lock nobody will release (one the
    coordinating connection kept) fails the test instead of hanging it."""
    def connect() -> psycopg.Connection:
        conn = psycopg.connect(url, options="-c lock_timeout=20s")
        made.append(conn)
        return conn
    return connect


def test_chunks_in_parallel_land_what_one_transaction_lands(db: psycopg.Connection, db_url: str, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    setup_marketplace(db, tmp_path)
    path = write(tmp_path, "events.csv", EVENT_HEADER, event_lines())

    # The independent route: the whole file in one transaction, rolled back after reading it.
    with db.transaction(force_rollback=True):
        single = ingest_stream(db, "events", [path.read_bytes()], file_name=str(path))
        single_rejects = reject_kinds(db, single.batch_id)
        single_rows = table_contents(db)
    assert count(db, "SELECT count(*) FROM ltv.revenue_events") == 0

    made: list[psycopg.Connection] = []
    # The coordinating connection as the CLI opens it (not autocommit): the partitions it creates
    # for the chunks must be committed at once, or every chunk would wait for its lock forever.
    with caplog.at_level(logging.DEBUG, logger="ltv_db.ingest_parallel"), psycopg.connect(db_url) as coordinator:
        result = ingest_parallel.ingest_events_parallel(coordinator, path, jobs=2,
                                                        connect=connections_to(db_url, made), chunk_bytes=CHUNK)
    chunks = [r for r in caplog.records if "lines committed" in r.getMessage()]
    assert len(made) == 2 and len(chunks) >= 12, (len(made), len(chunks))
    assert all(conn.closed for conn in made)

    assert (result.rows_read, result.loaded, result.duplicates, result.rejected) == (
        single.rows_read, single.loaded, single.duplicates, single.rejected) == (LINES, LINES - 5, 0, 5)
    assert result.rejects_by_reason == single.rejects_by_reason
    assert table_contents(db) == single_rows

    # Same rejects on the same line numbers, except which line of a repeated key is refused:
    # keys are claimed in key order, so either may win (in one transaction as across chunks).
    repeats = [tuple(line + 1 for line in pair) for pair in REPEATED_KEYS]  # file lines (header = 1)
    repeat_lines = {(line, "duplicate in file") for pair in repeats for line in pair}
    parallel_rejects = reject_kinds(db, result.batch_id)
    assert parallel_rejects - repeat_lines == single_rejects - repeat_lines
    for refused in (single_rejects, parallel_rejects):
        assert [len(refused & {(a, "duplicate in file"), (b, "duplicate in file")}) for a, b in repeats] == [1, 1]
    assert {"unknown customer", "amount has more decimal places than the currency allows",
            "wrong column count"} <= {kind for _, kind in parallel_rejects}

    batch = db.execute(
        "SELECT sha256, finished_at IS NOT NULL, rows_read, loaded, duplicates, rejected "
        "FROM ltv.ingest_batches WHERE batch_id = %s", (result.batch_id,)).fetchone()
    assert batch == (hashlib.sha256(path.read_bytes()).hexdigest(), True, LINES, LINES - 5, 0, 5)
    assert db.execute("SELECT * FROM ltv.verify_customer_stats()").fetchall() == []
    assert count(db, "SELECT count(*) FROM ltv.revenue_events_default") == 0  # every month got its partition

    again = ingest_parallel.ingest_events_parallel(db, path, jobs=2, connect=connections_to(db_url, made),
                                                   chunk_bytes=CHUNK)
    # Re-sent, the key repeated within a chunk is again refused as a repeat, but each copy of the
    # key repeated across chunks is, within its chunk, an identical re-send: a duplicate.
    assert (again.loaded, again.duplicates, again.rejected) == (0, LINES - 4, 4)
    assert table_contents(db) == single_rows


def test_a_failed_chunk_keeps_what_committed_and_a_rerun_loads_the_rest(db: psycopg.Connection, db_url: str,
                                                                        tmp_path: Path) -> None:
    setup_marketplace(db, tmp_path)
    lines = [event(f"k{i}", at=f"2024-03-05T{i % 24:02d}:00:00Z") for i in range(1, 2_001)]
    lines[1_200] = event("boom")  # a line past the first chunks: a server-side failure there
    path = write(tmp_path, "events.csv", EVENT_HEADER, lines)
    db.execute("""
        CREATE FUNCTION public.fail_on_boom() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.external_id = 'boom' THEN RAISE EXCEPTION 'the disk is full (simulated)'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER fail_on_boom BEFORE INSERT ON ltv.revenue_event_keys
            FOR EACH ROW EXECUTE FUNCTION public.fail_on_boom();
    """)
    made: list[psycopg.Connection] = []
    with pytest.raises(ingest_parallel.PartialBatchError, match="the disk is full") as failure:
        ingest_parallel.ingest_events_parallel(db, path, jobs=2, connect=connections_to(db_url, made),
                                               chunk_bytes=CHUNK)
    assert "Re-run the file" in str(failure.value)
    finished, rows_read, loaded = db.execute(
        "SELECT finished_at IS NOT NULL, rows_read, loaded FROM ltv.ingest_batches ORDER BY batch_id DESC LIMIT 1"
    ).fetchone()
    assert not finished and 0 < loaded == rows_read < len(lines)
    # Each committed chunk is whole: its events are there, nothing of the failed chunk is.
    assert count(db, "SELECT count(*) FROM ltv.revenue_events") == loaded
    assert count(db, "SELECT count(*) FROM ltv.revenue_event_keys") == loaded

    db.execute("DROP TRIGGER fail_on_boom ON ltv.revenue_event_keys")
    rerun: IngestResult = ingest_parallel.ingest_events_parallel(
        db, path, jobs=2, connect=connections_to(db_url, made), chunk_bytes=CHUNK)
    assert (rerun.loaded, rerun.duplicates, rerun.rejected) == (len(lines) - loaded, loaded, 0)
    assert count(db, "SELECT count(DISTINCT external_id) FROM ltv.revenue_events") == len(lines)
    assert count(db, "SELECT count(*) FROM ltv.revenue_events") == len(lines)
    assert db.execute("SELECT * FROM ltv.verify_customer_stats()").fetchall() == []
    assert all(conn.closed for conn in made)


def test_cli_jobs_option(db: psycopg.Connection, db_url: str, tmp_path: Path) -> None:
    setup_marketplace(db, tmp_path)
    path = write(tmp_path, "events.csv", EVENT_HEADER, [event("j1"), event("j2", customer="c2")])
    done = run_cli(["ingest", "events", str(path), "--jobs", "2"], db_url)
    assert done.returncode == 0, done.stderr
    assert count(db, "SELECT count(*) FROM ltv.revenue_events") == 2
    refused = run_cli(["ingest", "events", str(path), "--jobs", "0"], db_url)
    assert refused.returncode == 2 and "--jobs" in refused.stderr


def test_partitions_are_created_up_front_from_sampled_lines(tmp_path: Path) -> None:
    # 1 MB samples: a small file is one block, so its first and last data lines are the samples
    rows = [event("s1", at="2023-01-31T23:00:00-05:00"), "garbage,line", event("s2", at="2023-06-01T00:00:00Z"),
            event("s3", at="2024-12-01T00:00:00Z")]
    path = write(tmp_path, "events.csv", EVENT_HEADER, rows)
    assert ingest_parallel.sampled_months(path, occurred_at=4) == [date(2023, 1, 1), date(2024, 12, 1)]
    path = write(tmp_path, "odd.csv", EVENT_HEADER, ["stripe,x", event("s4", at="0000-13-01T00:00:00Z")])
    assert ingest_parallel.sampled_months(path, occurred_at=4) == []
