"""Bulk CSV ingestion (``ltv-db ingest``) and idempotent single-record ingestion.

One file is one batch and one transaction: either every good row lands together with every
reject, the counts and the file's sha256 (``ltv.ingest_batches``), or — on any error or crash —
nothing does. (``ingest_file(..., jobs=N)`` trades that for speed on a large events file: see
:mod:`ltv_db.ingest_parallel`, which runs the steps below per chunk.) How a file goes in:

1. **Raw lines.** The bytes are streamed in ~1 MB blocks cut at the last newline (CRLF → LF,
   trailing empty lines dropped) into ``COPY ingest_raw_lines(raw)`` of a TEMP table whose
   ``line_no`` identity numbers the lines in file order. The COPY uses CSV format with
   delimiter ``\\x01`` and quote ``\\x02``, so each line arrives as one field with no escape
   processing. A block that is not valid UTF-8 or holds ``\\x00``/``\\x01``/``\\x02``/a lone
   ``\\r`` is rewritten line by line in Python: an offending line becomes a marker plus a
   backslash-escaped rendering, so it is rejected ("invalid UTF-8 / control bytes") with its
   text kept, and the rest of the file is unaffected.
2. **Header.** Line 1 is parsed in Python and its names compared with the entity's known
   columns: order is free, unknown columns are ignored, a missing required column refuses the
   whole file (:class:`MissingColumnsError`, exit 2). Only the resulting *positions* reach SQL,
   as integer literals — text from a file is data, never SQL.
3. **Staging.** One ``CREATE TEMP TABLE … AS SELECT`` splits every line (``string_to_array``
   for lines without quotes, ``ltv.csv_split_line`` for the rest), parses every value once
   with the NULL-on-invalid helpers of ``sql/functions/ingest_parsing.sql``, resolves
   references with joins and computes each line's *first* failing check with one ``CASE``.
   No per-row exception handling anywhere: nothing a file contains can make a statement fail.
4. **Load.** Rejects go to ``ltv.ingest_rejects`` (batch, file, line, raw text, reason); good
   rows are upserted set-based. Counts are checked (read = loaded + updated + duplicates +
   rejected) before the batch row is completed.

Idempotency: customers on ``customer_ref``, subscriptions on (customer, ``subscription_ref``),
plans on ``plan_code``, FX rates on (currency, day), acquisition spend on (channel, month,
currency) — an identical row is a *duplicate* (skipped), a changed one is *updated*. Events
are keyed on (source, external_id) through the ledger ``ltv.revenue_event_keys`` with
``INSERT … ON CONFLICT DO NOTHING``, so concurrent loaders can never both insert an event; a
re-sent identical event is a duplicate, a re-sent key with different content is rejected as a
conflict. A key repeated inside one file is rejected from its second occurrence on.

Events, step by step after staging (each good line already carries its ``event_id``, drawn
from the table's sequence, so the ledger row and the event row share it without a join): one
pass counts the outcomes and the distinct (currency, UTC day) pairs of the good rows;
``ltv.fx_rate_at`` — the one FX rule — runs once per pair, and rows whose day has no usable
rate are rejected (never converted at 1.0); the monthly partitions the batch needs are created
(within [2000-01, now + ``partition_months_ahead``]; other months go to the DEFAULT partition,
which ``ltv.maintain_revenue_partitions()`` rehomes); the ledger insert claims the keys, in key
order (the ledger's B-tree then fills left to right instead of at random: 20 % less CPU and 10 %
less WAL for the claim on a fresh ledger); when
every good line claimed its key the events are inserted straight away, otherwise the unclaimed
lines are classified (repeat of a line of this file, identical re-send, or conflict) first.

Limits: a quoted field cannot contain a line break (such a line is rejected as malformed
quoting); values are taken verbatim (no trimming). Two batches that create the same new
partition wait for (or deadlock with) each other; the loser is rolled back whole and can simply
be re-run. Keys are claimed in (source, external_id) order, so two batches with overlapping keys
queue on the first key they share rather than deadlock on their claims.

Exit codes (:attr:`IngestResult.exit_code` and the CLI): 0 nothing rejected; 3 some rows
rejected but good rows were loaded or updated; 4 rows rejected and nothing loaded or updated;
2 usage errors (unknown entity, missing file, empty file, missing required column); 1 any
unexpected error (the batch was rolled back).
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal, cast

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

# -- public results and errors --------------------------------------------------------------------
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_SOME_REJECTED = 3
EXIT_NOTHING_LOADED = 4

CHUNK_SIZE = 1 << 20  # bytes read from a file at a time; memory stays flat in the file size
RECORD_FILE_NAME = "<record_event>"  # file_name of the batches record_event() creates
CHUNK_APPLICATION_NAME = "ltv-db ingest"  # pg_stat_activity's name for parallel ingestion's connections


class IngestError(Exception):
    """Ingestion could not run; nothing was committed. ``exit_code`` is what the CLI returns."""

    exit_code = EXIT_ERROR


class UsageError(IngestError):
    """The request itself is wrong (entity, file, header): exit 2."""

    exit_code = EXIT_USAGE


class UnknownEntityError(UsageError):
    """Not one of :data:`ENTITY_NAMES`."""


class MissingFileError(UsageError):
    """The file to ingest does not exist or is not a regular file."""


class HeaderError(UsageError):
    """The first line is missing, undecodable, or names a column twice."""


class MissingColumnsError(HeaderError):
    """The header lacks required columns: the whole file is refused."""

    def __init__(self, entity: str, missing: Iterable[str], header: Iterable[str]) -> None:
        self.missing = tuple(missing)
        super().__init__(
            f"{entity}: the header lacks required column(s) {', '.join(self.missing)} "
            f"(found: {', '.join(header) or 'nothing'}); the file was not loaded"
        )


class IngestInvariantError(IngestError):
    """An internal consistency check failed; the batch was rolled back (a bug, please report)."""


@dataclass
class IngestResult:
    """What one batch did. ``rows_read`` counts data lines (header and trailing empty lines
    excluded); every one of them is loaded, updated, a duplicate or rejected."""

    batch_id: int
    entity: str
    file_name: str
    rows_read: int = 0
    loaded: int = 0
    updated: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    ignored_columns: tuple[str, ...] = ()
    sha256: str = ""

    @property
    def exit_code(self) -> int:
        """0 nothing rejected, 3 rejects but good rows landed, 4 rejects and nothing landed."""
        if not self.rejected:
            return EXIT_OK
        return EXIT_SOME_REJECTED if self.loaded or self.updated else EXIT_NOTHING_LOADED


@dataclass(frozen=True)
class RecordResult:
    """Outcome of :func:`record_event`: ``loaded``, ``duplicate`` (the identical event was
    already there) or ``rejected`` (``reason`` says why; the row is in ``ltv.ingest_rejects``)."""

    status: Literal["loaded", "duplicate", "rejected"]
    batch_id: int
    event_id: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class RejectRow:
    """One quarantined input line, as ``ltv-db rejects`` shows it."""

    batch_id: int
    file_name: str
    line_no: int
    reason: str
    raw_line: str | None


# -- how a file maps onto SQL -----------------------------------------------------------------------
MARKER = "\x01"  # first character of a raw line Python replaced (invalid bytes): never in real data


@dataclass(frozen=True)
class Layout:
    """Where the entity's columns sit in this file (1-based), from its header."""

    n_columns: int
    positions: Mapping[str, int]

    def field(self, name: str) -> sql.Composable:
        pos = self.positions.get(name)
        if pos is None:  # an optional column the file does not have
            return sql.SQL("NULL::text")
        return sql.SQL("f[{}]").format(sql.Literal(pos))


@dataclass(frozen=True)
class Batch:
    batch_id: int
    file_name: str
    layout: Layout
    # How the partitions for the batch's days are created; None: in the batch's transaction.
    # The parallel loader (ltv_db.ingest_parallel) creates them on another connection, committed
    # at once, so that the parent's ACCESS EXCLUSIVE lock does not stall the other chunks.
    create_partitions: Callable[[list[date]], None] | None = None


@dataclass
class Outcome:
    """Counts a loader reports (rejects keyed by their short kind)."""

    loaded: int = 0
    updated: int = 0
    duplicates: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)

    def reject(self, kind: str, n: int) -> None:
        self.rejects_by_reason[kind] = self.rejects_by_reason.get(kind, 0) + n

    @property
    def rejected(self) -> int:
        return sum(self.rejects_by_reason.values())

    @property
    def accounted(self) -> int:
        """Lines this outcome accounts for, each exactly once."""
        return self.loaded + self.updated + self.duplicates + self.rejected

    def add(self, other: Outcome) -> None:
        """Count ``other``'s rows too (the chunks of one batch)."""
        self.loaded += other.loaded
        self.updated += other.updated
        self.duplicates += other.duplicates
        for kind, n in other.rejects_by_reason.items():
            self.reject(kind, n)


@dataclass(frozen=True)
class Entity:
    """One kind of file: its columns, its staging statement, its loader, a line for --help."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    stage: Callable[[Layout], sql.Composed]
    load: Callable[[psycopg.Cursor, Batch], Outcome]
    description: str


# -- staging: the SQL every entity shares -----------------------------------------------------------
# The pipeline of CTEs, each fenced with OFFSET 0 so its expressions run once per line however
# often later steps use them (without the fence the planner would inline the CTE and re-evaluate
# e.g. string_to_array for every field reference).
STAGE_TEMPLATE = """
CREATE TEMP TABLE ingest_staged ON COMMIT DROP AS
WITH split_lines AS (      -- each data line as its fields; NULL for empty, replaced or unsplittable lines
    SELECT line_no, raw,
           CASE WHEN raw IS NULL OR left(raw, 1) = {marker} THEN NULL
                WHEN strpos(raw, '"') = 0 THEN string_to_array(raw, ',')
                ELSE ltv.csv_split_line(raw) END AS f
    FROM pg_temp.ingest_raw_lines
    WHERE line_no > 1
    OFFSET 0
), fields AS (             -- the entity's columns, by header position, as text
    SELECT line_no, raw, cardinality(f) AS n_fields, {fields}
    FROM split_lines
    OFFSET 0
), parsed AS (             -- every value parsed once, references resolved
    {parsed}
    OFFSET 0
), judged AS (             -- the first failing check of each line as [kind, detail]; NULL = good
    SELECT parsed.*,
           CASE WHEN raw IS NULL THEN ARRAY['empty line', NULL]
                WHEN left(raw, 1) = {marker} THEN ARRAY['invalid UTF-8 / control bytes', NULL]
                WHEN n_fields IS NULL
                    THEN ARRAY['malformed CSV quoting', 'unbalanced double quotes (a quoted field cannot span lines)']
                WHEN n_fields <> {n_columns}
                    THEN ARRAY['wrong column count', format('%s fields, the header has %s', n_fields, {n_columns})]
                {checks}
           END AS judgement
    FROM parsed
    OFFSET 0
), verdicts AS (           -- {dedupe_comment}
    {dedupe}
    OFFSET 0
)
SELECT line_no,
       verdict[1] AS reject_kind,
       verdict[1] || coalesce(': ' || verdict[2], '') AS reason,
       CASE WHEN verdict IS NOT NULL
            THEN coalesce(CASE WHEN left(raw, 1) = {marker} THEN substr(raw, 2) ELSE raw END, '') END AS raw_line,
       {outputs}
FROM verdicts
"""

NO_DEDUPE = "SELECT judged.*, judgement AS verdict FROM judged"

# Second and later good occurrences of a key in one file are rejected, naming the first line.
DEDUPE_TEMPLATE = """
    SELECT numbered.*,
           CASE WHEN judgement IS NULL AND line_no <> first_line
                THEN ARRAY['duplicate in file', format('same {key_label} as line %s', first_line)]
                ELSE judgement END AS verdict
    FROM (SELECT judged.*,
                 min(line_no) FILTER (WHERE judgement IS NULL) OVER (PARTITION BY {key}) AS first_line
          FROM judged) numbered"""


def stage_sql(
    layout: Layout,
    columns: Iterable[str],
    parsed: str,
    checks: str,
    outputs: str,
    dedupe: tuple[str, str] | None = None,
) -> sql.Composed:
    """The staging statement: ``parsed`` reads CTE ``fields`` (text columns ``txt_<name>``);
    ``checks`` are further ``WHEN … THEN ARRAY[kind, detail]`` branches; ``outputs`` the typed
    columns kept (``verdict`` is the line's final [kind, detail], NULL when good); ``dedupe`` =
    (key expression, its label) when a key may appear only once per file."""
    names = list(columns)
    fields = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(layout.field(name), sql.Identifier(f"txt_{name}")) for name in names
    )
    if dedupe is None:
        dedupe_sql, comment = NO_DEDUPE, "no in-file key check here"
    else:
        key, label = dedupe
        dedupe_sql = DEDUPE_TEMPLATE.format(key=key, key_label=label)
        comment = "later repeats of a key in the file are rejected"
    template = STAGE_TEMPLATE.replace("{parsed}", parsed).replace("{checks}", checks)
    template = template.replace("{outputs}", outputs).replace("{dedupe}", dedupe_sql)
    template = template.replace("{dedupe_comment}", comment)
    return sql.SQL(template).format(  # type: ignore[arg-type]  # built from constants only
        marker=sql.Literal(MARKER),
        fields=fields,
        n_columns=sql.Literal(layout.n_columns),
    )


def quoted(expr: str, width: int = 60) -> str:
    """SQL for a file value quoted and truncated for a reject reason."""
    return f"quote_literal(left({expr}, {width}))"


def identifier_check(column: str, pattern: str, max_length: int, what: str) -> str:
    """A WHEN branch refusing values that break the column's CHECK (pattern + length)."""
    return (
        f"WHEN NOT (txt_{column} ~ '{pattern}' AND length(txt_{column}) <= {max_length})\n"
        f"                    THEN ARRAY['invalid {column}', {quoted('txt_' + column)} || ' ({what})']"
    )


def timestamp_check(column: str, value: str, *, optional: bool = False) -> str:
    condition = f"{value} IS NULL" + (f" AND txt_{column} <> ''" if optional else "")
    return (
        f"WHEN {condition}\n"
        f"                    THEN ARRAY['{column} ' || ltv.timestamp_problem(txt_{column}), "
        f"{quoted('txt_' + column)}]"
    )


def amount_check(column: str, problem: str) -> str:
    return (
        f"WHEN {problem} IS NOT NULL\n"
        f"                    THEN ARRAY['{column} ' || {problem}, "
        f"{quoted('txt_' + column, 40)} || ' ' || currency || ' (' || exponent || ' decimal places)']"
    )


# -- running statements -----------------------------------------------------------------------------
@contextmanager
def phase(name: str) -> Iterator[None]:
    """Log how long a step took (DEBUG on logger ltv_db.ingest; the benchmark shows them)."""
    started = time.perf_counter()
    yield
    log.debug("%-18s %8.3f s", name, time.perf_counter() - started)


TEMP_TABLES = ("ingest_raw_lines", "ingest_staged", "ingest_groups", "ingest_fx", "ingest_unclaimed",
               "ingest_verdicts")
COPY_RAW = (
    "COPY pg_temp.ingest_raw_lines (raw) FROM STDIN "
    "WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02')"
)


def scalar(cur: psycopg.Cursor, query: sql.Composable | str, params: object = None) -> object:
    cur.execute(query, params)  # type: ignore[arg-type]
    row = cur.fetchone()
    return row[0] if row else None


def write_rejects(cur: psycopg.Cursor, batch: Batch) -> None:
    """Copy the staged rejects (in line order) into ltv.ingest_rejects."""
    cur.execute(
        sql.SQL(
            """
            INSERT INTO ltv.ingest_rejects (batch_id, file_name, line_no, raw_line, reason)
            SELECT {batch}, {file}, line_no, raw_line, reason
            FROM pg_temp.ingest_staged
            WHERE reject_kind IS NOT NULL
            ORDER BY line_no
            """
        ).format(batch=sql.Literal(batch.batch_id), file=sql.Literal(batch.file_name))
    )


def staged_counts(cur: psycopg.Cursor) -> tuple[int, dict[str, int]]:
    """Good rows and rejects by kind, in one pass over the staged rows."""
    cur.execute("SELECT reject_kind, count(*) FROM pg_temp.ingest_staged GROUP BY 1")
    counts = dict(cur.fetchall())
    return counts.pop(None, 0), counts


def upsert_counts(cur: psycopg.Cursor, statement: str, outcome: Outcome, good: int) -> Outcome:
    """Run an ``INSERT … ON CONFLICT DO UPDATE … WHERE changed RETURNING (xmax = 0)`` wrapped in
    a count: new rows are loaded, changed ones updated, the untouched rest duplicates."""
    cur.execute(
        "WITH upserted AS (" + statement + ") "
        "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted"
    )
    loaded, updated = cur.fetchone()  # type: ignore[misc]
    outcome.loaded, outcome.updated = loaded, updated
    outcome.duplicates = good - loaded - updated
    return outcome


def upsert_statement(table: str, key: str, columns: list[str], changed: list[str]) -> str:
    """INSERT the good staged rows in file order; on a key conflict UPDATE only when a ``changed``
    column differs; RETURNING whether each written row is new (xmax = 0) or updated. Names are
    constants of this module, never text from a file."""
    cols = ", ".join(columns)
    stored, incoming = (", ".join(f"{side}.{c}" for c in changed) for side in ("t", "EXCLUDED"))
    differs = f"({stored}) IS DISTINCT FROM ({incoming})"
    return f"""
        INSERT INTO {table} AS t ({cols})
        SELECT {cols} FROM pg_temp.ingest_staged WHERE reject_kind IS NULL ORDER BY line_no
        ON CONFLICT ({key}) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in changed)}
        WHERE {differs}
        RETURNING t.xmax = 0 AS inserted"""


def load_reference(cur: psycopg.Cursor, batch: Batch, statement: str) -> Outcome:
    """Rejects, then the upsert of the good rows (every entity but events)."""
    with phase("count"):
        good, rejects = staged_counts(cur)
    if rejects:
        with phase("write rejects"):
            write_rejects(cur, batch)
    with phase("upsert"):
        return upsert_counts(cur, statement, Outcome(rejects_by_reason=rejects), good)


# -- customers -------------------------------------------------------------------------------------
CUSTOMER_COLUMNS = ("customer_ref", "vendor_category", "country", "acquisition_channel", "signed_up_at")
REF_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.:-]*$"  # the CHECK on customer_ref / subscription_ref


def stage_customers(layout: Layout) -> sql.Composed:
    return stage_sql(
        layout,
        (*CUSTOMER_COLUMNS, "region"),
        parsed="""
    SELECT fields.*, vc.vendor_category, ch.acquisition_channel,
           ltv.parse_timestamptz(txt_signed_up_at) AS signed_up_at
    FROM fields
    LEFT JOIN ltv.vendor_categories vc ON vc.vendor_category = txt_vendor_category
    LEFT JOIN ltv.acquisition_channels ch ON ch.acquisition_channel = txt_acquisition_channel""",
        checks=f"""
                {identifier_check('customer_ref', REF_PATTERN, 100, 'letters, digits, _ . : -; at most 100')}
                WHEN vendor_category IS NULL THEN ARRAY['unknown vendor_category', {quoted('txt_vendor_category')}]
                WHEN NOT txt_country ~ '^[A-Z][A-Z]$'
                    THEN ARRAY['invalid country', {quoted('txt_country')} || ' (ISO 3166 alpha-2, upper case)']
                WHEN acquisition_channel IS NULL
                    THEN ARRAY['unknown acquisition_channel', {quoted('txt_acquisition_channel')}]
                {timestamp_check('signed_up_at', 'signed_up_at')}
                WHEN length(txt_region) > 100 THEN ARRAY['invalid region', 'longer than 100 characters']""",
        outputs="""txt_customer_ref AS customer_ref, vendor_category, txt_country AS country,
       nullif(txt_region, '') AS region, acquisition_channel, signed_up_at""",
        dedupe=("txt_customer_ref", "customer_ref"),
    )


def load_customers(cur: psycopg.Cursor, batch: Batch) -> Outcome:
    # region is compared and updated only when the file has the column: a file without it
    # must not wipe regions loaded earlier.
    changed = ["vendor_category", "country", "acquisition_channel", "signed_up_at"]
    changed += ["region"] if "region" in batch.layout.positions else []
    return load_reference(cur, batch, upsert_statement("ltv.customers", "customer_ref", ["customer_ref", *changed],
                                                       changed))


# -- subscriptions ---------------------------------------------------------------------------------
SUBSCRIPTION_COLUMNS = ("subscription_ref", "customer_ref", "plan_code", "billing_interval", "started_at",
                        "cancelled_at")


def stage_subscriptions(layout: Layout) -> sql.Composed:
    # Without an ended_at column the recorded ended_at stays, so started_at must not pass it.
    ended_rule = (
        "WHEN ended_at < started_at THEN ARRAY['ended_at before started_at', txt_ended_at]"
        if "ended_at" in layout.positions
        else "WHEN recorded_ended_at < started_at\n"
        "                    THEN ARRAY['started_at after the recorded ended_at', "
        "txt_started_at || ' > ' || recorded_ended_at]"
    )
    return stage_sql(
        layout,
        (*SUBSCRIPTION_COLUMNS, "ended_at"),
        parsed="""
    SELECT fields.*, c.customer_id, p.plan_code, p.billing_interval AS plan_interval,
           ltv.parse_timestamptz(txt_started_at) AS started_at,
           ltv.parse_timestamptz(nullif(txt_cancelled_at, '')) AS cancelled_at,
           ltv.parse_timestamptz(nullif(txt_ended_at, '')) AS ended_at,
           old.subscription_id AS existing_id, old.ended_at AS recorded_ended_at
    FROM fields
    LEFT JOIN ltv.customers c ON c.customer_ref = txt_customer_ref
    LEFT JOIN ltv.plans p ON p.plan_code = txt_plan_code
    LEFT JOIN ltv.subscriptions old
           ON old.customer_id = c.customer_id AND old.subscription_ref = txt_subscription_ref""",
        checks=f"""
                {identifier_check('subscription_ref', REF_PATTERN, 100, 'letters, digits, _ . : -; at most 100')}
                WHEN customer_id IS NULL THEN ARRAY['unknown customer', {quoted('txt_customer_ref', 100)}]
                WHEN existing_id IS NULL AND txt_subscription_ref IN (SELECT subscription_ref FROM ltv.subscriptions)
                    THEN ARRAY['subscription_ref belongs to another customer', {quoted('txt_subscription_ref', 100)}]
                WHEN plan_code IS NULL THEN ARRAY['unknown plan', {quoted('txt_plan_code')}]
                WHEN txt_billing_interval IS DISTINCT FROM plan_interval
                    THEN ARRAY['billing_interval does not match the plan',
                               format('%s, but plan %s bills per %s', {quoted('txt_billing_interval')}, plan_code,
                                      plan_interval)]
                {timestamp_check('started_at', 'started_at')}
                {timestamp_check('cancelled_at', 'cancelled_at', optional=True)}
                {timestamp_check('ended_at', 'ended_at', optional=True)}
                WHEN cancelled_at < started_at
                    THEN ARRAY['cancelled_at before started_at', txt_cancelled_at || ' < ' || txt_started_at]
                {ended_rule}""",
        outputs="""txt_subscription_ref AS subscription_ref, customer_id, plan_code, started_at, cancelled_at,
       ended_at""",
        dedupe=("txt_subscription_ref", "subscription_ref"),
    )


def load_subscriptions(cur: psycopg.Cursor, batch: Batch) -> Outcome:
    # ended_at likewise: only a file with the column changes it
    changed = ["plan_code", "started_at", "cancelled_at"]
    changed += ["ended_at"] if "ended_at" in batch.layout.positions else []
    return load_reference(cur, batch, upsert_statement("ltv.subscriptions", "customer_id, subscription_ref",
                                                       ["customer_id", "subscription_ref", *changed], changed))


# -- plans, FX rates, acquisition spend --------------------------------------------------------------
PLAN_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # the CHECK on plan_code
PLAN_COLUMNS = ("plan_code", "tier", "billing_interval", "list_price", "currency")
FX_COLUMNS = ("currency", "day", "rate")
SPEND_COLUMNS = ("acquisition_channel", "month", "amount", "currency")
CURRENCY_JOIN = "LEFT JOIN ltv.currencies cur ON cur.currency = txt_currency"


def stage_plans(layout: Layout) -> sql.Composed:
    return stage_sql(
        layout,
        PLAN_COLUMNS,
        parsed=f"""
    SELECT fields.*, cur.currency, cur.exponent,
           ltv.amount_problem(txt_list_price, cur.exponent) AS price_problem
    FROM fields
    {CURRENCY_JOIN}""",
        checks=f"""
                {identifier_check('plan_code', PLAN_PATTERN, 64, 'letters, digits, _ . -; at most 64')}
                {identifier_check('tier', '^[a-z][a-z0-9_]*$', 41, 'lowercase letters, digits, _')}
                WHEN txt_billing_interval NOT IN ('month', 'year')
                    THEN ARRAY['invalid billing_interval', {quoted('txt_billing_interval')} || ' (month or year)']
                WHEN currency IS NULL THEN ARRAY['unknown currency', {quoted('txt_currency', 20)}]
                {amount_check('list_price', 'price_problem')}""",
        outputs="""txt_plan_code AS plan_code, txt_tier AS tier, txt_billing_interval AS billing_interval,
       CASE WHEN verdict IS NULL THEN ltv.amount_to_minor(txt_list_price, exponent) END AS list_price_minor,
       currency""",
        dedupe=("txt_plan_code", "plan_code"),
    )


def load_plans(cur: psycopg.Cursor, batch: Batch) -> Outcome:
    changed = ["tier", "billing_interval", "list_price_minor", "currency"]
    return load_reference(cur, batch, upsert_statement("ltv.plans", "plan_code", ["plan_code", *changed], changed))


def stage_fx_rates(layout: Layout) -> sql.Composed:
    # numeric(20,10): at most 10 integer digits and 10 decimals (trailing zeros aside).
    return stage_sql(
        layout,
        FX_COLUMNS,
        parsed=f"""
    SELECT fields.*, cur.currency, ltv.parse_date(txt_day) AS day,
           CASE WHEN txt_rate ~ '^[0-9]+(\\.[0-9]+)?$'
                     AND CASE WHEN strpos(txt_rate, '.') = 0 THEN length(txt_rate) <= 10
                              ELSE strpos(txt_rate, '.') <= 11
                                   AND length(rtrim(txt_rate, '0')) - strpos(txt_rate, '.') <= 10 END
                THEN txt_rate::numeric END AS rate,
           (SELECT base_currency FROM ltv.settings) AS base_currency
    FROM fields
    {CURRENCY_JOIN}""",
        checks=f"""
                WHEN currency IS NULL THEN ARRAY['unknown currency', {quoted('txt_currency', 20)}]
                WHEN day IS NULL THEN ARRAY['invalid day', {quoted('txt_day')} || ' (expected YYYY-MM-DD)']
                WHEN rate IS NULL
                    THEN ARRAY['invalid rate',
                               {quoted('txt_rate')} || ' (a positive decimal, at most 10 decimal places)']
                WHEN rate <= 0 THEN ARRAY['invalid rate', {quoted('txt_rate')} || ' (must be positive)']
                WHEN currency = base_currency AND rate <> 1
                    THEN ARRAY['base currency rate is not 1', format('%s is the base currency', currency)]""",
        outputs="currency, day, rate",
        dedupe=("currency, day", "currency and day"),
    )


def load_fx_rates(cur: psycopg.Cursor, batch: Batch) -> Outcome:
    return load_reference(cur, batch, upsert_statement("ltv.fx_rates", "currency, day", ["currency", "day", "rate"],
                                                       ["rate"]))


def stage_acquisition_spend(layout: Layout) -> sql.Composed:
    return stage_sql(
        layout,
        SPEND_COLUMNS,
        parsed=f"""
    SELECT fields.*, ch.acquisition_channel, ltv.parse_month(txt_month) AS month, cur.currency, cur.exponent,
           ltv.amount_problem(txt_amount, cur.exponent) AS amount_problem
    FROM fields
    LEFT JOIN ltv.acquisition_channels ch ON ch.acquisition_channel = txt_acquisition_channel
    {CURRENCY_JOIN}""",
        checks=f"""
                WHEN acquisition_channel IS NULL
                    THEN ARRAY['unknown acquisition_channel', {quoted('txt_acquisition_channel')}]
                WHEN month IS NULL
                    THEN ARRAY['invalid month', {quoted('txt_month')} || ' (expected YYYY-MM or YYYY-MM-01)']
                WHEN currency IS NULL THEN ARRAY['unknown currency', {quoted('txt_currency', 20)}]
                {amount_check('amount', 'amount_problem')}""",
        outputs="""acquisition_channel, month, currency,
       CASE WHEN verdict IS NULL THEN ltv.amount_to_minor(txt_amount, exponent) END AS amount_minor""",
        dedupe=("acquisition_channel, month, currency", "channel, month and currency"),
    )


def load_acquisition_spend(cur: psycopg.Cursor, batch: Batch) -> Outcome:
    key = ["acquisition_channel", "month", "currency"]
    return load_reference(cur, batch, upsert_statement("ltv.acquisition_spend", ", ".join(key),
                                                       [*key, "amount_minor"], ["amount_minor"]))


# -- events ----------------------------------------------------------------------------------------
EVENT_COLUMNS = ("source", "external_id", "customer_ref", "occurred_at", "kind", "amount", "currency",
                 "subscription_ref")
EVENT_KINDS = ("subscription", "one_off", "refund", "chargeback", "credit")
SAFE_RATE = 100  # amounts have ≤ 14 integer digits: below this rate amount_base fits numeric(20,4)


def stage_events(layout: Layout) -> sql.Composed:
    kinds = ", ".join(f"'{k}'" for k in EVENT_KINDS)
    return stage_sql(
        layout,
        EVENT_COLUMNS,
        parsed="""
    SELECT fields.*, c.customer_id, ltv.parse_timestamptz(txt_occurred_at) AS occurred_at,
           cur.currency, cur.exponent, ltv.amount_problem(txt_amount, cur.exponent) AS amount_problem,
           s.subscription_id
    FROM fields
    LEFT JOIN ltv.customers c ON c.customer_ref = txt_customer_ref
    LEFT JOIN ltv.currencies cur ON cur.currency = txt_currency
    LEFT JOIN ltv.subscriptions s ON s.customer_id = c.customer_id AND s.subscription_ref = txt_subscription_ref""",
        checks=f"""
                {identifier_check('source', '^[a-z][a-z0-9_]*$', 32, 'lowercase letters, digits, _; at most 32')}
                WHEN length(txt_external_id) NOT BETWEEN 1 AND 200
                    THEN ARRAY['invalid external_id', CASE WHEN txt_external_id = '' THEN 'empty'
                                                           ELSE 'longer than 200 characters' END]
                WHEN customer_id IS NULL THEN ARRAY['unknown customer', {quoted('txt_customer_ref', 100)}]
                {timestamp_check('occurred_at', 'occurred_at')}
                WHEN txt_kind NOT IN ({kinds})
                    THEN ARRAY['unknown kind', {quoted('txt_kind')} || ' (expected {kinds.replace("'", "")})']
                WHEN currency IS NULL THEN ARRAY['unknown currency', {quoted('txt_currency', 20)}]
                {amount_check('amount', 'amount_problem')}
                WHEN subscription_id IS NULL AND txt_subscription_ref <> ''
                    THEN CASE WHEN txt_subscription_ref IN (SELECT subscription_ref FROM ltv.subscriptions)
                              THEN ARRAY['subscription of another customer', {quoted('txt_subscription_ref', 100)}]
                              ELSE ARRAY['unknown subscription', {quoted('txt_subscription_ref', 100)}] END""",
        # event_ids are drawn here, once per good line, so the ledger row and the event row share
        # one without a join between them; a line that later turns out a duplicate just leaves a
        # gap in the sequence.
        outputs="""CASE WHEN verdict IS NULL THEN nextval('ltv.revenue_events_event_id_seq') END AS event_id,
       customer_id, occurred_at, (occurred_at AT TIME ZONE 'UTC')::date AS utc_day, txt_kind AS kind,
       CASE WHEN verdict IS NULL THEN ltv.amount_to_minor(txt_amount, exponent) END AS amount_minor,
       currency, exponent, txt_source AS source, txt_external_id AS external_id, subscription_id""",
    )


EVENT_GROUPS = """
CREATE TEMP TABLE ingest_groups ON COMMIT DROP AS
SELECT reject_kind, currency, utc_day, count(*) AS n
FROM (SELECT reject_kind,
             CASE WHEN reject_kind IS NULL THEN currency END AS currency,
             CASE WHEN reject_kind IS NULL THEN utc_day END AS utc_day
      FROM pg_temp.ingest_staged) rows_by_outcome
GROUP BY 1, 2, 3
"""

# ltv.fx_rate_at — the one FX rule — once per distinct (currency, UTC day) of the good rows.
EVENT_FX = """
CREATE TEMP TABLE ingest_fx ON COMMIT DROP AS
SELECT currency, utc_day, ltv.fx_rate_at(currency::text, utc_day) AS rate
FROM pg_temp.ingest_groups
WHERE reject_kind IS NULL
"""

# Rows whose day has no usable rate, or whose base amount would not fit numeric(20,4) (only
# possible at rates ≥ SAFE_RATE), are rejected; run only when such (currency, day) pairs exist.
EVENT_FX_REJECTS = """
UPDATE pg_temp.ingest_staged s
SET reject_kind = problem.kind,
    reason = problem.kind || ': ' || problem.detail,
    raw_line = r.raw
FROM pg_temp.ingest_fx f
CROSS JOIN LATERAL (
    SELECT CASE WHEN f.rate IS NULL THEN 'no usable FX rate' ELSE 'amount too large in base currency' END AS kind,
           CASE WHEN f.rate IS NULL
                THEN format('%s on %s (no rate that day or within %s days before)', f.currency, f.utc_day,
                            (SELECT fx_max_staleness_days FROM ltv.settings))
                ELSE format('rate %s', f.rate) END AS detail
) problem,
pg_temp.ingest_raw_lines r
WHERE (f.rate IS NULL OR f.rate >= {safe_rate})
  AND s.reject_kind IS NULL AND s.currency = f.currency AND s.utc_day = f.utc_day
  AND (f.rate IS NULL OR s.amount_minor * f.rate / ltv.minor_per_major(s.exponent) >= 1e16)
  AND r.line_no = s.line_no
RETURNING s.reject_kind
"""

# Partitions for the months of some days, within [2000-01, now + partition_months_ahead];
# anything else lands in the DEFAULT partition (nothing is lost) and maintain_revenue_partitions
# rehomes it. {days} is where the days come from: the batch's good rows, or a list.
PARTITIONS_FOR_DAYS = """
SELECT count(*) FILTER (WHERE ltv.create_revenue_partition(month))
FROM (SELECT DISTINCT date_trunc('month', day)::date AS month FROM {days} ORDER BY 1) months
WHERE month >= DATE '2000-01-01'
  AND month <= (date_trunc('month', now() AT TIME ZONE 'UTC')
                + make_interval(months => (SELECT partition_months_ahead FROM ltv.settings)))::date
"""
BATCH_DAYS = "(SELECT utc_day FROM pg_temp.ingest_fx WHERE rate IS NOT NULL) AS good_rows(day)"
LISTED_DAYS = "unnest(%s::date[]) AS listed(day)"


def create_partitions(conn: psycopg.Connection, days: list[date]) -> None:
    """Create the partitions for the months of ``days`` that do not exist yet."""
    conn.execute(PARTITIONS_FOR_DAYS.replace("{days}", LISTED_DAYS), (days,))


EVENT_CLAIM = """
INSERT INTO ltv.revenue_event_keys (source, external_id, customer_id, occurred_at, event_id)
SELECT source, external_id, customer_id, occurred_at, event_id
FROM pg_temp.ingest_staged
WHERE reject_kind IS NULL
ORDER BY source, external_id
{on_conflict}
"""

EVENT_INSERT = """
INSERT INTO ltv.revenue_events (customer_id, occurred_at, event_id, kind, amount_minor, currency, fx_rate,
                                amount_base, source, external_id, subscription_id, batch_id)
SELECT s.customer_id, s.occurred_at, s.event_id, s.kind, s.amount_minor, s.currency, f.rate,
       s.amount_minor * f.rate / ltv.minor_per_major(s.exponent), s.source, s.external_id, s.subscription_id,
       {batch}
FROM pg_temp.ingest_staged s
JOIN pg_temp.ingest_fx f ON f.currency = s.currency AND f.utc_day = s.utc_day
WHERE s.reject_kind IS NULL {unclaimed_filter}
"""

# Good rows whose key this batch did not claim, with the ledger row that holds the key.
EVENT_UNCLAIMED = """
CREATE TEMP TABLE ingest_unclaimed ON COMMIT DROP AS
SELECT s.line_no, s.customer_id, s.occurred_at, s.kind, s.amount_minor, s.currency, s.subscription_id,
       k.event_id AS holder_event_id, k.customer_id AS holder_customer_id, k.occurred_at AS holder_occurred_at
FROM pg_temp.ingest_staged s
JOIN ltv.revenue_event_keys k ON k.source = s.source AND k.external_id = s.external_id
WHERE s.reject_kind IS NULL AND k.event_id <> s.event_id
"""

# What each unclaimed row is: a repeat of a line of this file (claimed by this batch, or the
# first of several repeats of an older key), an identical re-send (a duplicate), or a conflict.
EVENT_VERDICTS = """
CREATE TEMP TABLE ingest_verdicts ON COMMIT DROP AS
WITH holders AS (          -- the line of this batch that claimed the key, if this batch did
    SELECT u.*, {claimer_line} AS claimer_line,
           min(u.line_no) OVER (PARTITION BY u.holder_event_id) AS first_line
    FROM pg_temp.ingest_unclaimed u
    {claimer_join}
)
SELECT h.line_no,
       CASE WHEN h.claimer_line IS NOT NULL
                THEN ARRAY['duplicate in file', format('same source and external_id as line %s', h.claimer_line)]
            WHEN h.line_no <> h.first_line
                THEN ARRAY['duplicate in file', format('same source and external_id as line %s', h.first_line)]
            WHEN e.batch_id = {batch}  -- claimed by another chunk of this file (parallel ingestion)
                THEN ARRAY['duplicate in file',
                           format('same source and external_id as event %s of this file', h.holder_event_id)]
            WHEN e.event_id IS NOT NULL
                 AND (e.customer_id, e.occurred_at, e.kind, e.amount_minor, e.currency, e.subscription_id)
                     IS NOT DISTINCT FROM (h.customer_id, h.occurred_at, h.kind, h.amount_minor, h.currency,
                                           h.subscription_id)
                THEN NULL
            ELSE ARRAY['conflicts with an already-loaded event',
                       format('event_id %s has other content', h.holder_event_id)]
       END AS judgement
FROM holders h
LEFT JOIN ltv.revenue_events e
       ON e.customer_id = h.holder_customer_id AND e.occurred_at = h.holder_occurred_at
      AND e.event_id = h.holder_event_id
"""

EVENT_VERDICT_REJECTS = """
INSERT INTO ltv.ingest_rejects (batch_id, file_name, line_no, raw_line, reason)
SELECT {batch}, {file}, v.line_no, r.raw, v.judgement[1] || ': ' || v.judgement[2]
FROM pg_temp.ingest_verdicts v
JOIN pg_temp.ingest_raw_lines r USING (line_no)
WHERE v.judgement IS NOT NULL
ORDER BY v.line_no
"""


ANALYZE_MIN_ROWS = 10_000  # below this a temp table's default estimates do no harm
# What the statements after each ANALYZE join and filter on: only these columns get statistics.
ANALYZED_COLUMNS = {
    "ingest_raw_lines": "line_no",
    "ingest_staged": "reject_kind, currency, utc_day, line_no, event_id, source, external_id",
}


def analyze_if_large(cur: psycopg.Cursor, rows: int, *tables: str) -> None:
    """Statistics for TEMP tables of a large batch (autovacuum never sees TEMP tables): without
    them the planner guesses a few thousand rows and e.g. joins a million staged rows to the FX
    rates by sorting them on disk (a merge join) instead of hashing the few thousand rates.
    Row counts and rough distributions are all these joins need, so ANALYZE samples 3,000 rows
    (statistics target 10) of the columns in :data:`ANALYZED_COLUMNS`: ~15 ms per table at any
    size, against ~200 ms for the default 30,000 rows of every column of the staged rows — which
    added up to 4 % of a parallel ingest that analyzes each chunk. Small batches (record_event)
    skip it. ``tables`` are constants of this module."""
    if rows >= ANALYZE_MIN_ROWS:
        with phase("analyze"):
            target = scalar(cur, "SELECT current_setting('default_statistics_target')")
            cur.execute("SET LOCAL default_statistics_target = 10")
            cur.execute("ANALYZE " + ", ".join(
                f"pg_temp.{t}" + (f" ({ANALYZED_COLUMNS[t]})" if t in ANALYZED_COLUMNS else "") for t in tables))
            cur.execute(sql.SQL("SET LOCAL default_statistics_target = {}").format(sql.Literal(int(target))))


def claim_keys(cur: psycopg.Cursor) -> int:
    """Claim the good rows' keys in the ledger; how many this batch claimed.

    New keys are the common case, and a plain INSERT claims them for ~30 % less than
    ``ON CONFLICT DO NOTHING`` (speculative insertion probes the index first and writes a
    second WAL record per row to confirm the tuple). So the plain INSERT runs first, in a
    savepoint; the first key that is already taken raises a unique violation, the savepoint
    undoes the partial claim, and the claim runs again with ``ON CONFLICT DO NOTHING``. Keys
    are claimed in key order, so a re-sent file fails on its very first row."""
    try:
        with cur.connection.transaction():
            cur.execute(EVENT_CLAIM.replace("{on_conflict}", ""))
    except psycopg.errors.UniqueViolation:
        cur.execute(EVENT_CLAIM.replace("{on_conflict}", "ON CONFLICT (source, external_id) DO NOTHING"))
    return cur.rowcount


def load_events(cur: psycopg.Cursor, batch: Batch) -> Outcome:
    literals = {"batch": sql.Literal(batch.batch_id), "file": sql.Literal(batch.file_name)}
    with phase("group"):
        cur.execute(EVENT_GROUPS)
    with phase("fx rates"):
        cur.execute(EVENT_FX)
    outcome = Outcome()
    cur.execute("SELECT reject_kind, sum(n)::bigint FROM pg_temp.ingest_groups GROUP BY 1")
    good = 0
    for kind, n in cur.fetchall():
        if kind is None:
            good = n
        else:
            outcome.reject(kind, n)
    analyze_if_large(cur, good + outcome.rejected, "ingest_staged", "ingest_fx")
    risky = scalar(cur, "SELECT count(*) FROM pg_temp.ingest_fx WHERE rate IS NULL OR rate >= %s", (SAFE_RATE,))
    if risky:
        cur.execute(EVENT_FX_REJECTS.replace("{safe_rate}", str(SAFE_RATE)))
        for (kind,) in cur.fetchall():
            outcome.reject(kind, 1)
            good -= 1
    if outcome.rejected:
        with phase("write rejects"):
            write_rejects(cur, batch)
    with phase("partitions"):
        if batch.create_partitions is None:
            cur.execute(PARTITIONS_FOR_DAYS.replace("{days}", BATCH_DAYS))
        elif days := cast(list[date] | None, scalar(cur, f"SELECT array_agg(DISTINCT day) FROM {BATCH_DAYS}")):
            batch.create_partitions(days)
    with phase("claim keys"):
        claimed = claim_keys(cur)
    if claimed == good:
        # Every good line claimed its key: nothing was loaded before, nothing repeats.
        with phase("insert events"):
            cur.execute(sql.SQL(EVENT_INSERT.replace("{unclaimed_filter}", "")).format(**literals))
        inserted = cur.rowcount
    else:
        # When this batch claimed no key at all (a plain re-send), no line can repeat a line of
        # this batch that claimed its key: skip that join over all staged rows.
        claimer = ("claimer.line_no", "LEFT JOIN pg_temp.ingest_staged claimer ON claimer.event_id = u.holder_event_id")
        verdicts = EVENT_VERDICTS.replace("{claimer_line}", claimer[0] if claimed else "NULL::bigint")
        verdicts = verdicts.replace("{claimer_join}", claimer[1] if claimed else "")
        verdicts = verdicts.replace("{batch}", str(batch.batch_id))
        with phase("classify repeats"):
            cur.execute(EVENT_UNCLAIMED)
            analyze_if_large(cur, cur.rowcount, "ingest_unclaimed")
            cur.execute(verdicts)
            cur.execute("SELECT judgement[1], count(*) FROM pg_temp.ingest_verdicts GROUP BY 1")
            repeats_rejected = 0
            for kind, n in cur.fetchall():
                if kind is None:
                    outcome.duplicates = n
                else:
                    outcome.reject(kind, n)
                    repeats_rejected += n
        if repeats_rejected:
            with phase("write rejects"):
                cur.execute(sql.SQL(EVENT_VERDICT_REJECTS).format(**literals))
        inserted = 0
        if claimed:  # a plain re-send claims nothing: no pass over the staged rows to insert nothing
            filter_sql = "AND NOT EXISTS (SELECT 1 FROM pg_temp.ingest_unclaimed u WHERE u.line_no = s.line_no)"
            with phase("insert events"):
                cur.execute(sql.SQL(EVENT_INSERT.replace("{unclaimed_filter}", filter_sql)).format(**literals))
            inserted = cur.rowcount
        if outcome.duplicates + repeats_rejected + claimed != good:
            raise IngestInvariantError("events: unclaimed rows were not all classified")
    if inserted != claimed:
        raise IngestInvariantError(f"events: {claimed} keys claimed but {inserted} events inserted")
    outcome.loaded = inserted
    return outcome


# -- the entities ----------------------------------------------------------------------------------
ENTITIES: dict[str, Entity] = {
    e.name: e
    for e in (
        Entity("plans", PLAN_COLUMNS, (), stage_plans, load_plans,
               "billing_interval month or year; list_price in the currency's major units; key plan_code"),
        Entity("fx_rates", FX_COLUMNS, (), stage_fx_rates, load_fx_rates,
               "1 unit of currency = rate units of the base currency on day YYYY-MM-DD; key (currency, day)"),
        Entity("acquisition_spend", SPEND_COLUMNS, (), stage_acquisition_spend, load_acquisition_spend,
               "month YYYY-MM or YYYY-MM-01; key (acquisition_channel, month, currency)"),
        Entity("customers", CUSTOMER_COLUMNS, ("region",), stage_customers, load_customers,
               "key customer_ref"),
        Entity("subscriptions", SUBSCRIPTION_COLUMNS, ("ended_at",), stage_subscriptions, load_subscriptions,
               "empty cancelled_at = active; billing_interval must be the plan's; key (customer, subscription_ref)"),
        Entity("events", EVENT_COLUMNS, (), stage_events, load_events,
               "kind subscription, one_off, refund, chargeback or credit; key (source, external_id)"),
    )
}
ENTITY_NAMES: tuple[str, ...] = tuple(ENTITIES)


def entity_spec(name: str) -> Entity:
    try:
        return ENTITIES[name]
    except KeyError:
        raise UnknownEntityError(f"unknown entity {name!r}; expected one of {', '.join(ENTITY_NAMES)}") from None


# -- the header ------------------------------------------------------------------------------------
def read_header(spec: Entity, line: bytes) -> tuple[Layout, tuple[str, ...]]:
    """Column positions from the header line (names compared in Python only); the ignored ones."""
    try:
        text = line.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise HeaderError(f"{spec.name}: the header line is not valid UTF-8") from exc
    names = [name.strip().lower() for name in next(csv.reader([text]), [])]
    if not any(names):
        raise HeaderError(f"{spec.name}: the first line is empty; expected a header ({', '.join(spec.required)})")
    seen: dict[str, int] = {}
    for pos, name in enumerate(names, start=1):
        if name in seen and name in (*spec.required, *spec.optional):
            raise HeaderError(f"{spec.name}: column {name!r} appears twice in the header")
        seen.setdefault(name, pos)
    missing = [c for c in spec.required if c not in seen]
    if missing:
        raise MissingColumnsError(spec.name, missing, names)
    known = (*spec.required, *spec.optional)
    positions = {name: seen[name] for name in known if name in seen}
    ignored = tuple(name for name in names if name not in known)
    return Layout(n_columns=len(names), positions=positions), ignored


# -- bytes → COPY ----------------------------------------------------------------------------------
FORBIDDEN = (b"\x00", b"\x01", b"\x02", b"\r")  # NUL, our delimiter and quote, a CR not before LF
ESCAPES = {0: "\\x00", 1: "\\x01", 2: "\\x02", 13: "\\r"}


def whole_line_blocks(chunks: Iterable[bytes], on_bytes: Callable[[bytes], None]) -> Iterator[bytes]:
    """The input as blocks of whole lines, each ending in LF: CRLF → LF, and empty lines at the
    very end dropped (held back until a non-empty line proves they are not trailing)."""
    carry = b""  # an unfinished last line
    held = b""  # empty lines that may be trailing
    for chunk in chunks:
        if not chunk:
            continue
        on_bytes(chunk)
        data = carry + chunk if carry else chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            carry = data
            continue
        block, carry = data[:cut], data[cut:]
        if b"\r" in block:
            block = block.replace(b"\r\n", b"\n")
        if block[-2:-1] not in (b"\n", b""):  # the usual case: the last line has content
            yield held + block if held else block
            held = b""
            continue
        body = block.rstrip(b"\n")
        if not body:
            held += block
            continue
        yield held + body + b"\n"
        held = block[len(body) + 1:]
    if carry.endswith(b"\r"):
        carry = carry[:-1]
    if carry:
        yield held + carry + b"\n"


def valid_text(data: bytes) -> bool:
    """Valid UTF-8 without NUL, our delimiter and quote, or a CR that did not end a line."""
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return not any(byte in data for byte in FORBIDDEN)


def copy_ready(block: bytes) -> bytes:
    """A block of whole lines made safe for the raw COPY. Almost every block is returned as is.
    Otherwise each line is looked at: one starting with backslash-dot (which CSV-mode COPY would
    take for its end-of-data marker) is quoted and so kept verbatim; one with invalid UTF-8 or
    control bytes becomes MARKER + a backslash-escaped rendering, quoted so nothing splits it."""
    if valid_text(block) and not (block.startswith(b"\\.") or b"\n\\." in block):
        return block
    out = []
    for line in block[:-1].split(b"\n"):
        if not valid_text(line):
            shown = line.decode("utf-8", "backslashreplace").translate(ESCAPES)
            out.append(b"\x02" + MARKER.encode() + shown.encode("utf-8") + b"\x02\n")
        elif line.startswith(b"\\."):
            out.append(b"\x02" + line + b"\x02\n")
        else:
            out.append(line + b"\n")
    return b"".join(out)


def read_file_header(spec: Entity, blocks: Iterator[bytes]) -> tuple[Layout, tuple[str, ...], bytes]:
    """The header's layout and ignored columns, read from the file's first block of whole lines,
    which is returned too (it still has to be loaded); HeaderError for an empty file."""
    first = next(blocks, None)
    if first is None:
        raise HeaderError(f"{spec.name}: the file is empty; expected a header ({', '.join(spec.required)})")
    layout, ignored = read_header(spec, first.split(b"\n", 1)[0])
    return layout, ignored, first


def copy_raw(cur: psycopg.Cursor, spec: Entity, blocks: Iterator[bytes]) -> tuple[Layout, tuple[str, ...], int]:
    """COPY every line into ingest_raw_lines; the header's layout and the number of lines."""
    layout, ignored, first = read_file_header(spec, blocks)
    with cur.copy(COPY_RAW) as copy:
        for block in itertools.chain([first], blocks):
            copy.write(copy_ready(block))
    return layout, ignored, cur.rowcount


# -- the pipeline ----------------------------------------------------------------------------------
def ingest_stream(
    conn: psycopg.Connection,
    entity: str,
    chunks: Iterable[bytes],
    *,
    file_name: str,
    progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """Ingest CSV bytes arriving in arbitrary chunks (header first) as one batch.

    Runs in one transaction (a savepoint when ``conn`` is already in one: then it commits with
    the caller's). ``progress`` is called with the cumulative number of bytes consumed.
    Raises :class:`UsageError` subclasses for a wrong entity / empty file / bad header (nothing
    is written) and rolls everything back on any other error.
    """
    spec = entity_spec(entity)
    if conn.info.encoding.lower().replace("-", "") != "utf8":
        raise IngestError(f"the connection's client_encoding is {conn.info.encoding}; ingestion needs UTF8")
    digest = FileDigest(progress)
    with conn.transaction(), conn.cursor() as cur:
        start_batch_transaction(cur)
        batch_id = new_batch(cur, spec, file_name)
        with phase("copy raw lines"):
            layout, ignored, lines = copy_raw(cur, spec, whole_line_blocks(chunks, digest))
        batch = Batch(batch_id=batch_id, file_name=file_name, layout=layout)
        outcome = stage_and_load(cur, spec, batch, rows_read=lines - 1)
        result = batch_result(spec, batch, lines - 1, outcome, ignored, digest.hexdigest())
        record_batch(cur, batch.batch_id, result.rows_read, outcome, finished_sha256=result.sha256)
        drop_temp_tables(cur)
    return result


class FileDigest:
    """Watches a file's bytes go by (``whole_line_blocks``' ``on_bytes``): their sha256 and
    how many, reported to ``progress``."""

    def __init__(self, progress: Callable[[int], None] | None = None) -> None:
        self._sha256 = hashlib.sha256()
        self._progress = progress
        self.consumed = 0

    def __call__(self, chunk: bytes) -> None:
        self._sha256.update(chunk)
        self.consumed += len(chunk)
        if self._progress is not None:
            self._progress(self.consumed)

    def hexdigest(self) -> str:
        return self._sha256.hexdigest()


def start_batch_transaction(cur: psycopg.Cursor, first_line: int = 1) -> None:
    """Session state for one batch (or one chunk of a batch): no leftover TEMP tables, no JIT
    (a batch of millions of rows is planned from estimates, and JIT would add seconds to
    statements that run for one row in record_event()), and the raw-lines table, numbering
    lines from ``first_line``."""
    drop_temp_tables(cur)
    cur.execute("SET LOCAL jit = off")
    cur.execute(
        sql.SQL(
            "CREATE TEMP TABLE ingest_raw_lines "
            "(line_no bigint GENERATED ALWAYS AS IDENTITY (START WITH {}), raw text) ON COMMIT DROP"
        ).format(sql.Literal(first_line))
    )


def new_batch(cur: psycopg.Cursor, spec: Entity, file_name: str) -> int:
    batch_id = scalar(
        cur,
        "INSERT INTO ltv.ingest_batches (entity, file_name) VALUES (%s, %s) RETURNING batch_id",
        (spec.name, file_name),
    )
    return int(batch_id)  # type: ignore[call-overload]


def stage_and_load(cur: psycopg.Cursor, spec: Entity, batch: Batch, rows_read: int) -> Outcome:
    """Stage the copied raw lines and load them; every data line must be accounted for."""
    # With statistics the planner sizes the staged lines right and hashes the reference
    # tables, not the wide staged rows, for its joins.
    analyze_if_large(cur, rows_read, "ingest_raw_lines")
    with phase("stage"):
        cur.execute(spec.stage(batch.layout))
    outcome = spec.load(cur, batch)
    if outcome.accounted != rows_read:
        raise IngestInvariantError(f"{spec.name}: {rows_read} rows read but {outcome.accounted} accounted for")
    return outcome


def batch_result(spec: Entity, batch: Batch, rows_read: int, outcome: Outcome, ignored: tuple[str, ...],
                 sha256: str) -> IngestResult:
    return IngestResult(
        batch_id=batch.batch_id, entity=spec.name, file_name=batch.file_name, rows_read=rows_read,
        loaded=outcome.loaded, updated=outcome.updated, duplicates=outcome.duplicates,
        rejected=outcome.rejected,
        rejects_by_reason=dict(sorted(outcome.rejects_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))),
        ignored_columns=ignored, sha256=sha256,
    )


def record_batch(cur: psycopg.Cursor, batch_id: int, rows_read: int, outcome: Outcome, *,
                 finished_sha256: str | None = None) -> None:
    """Add what a batch (or one chunk of it) did to its ltv.ingest_batches row; given the file's
    checksum, also mark the batch finished (its one audit entry is written then)."""
    cur.execute(
        """
        UPDATE ltv.ingest_batches
        SET rows_read = rows_read + %(rows_read)s, loaded = loaded + %(loaded)s, updated = updated + %(updated)s,
            duplicates = duplicates + %(duplicates)s, rejected = rejected + %(rejected)s,
            sha256 = coalesce(%(sha256)s, sha256),
            finished_at = CASE WHEN %(sha256)s::text IS NULL THEN finished_at ELSE clock_timestamp() END
        WHERE batch_id = %(batch_id)s
        """,
        {"rows_read": rows_read, "loaded": outcome.loaded, "updated": outcome.updated,
         "duplicates": outcome.duplicates, "rejected": outcome.rejected,
         "sha256": finished_sha256, "batch_id": batch_id},
    )


def drop_temp_tables(cur: psycopg.Cursor) -> None:
    # ON COMMIT DROP cleans up after a standalone batch; inside a caller's transaction the
    # tables would outlive the batch, so they are dropped explicitly at both ends.
    cur.execute("DROP TABLE IF EXISTS " + ", ".join(f"pg_temp.{t}" for t in TEMP_TABLES))


def file_chunks(path: Path, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while block := fh.read(size):
            yield block


def ingest_file(
    conn: psycopg.Connection,
    entity: str,
    path: Path,
    *,
    progress: Callable[[int], None] | None = None,
    jobs: int = 1,
    connect: Callable[[], psycopg.Connection] | None = None,
) -> IngestResult:
    """Ingest one CSV file (see the module docstring); ``file_name`` in the batch is ``path``.

    With ``jobs`` > 1, an events file larger than one chunk is loaded by ``jobs`` connections
    in parallel, a chunk per transaction (:mod:`ltv_db.ingest_parallel`: faster, but no longer
    all or nothing). ``connect`` opens those connections; by default with ``conn``'s
    parameters. Other entities, smaller files, and a ``conn`` already inside a transaction
    take the one-transaction path."""
    from ltv_db import ingest_parallel

    entity_spec(entity)
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file")
    if jobs < 1:
        raise UsageError(f"jobs must be at least 1, not {jobs}")
    if (jobs > 1 and entity == "events" and path.stat().st_size > ingest_parallel.CHUNK_BYTES
            and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE):
        return ingest_parallel.ingest_events_parallel(conn, path, jobs=jobs, connect=connect or same_server(conn),
                                                      progress=progress)
    return ingest_stream(conn, entity, file_chunks(path), file_name=str(path), progress=progress)


def same_server(conn: psycopg.Connection) -> Callable[[], psycopg.Connection]:
    """A factory of connections with ``conn``'s parameters (the password included, never shown)."""
    def connect() -> psycopg.Connection:
        return psycopg.connect(conn.info.dsn, password=conn.info.password or None,
                               application_name=CHUNK_APPLICATION_NAME)
    return connect


# -- single records --------------------------------------------------------------------------------
def record_event(
    conn: psycopg.Connection,
    *,
    source: str,
    external_id: str,
    customer_ref: str,
    occurred_at: datetime | str,
    kind: str,
    amount: Decimal | int | str,
    currency: str,
    subscription_ref: str | None = None,
) -> RecordResult:
    """Ingest one revenue event idempotently, through exactly the file path (the values are
    rendered as a two-line CSV batch), so it is validated by the same SQL.

    Never raises for a bad value: the result is ``rejected`` with the reason a file would get
    (and the line is in ``ltv.ingest_rejects``). A naive ``occurred_at`` has no offset and is
    rejected like an offset-less timestamp in a file. Re-sending an identical event returns
    ``duplicate`` with the original ``event_id``; the same (source, external_id) with other
    content is rejected as a conflict.
    """
    values = [source, external_id, customer_ref, timestamp_text(occurred_at), kind, amount_text(amount),
              currency, subscription_ref or ""]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EVENT_COLUMNS)
    writer.writerow(["" if v is None else str(v) for v in values])
    # surrogateescape: undecodable input stays undecodable and is rejected as such
    data = buffer.getvalue().encode("utf-8", "surrogateescape")
    result = ingest_stream(conn, "events", [data], file_name=RECORD_FILE_NAME)
    if result.loaded or result.duplicates:
        event_id = scalar(
            conn.cursor(),
            "SELECT event_id FROM ltv.revenue_event_keys WHERE source = %s AND external_id = %s",
            (source, external_id),
        )
        status: Literal["loaded", "duplicate"] = "loaded" if result.loaded else "duplicate"
        return RecordResult(status=status, batch_id=result.batch_id, event_id=int(event_id))  # type: ignore[call-overload]
    reason = scalar(conn.cursor(), "SELECT reason FROM ltv.ingest_rejects WHERE batch_id = %s", (result.batch_id,))
    return RecordResult(status="rejected", batch_id=result.batch_id, reason=str(reason))


def timestamp_text(value: datetime | date | str) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def amount_text(value: Decimal | int | str) -> str:
    # Plain notation: str(Decimal("1E+2")) would be "1E+2", which is not a decimal in the CSV sense.
    return format(value, "f") if isinstance(value, Decimal) else str(value)


# -- reading rejects back --------------------------------------------------------------------------
def recent_rejects(conn: psycopg.Connection, batch_id: int | None = None, limit: int = 20) -> list[RejectRow]:
    """Rejects of one batch in line order, or the most recent ones of any batch."""
    if batch_id is not None:
        query = """SELECT batch_id, file_name, line_no, reason, raw_line FROM ltv.ingest_rejects
                   WHERE batch_id = %s ORDER BY line_no LIMIT %s"""
        params: tuple[object, ...] = (batch_id, limit)
    else:
        query = """SELECT * FROM (SELECT batch_id, file_name, line_no, reason, raw_line, reject_id
                                  FROM ltv.ingest_rejects ORDER BY reject_id DESC LIMIT %s) latest
                   ORDER BY reject_id"""
        params = (limit,)
    with conn.cursor() as cur:
        cur.execute(query, params)
        return [RejectRow(*row[:5]) for row in cur.fetchall()]
