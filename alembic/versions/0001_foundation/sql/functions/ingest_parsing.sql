-- Parsing helpers for set-based CSV ingestion (ltv_db/ingest.py).
--
-- PostgreSQL 15 has no pg_input_is_valid(), and one failing cast inside an INSERT … SELECT
-- aborts the whole batch, so every helper here checks its text with patterns and range
-- comparisons *before* casting and returns NULL (or a reason) instead of raising. Whatever
-- passes these checks also passes the target tables' CHECK constraints.
--
-- Why these functions have no `SET search_path` (unlike the rest of sql/functions): they are
-- single-expression LANGUAGE sql functions so that the planner inlines them into the ingestion
-- statements; a SET clause (or STRICT) would stop inlining and turn each use into a full
-- function call, millions of times per file. Instead every ltv object is schema-qualified and
-- pg_catalog, always searched first, supplies the operators and built-ins.
--
-- Why they avoid bounded regex repetition such as [0-9]{4}: PostgreSQL's regex engine builds
-- its DFA state cache on every call, so a long pattern costs ~3-5 µs per value — more than the
-- rest of a row's validation. LIKE (a byte loop) is nearly free, so the common shapes are
-- matched with LIKE plus one short character-class regex, and only unusual shapes pay for the
-- full regex.

-- ltv.ingest_valid_ymd(year, month, day): is this a real calendar date (leap years included)?
CREATE OR REPLACE FUNCTION ltv.ingest_valid_ymd(p_year integer, p_month integer, p_day integer)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT p_year BETWEEN 1 AND 9999
   AND p_month BETWEEN 1 AND 12
   AND p_day >= 1
   AND p_day <= CASE
           WHEN p_month = 2 THEN
               CASE WHEN p_year % 4 = 0 AND (p_year % 100 <> 0 OR p_year % 400 = 0) THEN 29 ELSE 28 END
           WHEN p_month IN (4, 6, 9, 11) THEN 30
           ELSE 31
       END
$$;

COMMENT ON FUNCTION ltv.ingest_valid_ymd(integer, integer, integer) IS
    'True when year-month-day is a real calendar date (years 1-9999, leap years honoured); checked before casting';

-- ltv.parse_timestamptz(text): an ISO 8601 timestamp *with* a UTC offset, else NULL.
--
-- Accepted: YYYY-MM-DD, then T, t or a space, then HH:MM[:SS[.fraction]], then Z, z or
-- ±HH[[:]MM]. Offset-less timestamps are refused (they would silently take the session's time
-- zone). Hours 00-23, minutes and seconds 00-59, days checked against the month's length.
--
-- Fast path for the two shapes machines write, YYYY-MM-DDTHH:MM:SSZ and
-- YYYY-MM-DDTHH:MM:SS±HH:MM: LIKE pins every separator to its position, the class regex admits
-- only digits and separators, and the NOT LIKEs forbid any separator beyond the pinned ones —
-- together: every other position holds a digit. Plain comparisons then check the ranges.
-- Everything else goes through the full regex. Each cast sits at the end of an AND chain whose
-- earlier terms are false for anything it could choke on: PostgreSQL evaluates (and, for
-- constant arguments, folds at plan time) AND terms left to right and stops at the first false.
-- STABLE rather than IMMUTABLE because the
-- text → timestamptz cast is (the offset is mandatory, so TimeZone cannot change the result,
-- but the planner cannot know that).
CREATE OR REPLACE FUNCTION ltv.parse_timestamptz(p_text text)
RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
SELECT CASE
    WHEN CASE
            WHEN p_text LIKE '____-__-__T__:__:__Z' THEN
                p_text ~ '^[-0-9:TZ]+$'
                AND p_text NOT LIKE '%-%-%-%' AND p_text NOT LIKE '%:%:%:%'
                AND p_text NOT LIKE '%T%T%' AND p_text NOT LIKE '%Z%Z%'
            WHEN p_text LIKE '____-__-__T__:__:_____:__' THEN
                p_text ~ '^[-+0-9:T]+$'
                AND p_text NOT LIKE '%:%:%:%:%' AND p_text NOT LIKE '%T%T%'
                AND (   (p_text LIKE '___________________+%'
                         AND p_text NOT LIKE '%-%-%-%' AND p_text NOT LIKE '%+%+%')
                     OR (p_text LIKE '___________________-%'
                         AND p_text NOT LIKE '%-%-%-%-%' AND p_text NOT LIKE '%+%'))
                AND substr(p_text, 21, 2) <= '15' AND substr(p_text, 24, 1) <= '5'
            ELSE false  -- not NULL: a NULL would let the AND chain below reach the casts
         END
         -- every other position is a digit now, so single comparisons check the ranges
         -- (substr counts characters in UTF-8, so the cheaper LIKE takes the fixed patterns)
         AND p_text NOT LIKE '0000%'
         AND p_text NOT LIKE '_____00%' AND substr(p_text, 6, 2) <= '12'
         AND p_text NOT LIKE '________00%'
         AND substr(p_text, 12, 2) <= '23'
         AND substr(p_text, 15, 1) <= '5' AND substr(p_text, 18, 1) <= '5'
         AND CASE WHEN substr(p_text, 9, 2) <= '28' THEN true
                  ELSE ltv.ingest_valid_ymd(left(p_text, 4)::integer, substr(p_text, 6, 2)::integer,
                                            substr(p_text, 9, 2)::integer) END
        THEN p_text::timestamptz
    WHEN length(p_text) <= 40
         AND p_text ~ '^[0-9][0-9][0-9][0-9]-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?([Zz]|[+-](0[0-9]|1[0-5])(:?[0-5][0-9])?)$'
         AND left(p_text, 4) <> '0000'
         AND ltv.ingest_valid_ymd(left(p_text, 4)::integer, substr(p_text, 6, 2)::integer,
                                  substr(p_text, 9, 2)::integer)
        THEN p_text::timestamptz
END
$$;

COMMENT ON FUNCTION ltv.parse_timestamptz(text) IS
    'ISO 8601 timestamp with a mandatory UTC offset (Z or ±HH[:MM]) → timestamptz; NULL when malformed, impossible (e.g. Feb 30) or offset-less';

-- ltv.timestamp_problem(text): why parse_timestamptz refused a value. Only ever evaluated for
-- rows being rejected, to word the reason.
CREATE OR REPLACE FUNCTION ltv.timestamp_problem(p_text text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT CASE
    WHEN p_text IS NULL OR p_text = '' THEN 'is missing'
    WHEN p_text ~ '^[0-9]+-[0-9]+-[0-9]+([Tt ][0-9]+:[0-9]+(:[0-9]+(\.[0-9]+)?)?)?$'
        THEN 'has no UTC offset'
    WHEN p_text ~ '^[0-9]+-[0-9]+-[0-9]+[Tt ][0-9]+:[0-9]+(:[0-9]+(\.[0-9]+)?)?([Zz]|[+-][0-9]+(:?[0-9]+)?)$'
        THEN 'is not a real date and time'
    ELSE 'is not ISO 8601 with an offset'
END
$$;

COMMENT ON FUNCTION ltv.timestamp_problem(text) IS
    'Why ltv.parse_timestamptz returned NULL for a value (missing / no UTC offset / impossible / not ISO 8601)';

-- ltv.parse_date(text): YYYY-MM-DD → date, else NULL (built with make_date, so IMMUTABLE).
CREATE OR REPLACE FUNCTION ltv.parse_date(p_text text)
RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT CASE
    WHEN p_text LIKE '____-__-__' AND p_text ~ '^[0-9]+-[0-9]+-[0-9]+$'
     AND ltv.ingest_valid_ymd(left(p_text, 4)::integer, substr(p_text, 6, 2)::integer,
                              substr(p_text, 9, 2)::integer)
    THEN make_date(left(p_text, 4)::integer, substr(p_text, 6, 2)::integer,
                   substr(p_text, 9, 2)::integer)
END
$$;

COMMENT ON FUNCTION ltv.parse_date(text) IS
    'ISO date YYYY-MM-DD → date; NULL when malformed or not a real calendar day';

-- ltv.parse_month(text): YYYY-MM or YYYY-MM-01 → the first day of that month, else NULL.
CREATE OR REPLACE FUNCTION ltv.parse_month(p_text text)
RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT CASE
    WHEN (p_text LIKE '____-__' OR p_text LIKE '____-__-01') AND p_text ~ '^[0-9]+-[0-9]+(-01)?$'
     AND ltv.ingest_valid_ymd(left(p_text, 4)::integer, substr(p_text, 6, 2)::integer, 1)
    THEN make_date(left(p_text, 4)::integer, substr(p_text, 6, 2)::integer, 1)
END
$$;

COMMENT ON FUNCTION ltv.parse_month(text) IS
    'Calendar month as YYYY-MM or YYYY-MM-01 → its first day; NULL otherwise';

-- ltv.amount_problem(text, exponent): NULL when the text is a non-negative decimal in major
-- units that converts exactly to minor units of a currency with that exponent, else what is
-- wrong with it. Trailing zeros beyond the exponent are exact ("1.230" GBP = 123 pence); any
-- other extra digit is over-precise. At most 14 integer digits, so minor units (at most 10^4
-- per major unit) always fit a bigint and base amounts fit numeric(20,4) at rates below 100.
CREATE OR REPLACE FUNCTION ltv.amount_problem(p_text text, p_exponent integer)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT CASE
    WHEN p_text ~ '^[0-9]+(\.[0-9]+)?$' THEN
        CASE
            WHEN strpos(p_text, '.') = 0 THEN
                CASE WHEN length(p_text) > 14 THEN 'is too large' END
            WHEN strpos(p_text, '.') > 15 THEN 'is too large'
            WHEN length(rtrim(p_text, '0')) - strpos(p_text, '.') > p_exponent
                THEN 'has more decimal places than the currency allows'
        END
    WHEN p_text IS NULL OR p_text = '' THEN 'is missing'
    WHEN p_text ~ '^-[0-9]+(\.[0-9]+)?$' THEN 'is negative'
    ELSE 'is not a decimal number'
END
$$;

COMMENT ON FUNCTION ltv.amount_problem(text, integer) IS
    'NULL when text is a non-negative decimal exactly representable in minor units of a currency with this exponent; otherwise what is wrong';

-- ltv.minor_per_major(exponent): 10^exponent as numeric (100 pence per pound).
CREATE OR REPLACE FUNCTION ltv.minor_per_major(p_exponent integer)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT CASE p_exponent WHEN 0 THEN 1::numeric WHEN 1 THEN 10::numeric WHEN 2 THEN 100::numeric
                       WHEN 3 THEN 1000::numeric WHEN 4 THEN 10000::numeric END
$$;

COMMENT ON FUNCTION ltv.minor_per_major(integer) IS
    'Minor units per major unit for a currency exponent 0-4 (10^exponent)';

-- ltv.amount_to_minor(text, exponent): major-unit decimal text → exact minor units. Only for
-- text that ltv.amount_problem accepted (exactness is what it checked).
CREATE OR REPLACE FUNCTION ltv.amount_to_minor(p_text text, p_exponent integer)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT (p_text::numeric * ltv.minor_per_major(p_exponent))::bigint
$$;

COMMENT ON FUNCTION ltv.amount_to_minor(text, integer) IS
    'Exact conversion of a validated major-unit decimal (e.g. 29.00) to minor units for a currency exponent';

-- ltv.csv_split_line(text): the fields of one CSV line that contains double quotes (RFC 4180:
-- "" inside quotes is a quote), or NULL when the quoting is malformed — e.g. an unterminated
-- quote, which is how a field with an embedded newline arrives (one physical line at a time).
-- Lines without quotes never come here (ingestion splits them with string_to_array).
CREATE OR REPLACE FUNCTION ltv.csv_split_line(p_line text)
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
SELECT CASE
    WHEN p_line ~ '^("([^"]|"")*"|[^,"]*)(,("([^"]|"")*"|[^,"]*))*$' THEN
        ARRAY(
            SELECT CASE WHEN left(m.field[1], 1) = '"'
                        THEN replace(substr(m.field[1], 2, length(m.field[1]) - 2), '""', '"')
                        ELSE m.field[1] END
            FROM regexp_matches(',' || p_line, ',("(?:[^"]|"")*"|[^,"]*)', 'g')
                 WITH ORDINALITY AS m(field, n)
            ORDER BY m.n)
END
$$;

COMMENT ON FUNCTION ltv.csv_split_line(text) IS
    'Fields of one quoted CSV line (RFC 4180 quoting, "" = quote); NULL when the quoting is malformed';
