-- hyp2f1.sql — Gauss hypergeometric function ₂F₁(a, b; c; z) for real arguments.
--
-- Used by the BG/NBD conditional expectation (Fader, Hardie & Lee 2005, eq. 10) and the sBG
-- discounted expected residual lifetime (Fader & Hardie 2010).  Formula sources: Abramowitz &
-- Stegun 15.1.1 (series), 15.3.3 (Euler), 15.3.4 (Pfaff), 15.1.20 (Gauss, z = 1).
--
-- ltv.hyp2f1_tail(a, b, c, z) = (₂F₁(a, b; c; z) - 1) / b
--                            = Σ_{k>=1} (a)_k (b+1)_{k-1} z^k / ((c)_k k!)
--   The power series with the common factor b taken out.  The BG/NBD expectation divides
--   ₂F₁(·, a-1; ·; z) - 1 by (a - 1); summing the series without that factor keeps full precision
--   for a → 1 (and a = 1 exactly).  Terms by the ratio recurrence
--       t_{k+1} = t_k (a+k)(b+k) z / ((c+k)(k+1)),
--   compensated (Neumaier) summation.  Stops once a rigorous bound on the whole remaining tail,
--   |t_k| ρ/(1-ρ) with ρ >= every later term ratio (see the code), is below 1e-16 of the sum — a
--   bound, not just a small last term, because for z near 1 the terms decay only like z^k.  Also
--   returns Σ|t_k|, so callers can bound the rounding error of a cancelling (alternating) sum.
--   Returns NULLs instead of a wrong value when the terms overflow or 500,000 terms are not
--   enough; callers raise.
--
-- ltv.hyp2f1(a, b, c, z):
--   * z = 0, a = 0 or b = 0: 1.   a or b a non-positive integer: the terminating polynomial.
--   * c a non-positive integer (not cancelled by a terminating numerator): pole → error.
--   * 0 < z < 0.99 (ltv.hyp2f1_series): the direct series if a + b <= c, else the Euler transform
--       ₂F₁(a, b; c; z) = (1-z)^(c-a-b) ₂F₁(c-a, c-b; c; z),
--     which turns the BG/NBD case (a = r+x, b = b+x, c = a+b+x-1; terms growing like x^k) into
--     a fast-decaying series; the other form too when the first fails or cancels, keeping the
--     better conditioned one.
--   * 0.99 <= z < 1: the 1-z connection formula (A&S 15.3.6) when c-a-b is not within 0.01 of an
--     integer (there its two halves have cancelling poles), else the series.
--   * z < 0: the Pfaff transform ₂F₁(a, b; c; z) = (1-z)^(-a) ₂F₁(a, c-b; c; z/(z-1)), argument in
--     (0, 1), on a or on b, whichever is better conditioned.
--   * z = 1: Gauss's theorem Γ(c)Γ(c-a-b) / (Γ(c-a)Γ(c-b)) when c - a - b > 0, else an error.
--   * z > 1 (branch cut, complex value) or NaN arguments: error.
--   * a result whose rounding-error amplification (1 + |b| Σ|t_k|)/|F| exceeds 1e5 (i.e. fewer
--     than ~11 correct digits; only alternating series with large parameters and z < 0 or a < 0,
--     never the models' positive-parameter case) is refused with an error.
-- Every failure is an error with SQLSTATE 22023 (invalid parameter) or 22003 (out of range);
-- it never returns NaN or a value it has not verified to have converged.

CREATE OR REPLACE FUNCTION ltv.hyp2f1_tail(a float8, b float8, c float8, z float8,
                                           OUT g float8, OUT abs_sum float8)
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    k     int := 1;
    term  float8;
    s     float8;
    comp  float8 := 0;
    t     float8;
    ratio float8;
    rho   float8;
    -- bound on every later ratio t_{j+1}/t_j (j >= k) once (a+k), (b+k), (c+k) are all positive:
    --   (a+j)(b+j)/((c+j)(j+1)) = 1 + ((a+b-c-1) j + ab - c)/((c+j)(j+1))
    --                          <= 1 + A/(c+k) + B/((c+k)(k+1)),  A, B the positive parts,
    -- so the tail after t_k is at most |t_k| rho/(1 - rho).
    big_a float8 := greatest(a + b - c - 1, 0);
    big_b float8 := greatest(a * b - c, 0);
BEGIN
    IF z = 0 OR a = 0 THEN
        g := 0; abs_sum := 0;
        RETURN;
    END IF;
    IF c = 0 THEN
        RETURN;                                       -- pole of the first term: NULL
    END IF;
    term := (a / c) * z;
    s := term;
    abs_sum := abs(term);
    LOOP
        IF c + k = 0 THEN
            IF (a + k) * (b + k) = 0 THEN
                EXIT;                                 -- numerator vanishes first: polynomial ends
            END IF;
            abs_sum := NULL;
            RETURN;                                   -- pole: NULL
        END IF;
        ratio := ((a + k) / (c + k)) * ((b + k) / (k + 1)) * z;
        IF ratio = 0 OR abs(term) < 1e-290 THEN
            EXIT;                                     -- terminated (or beyond any relevance)
        END IF;
        term := term * ratio;
        abs_sum := abs_sum + abs(term);
        t := s + term;                                -- Neumaier compensated sum
        IF abs(s) >= abs(term) THEN
            comp := comp + ((s - t) + term);
        ELSE
            comp := comp + ((term - t) + s);
        END IF;
        s := t;
        k := k + 1;
        IF a + k > 0 AND b + k > 0 AND c + k > 0 THEN
            rho := abs(z) * (1 + big_a / (c + k) + big_b / ((c + k) * (k + 1)));
            IF rho < 1 AND abs(term) * rho <= 1e-16 * (1 - rho) * abs(s + comp) THEN
                EXIT;                                 -- the whole remaining tail is negligible
            END IF;
        END IF;
        IF abs(term) > 1e300 OR k > 500000 THEN
            abs_sum := NULL;
            RETURN;                                   -- overflowing or hopelessly slow: NULL
        END IF;
    END LOOP;
    g := s + comp;
END
$$;

COMMENT ON FUNCTION ltv.hyp2f1_tail(float8, float8, float8, float8) IS
'g = (₂F₁(a,b;c;z) - 1)/b by its power series with the factor b removed (exact also at b = 0), and abs_sum = Σ|terms| (for the rounding-error bound). Intended for |z| < 1 or terminating series; NULLs when the series overflows or does not converge within 500,000 terms. Building block of ltv.hyp2f1 and of the BG/NBD expectation.';

CREATE OR REPLACE FUNCTION ltv.hyp2f1_series(a float8, b float8, c float8, z float8,
                                             OUT f float8, OUT cond float8)
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    t1 record;
    t2 record;
    f2 float8;
    c2 float8;
    lfac float8 := (c - a - b) * ltv.log1p(-z);
BEGIN
    -- 0 < z < 1.  For large k the term ratio is z (1 + (a+b-c-1)/k): the terms grow while
    -- k < (a+b-c-1) z/(1-z).  Euler swaps a+b-c for c-a-b, so try first the form where it is
    -- <= 0; the other form too when the first fails or cancels (cond = (1 + |b| Σ|t|)/|F| is the
    -- factor by which rounding errors are amplified), and keep the better conditioned one.
    IF a + b <= c THEN
        t1 := ltv.hyp2f1_tail(a, b, c, z);
        IF t1.g IS NOT NULL THEN
            f := 1 + b * t1.g;
            cond := (1 + abs(b) * t1.abs_sum) / abs(f);
        END IF;
        IF f IS NULL OR cond > 1e3 THEN
            t2 := ltv.hyp2f1_tail(c - a, c - b, c, z);
            IF t2.g IS NOT NULL THEN
                f2 := 1 + (c - b) * t2.g;
                c2 := (1 + abs(c - b) * t2.abs_sum) / abs(f2);
                IF f IS NULL OR c2 < cond THEN
                    f := f2 * ltv.exp0(lfac);
                    cond := c2;
                END IF;
            END IF;
        END IF;
    ELSE
        t1 := ltv.hyp2f1_tail(c - a, c - b, c, z);
        IF t1.g IS NOT NULL THEN
            f := 1 + (c - b) * t1.g;
            cond := (1 + abs(c - b) * t1.abs_sum) / abs(f);
            IF lfac + ln(abs(f) + 1e-300) > 709 THEN
                RAISE EXCEPTION 'ltv.hyp2f1(%, %, %, %) overflows float8', a, b, c, z
                    USING ERRCODE = 'numeric_value_out_of_range';
            END IF;
            f := f * ltv.exp0(lfac);
        END IF;
        IF f IS NULL OR cond > 1e3 THEN
            t2 := ltv.hyp2f1_tail(a, b, c, z);
            IF t2.g IS NOT NULL THEN
                f2 := 1 + b * t2.g;
                c2 := (1 + abs(b) * t2.abs_sum) / abs(f2);
                IF f IS NULL OR c2 < cond THEN
                    f := f2;
                    cond := c2;
                END IF;
            END IF;
        END IF;
    END IF;
    IF cond = 'Infinity' OR cond = 'NaN' THEN
        cond := 'Infinity';
    END IF;
END
$$;

COMMENT ON FUNCTION ltv.hyp2f1_series(float8, float8, float8, float8) IS
'₂F₁(a,b;c;z) for 0 < z < 1 by the direct or the Euler-transformed power series, whichever converges and is better conditioned; cond = rounding-error amplification (f NULL if neither converges). Helper of ltv.hyp2f1.';

CREATE OR REPLACE FUNCTION ltv.hyp2f1_gamma_ratio(n1 float8, n2 float8, d1 float8, d2 float8,
                                                 lextra float8 DEFAULT 0)
RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    l   float8;
    sgn int := 1;
    y   float8;
BEGIN
    IF (d1 <= 0 AND d1 = floor(d1)) OR (d2 <= 0 AND d2 = floor(d2)) THEN
        RETURN 0;                                     -- 1/Γ vanishes at its poles
    END IF;
    -- Γ(y) < 0 exactly for y in (-1,0), (-3,-2), ...: when ceil(-y) is odd
    FOREACH y IN ARRAY ARRAY[n1, n2, d1, d2] LOOP
        IF y < 0 AND mod(ceil(-y)::numeric, 2) = 1 THEN
            sgn := -sgn;
        END IF;
    END LOOP;
    l := ltv.lgamma(n1) + ltv.lgamma(n2) - ltv.lgamma(d1) - ltv.lgamma(d2) + lextra;
    IF l > 709 THEN
        RAISE EXCEPTION 'ltv.hyp2f1: Γ(%)Γ(%)/(Γ(%)Γ(%)) overflows float8', n1, n2, d1, d2
            USING ERRCODE = 'numeric_value_out_of_range';
    END IF;
    RETURN sgn * ltv.exp0(l);
END
$$;

COMMENT ON FUNCTION ltv.hyp2f1_gamma_ratio(float8, float8, float8, float8, float8) IS
'Γ(n1)Γ(n2)/(Γ(d1)Γ(d2))·exp(lextra) with signs (0 at a pole of a denominator Γ); helper of ltv.hyp2f1 for z = 1 and the 1-z connection formula.';

CREATE OR REPLACE FUNCTION ltv.hyp2f1(a float8, b float8, c float8, z float8)
RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    g       float8;
    f       float8;
    w       float8;
    lfac    float8;
    s       float8;
    a_term  boolean := (a <= 0 AND a = floor(a));    -- a non-positive integer: polynomial
    b_term  boolean := (b <= 0 AND b = floor(b));
    conn_ok boolean;
    cond    float8;
    r1      record;
    r2      record;
BEGIN
    IF 'NaN'::float8 IN (a, b, c, z) THEN            -- PostgreSQL orders NaN above all, = itself
        RAISE EXCEPTION 'ltv.hyp2f1: NaN argument (a=%, b=%, c=%, z=%)', a, b, c, z
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF abs(a) = 'Infinity' OR abs(b) = 'Infinity' OR abs(c) = 'Infinity' OR abs(z) = 'Infinity' THEN
        RAISE EXCEPTION 'ltv.hyp2f1: infinite argument (a=%, b=%, c=%, z=%)', a, b, c, z
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF z = 0 OR a = 0 OR b = 0 THEN
        RETURN 1;
    END IF;
    IF c <= 0 AND c = floor(c)
       AND NOT (a_term AND a >= c) AND NOT (b_term AND b >= c) THEN
        RAISE EXCEPTION 'ltv.hyp2f1: c = % is a non-positive integer (pole)', c
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    IF a_term OR b_term THEN
        -- finite sum; valid for every z
        g := (ltv.hyp2f1_tail(a, b, c, z)).g;
        IF g IS NULL THEN
            RAISE EXCEPTION 'ltv.hyp2f1(%, %, %, %): polynomial overflows float8', a, b, c, z
                USING ERRCODE = 'numeric_value_out_of_range';
        END IF;
        RETURN 1 + b * g;
    END IF;

    IF z > 1 THEN
        RAISE EXCEPTION 'ltv.hyp2f1: z = % > 1 lies on the branch cut (complex value); only z <= 1 is supported', z
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    IF z = 1 THEN
        s := c - a - b;
        IF s <= 0 THEN
            RAISE EXCEPTION 'ltv.hyp2f1: series diverges at z = 1 when c - a - b = % <= 0', s
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RETURN ltv.hyp2f1_gamma_ratio(c, s, c - a, c - b);     -- Gauss's theorem
    END IF;

    s := c - a - b;
    conn_ok := abs(s - round(s)) >= 0.01;
    IF z < 0 THEN
        -- Pfaff: argument w = z/(z-1) in (0, 1), on a or on b; keep the better conditioned
        w := z / (z - 1);
        IF w > 0.99 THEN
            -- far out on the negative axis: let the recursive call pick the 1-w route
            RETURN ltv.exp0(-a * ltv.log1p(-z)) * ltv.hyp2f1(a, c - b, c, w);
        END IF;
        r1 := ltv.hyp2f1_series(a, c - b, c, w);
        r2 := ltv.hyp2f1_series(b, c - a, c, w);
        IF r1.f IS NOT NULL AND (r2.f IS NULL OR r1.cond <= r2.cond) THEN
            f := r1.f; cond := r1.cond; lfac := -a * ltv.log1p(-z);
        ELSE
            f := r2.f; cond := r2.cond; lfac := -b * ltv.log1p(-z);
        END IF;
    ELSE
        -- 0 < z < 1.  Very close to 1 (1-z < 0.01: tens of thousands of terms) use the 1-z
        -- connection formula (A&S 15.3.6) instead, unless c-a-b is within 0.01 of an integer,
        -- where its two halves have poles that cancel (the series is then the only route).
        lfac := 0;
        IF conn_ok AND 1 - z < 0.01 THEN
            RETURN ltv.hyp2f1_connection(a, b, c, z);
        END IF;
        r1 := ltv.hyp2f1_series(a, b, c, z);
        f := r1.f; cond := r1.cond;
        IF (f IS NULL OR cond > 1e5) AND conn_ok THEN
            RETURN ltv.hyp2f1_connection(a, b, c, z);
        END IF;
    END IF;
    IF f IS NULL THEN
        RAISE EXCEPTION 'ltv.hyp2f1(%, %, %, %): power series did not converge (z too close to 1 with c-a-b near an integer)', a, b, c, z
            USING ERRCODE = 'numeric_value_out_of_range';
    END IF;
    -- rounding errors amplified by cond: refuse rather than return a value with < ~11 digits
    IF cond > 1e5 THEN
        RAISE EXCEPTION 'ltv.hyp2f1(%, %, %, %): cancellation in the series would leave too few significant digits (amplification %)', a, b, c, z, cond
            USING ERRCODE = 'numeric_value_out_of_range';
    END IF;

    IF f = 0 OR lfac = 0 THEN
        RETURN f;
    END IF;
    IF lfac + ln(abs(f)) > 709 THEN
        RAISE EXCEPTION 'ltv.hyp2f1(%, %, %, %) overflows float8', a, b, c, z
            USING ERRCODE = 'numeric_value_out_of_range';
    END IF;
    IF lfac + ln(abs(f)) < -745 THEN
        RETURN 0;
    END IF;
    RETURN f * ltv.exp0(lfac);
END
$$;

COMMENT ON FUNCTION ltv.hyp2f1(float8, float8, float8, float8) IS
'Gauss hypergeometric ₂F₁(a, b; c; z) for real z <= 1: power series with Euler (0<z<1) and Pfaff (z<0) transforms, Gauss''s theorem at z = 1, terminating polynomials for any z. Converges to ~1e-15 relative or raises (22023 / 22003); never returns an unverified value.';

CREATE OR REPLACE FUNCTION ltv.hyp2f1_connection(a float8, b float8, c float8, z float8)
RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    s  float8 := c - a - b;
    w  float8 := 1 - z;                               -- exact for z >= 1/2 (Sterbenz)
    t1 float8;
    t2 float8;
BEGIN
    -- A&S 15.3.6, valid for 0 < z < 1 and c - a - b not an integer:
    --   F(a,b;c;z) = Γ(c)Γ(s)/(Γ(c-a)Γ(c-b)) F(a, b; 1-s; 1-z)
    --              + (1-z)^s Γ(c)Γ(-s)/(Γ(a)Γ(b)) F(c-a, c-b; 1+s; 1-z),   s = c - a - b
    t1 := ltv.hyp2f1_gamma_ratio(c, s, c - a, c - b) * ltv.hyp2f1(a, b, 1 - s, w);
    t2 := ltv.hyp2f1_gamma_ratio(c, -s, a, b, s * ln(w)) * ltv.hyp2f1(c - a, c - b, 1 + s, w);
    IF abs(t1) + abs(t2) > 1e5 * abs(t1 + t2) THEN
        RAISE EXCEPTION 'ltv.hyp2f1(%, %, %, %): the two halves of the 1-z connection formula cancel; too few significant digits left', a, b, c, z
            USING ERRCODE = 'numeric_value_out_of_range';
    END IF;
    RETURN t1 + t2;
END
$$;

COMMENT ON FUNCTION ltv.hyp2f1_connection(float8, float8, float8, float8) IS
'₂F₁(a,b;c;z) for z close to 1 by the 1-z connection formula (A&S 15.3.6); c-a-b must not be an integer. Helper of ltv.hyp2f1.';
