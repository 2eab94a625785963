-- bgnbd_expected_purchases.sql — BG/NBD expected number of purchases.
--
-- Fader, Hardie & Lee (2005), "Counting your customers the easy way: an alternative to the
-- Pareto/NBD model", Marketing Science 24(2):
--   eq. 10 (conditional):  E[X(t) | x, t_x, T] =
--       (a+b+x-1)/(a-1) · [1 - ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x-1; z)]
--       / (1 + δ_{x>0} · a/(b+x-1) · ((α+T)/(α+t_x))^(r+x)),          z = t/(α+T+t)
--   eq. 7 (unconditional, a new customer): the same with x = t_x = T = 0, i.e.
--       (a+b-1)/(a-1) · [1 - (α/(α+t))^r ₂F₁(r, b; a+b-1; t/(α+t))].
-- The numerator is E[X(t) | alive at T] (ltv.bgnbd_expected_purchases_kernels, every horizon of
-- one (x, T) in one call), the reciprocal of the denominator is P(alive) (ltv.bgnbd_p_alive).
--
-- Numerics.  With the Euler transform (A&S 15.3.3), since 1 - z = (α+T)/(α+T+t):
--   ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x-1; z) = (1-z)^(a-1) ₂F₁(A, a-1; C; z),
--   A = a+b-1-r,  C = a+b+x-1,
-- whose series has small numerator and large denominator parameters: it converges fast for x in
-- the hundreds where the original series' terms grow like x^k and overflow.  Writing
-- ₂F₁(A, a-1; C; z) = 1 + (a-1) G with G = Σ_{k>=1} (A)_k (a)_{k-1} z^k / ((C)_k k!) (the series
-- with the factor a-1 taken out), the bracket divided by (a-1) is
--   [1 - e^u]/(a-1),  u = (a-1) w,  w = ln(1-z) + log1p((a-1) G)/(a-1)
--   = -w · expm1(u)/u,
-- which is exact for a → 1 (the formula's removable singularity).  w cancels ln(1-z) against
-- log1p((a-1) G)/(a-1) by up to a factor C/(x+r) (hundreds for x = 0 and small r), so ln(1-z) is
-- taken as log1p(-z) of the very z the series used (see the kernel).  The denominator is
-- evaluated in log space (never overflows for large x).
--
-- Speed.  Scoring evaluates this for every distinct (fit, x, t_x, T) and three horizons, and
-- PL/pgSQL costs about 0.05-0.1 µs per statement and 0.01 µs per float8 operation, so the work
-- is organised to need few statements:
--   * G is summed inside the kernel, for 1e-6 <= z <= 0.95, 0.01 <= a <= 10, 1e-3 <= C <= 1e6 and
--     A > -4 (every scoring input of a realistic fit), where the loops below can neither
--     overflow nor underflow, by the term-ratio recurrence
--       t_{k+1} = t_k ρ_k,  ρ_k = (A+k)(a-1+k) z / ((C+k)(k+1)).
--     For A > -1 (all terms of one sign) the number of terms that makes the tail <= 1e-16 |G| is
--     bounded in advance (kernel comments), so G = t_1 (1 + ρ_1 (1 + ρ_2 (...))) is evaluated by
--     Horner from the inside out, sixteen ratios per statement.  Otherwise a forward loop,
--     eight terms per pass, two statements per term, stops on the running tail bound of
--     ltv.hyp2f1_tail (after a one-term-at-a-time prefix while (A)_k changes sign; it gives up
--     if that prefix cancels by more than a factor 100, or after 5,000 terms).
--   * Everything else (and whatever the fast routes give up on) takes the rigorous route of
--     before: ltv.hyp2f1_tail (compensated sum), then ltv.hyp2f1 (1-z connection formula).
--   * log1p / expm1 / exp0 are written out inline (float_helpers.sql's formulas): a call of a
--     function with SET search_path costs ~3 µs (the GUC save/restore), as much as the whole
--     series for a typical customer.  For the same reason the kernel has no SET clause.  It is
--     meant to be called only from the public functions below, which pin search_path =
--     pg_catalog, ltv, and does not depend on the caller's search_path anyway: every function
--     and object it names is schema-qualified, and its float8 arithmetic operators resolve in
--     pg_catalog, which PostgreSQL searches first unless a search_path lists it explicitly
--     after another schema (tests/test_model_math.py plants a decoy ln/exp to check).
--   * ltv.bgnbd_expected_purchases_multi evaluates several horizons of one customer with one
--     argument check, one P(alive) and one SET.  Call it in a subquery PostgreSQL cannot
--     flatten (... OFFSET 0, or a MATERIALIZED CTE) and take e[1], e[2], ... from there: in a
--     flattened one each e[i] reference calls it again.
-- Measured (PostgreSQL 15, 100,000 inputs, CPU time of the backend on a busy 2-core machine):
-- ltv.bgnbd_expected_purchases ~75-100 µs → ~13-20 µs per call (realistic monthly fit, x mostly
-- small, T up to 60 months, t = 12/24/36 months), ~55-70 → ~12-16 µs on a random grid over the
-- whole parameter domain; values agree with the previous implementation to 4e-12 and with
-- mpmath (60 digits) to 2e-13 (previously 4e-12, from ln(α+T) - ln(α+T+t) in the cancellation).

CREATE OR REPLACE FUNCTION ltv.bgnbd_expected_purchases_kernels(
    r float8, alpha float8, a float8, b float8, x float8, t_cal float8, ts float8[])
RETURNS float8[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
-- No SET search_path on purpose (see the file header): called only by the checked wrappers.
-- Statement count matters here (each PL/pgSQL statement costs about as much as five to ten
-- float8 operations), hence the long expressions.
DECLARE
    eps   float8 := a - 1;
    sa    float8 := a + b - 1 - r;          -- A
    sc    float8 := a + b + x - 1;          -- C
    t     float8;                           -- the horizon of this pass of the loop
    z     float8;                           -- t / (α + T + t)
    -- ln(1 - z).  Where the fast paths run (z <= 0.95) as log1p(-z) = ln(1-z) · z/(1 - (1-z))
    -- (Goldberg) for the very z the series uses: w below cancels ln(1-z) against ln ₂F₁(·; z) (up
    -- to a factor C/(x+r), i.e. hundreds for x = 0 and small r), so both must refer to the same
    -- z to full relative precision (ln(α+T) - ln(α+T+t) would be off by an ulp of ln(α+T+t)
    -- times that factor, up to ~1e-12).  Closer to 1, 1 - z itself has lost digits to the
    -- rounding of z, while ₂F₁ hardly depends on them: there ln(α+T) - ln(α+T+t).
    lz1   float8;
    g     float8;                           -- G
    tk    float8;                           -- forward: the current (last added) term t_k
    s     float8;                           -- forward: Σ_{j<=k} t_j;  backward: the Horner value
    bs    float8;                           -- forward: sum of the current block of eight terms
    pabs  float8;                           -- forward: Σ |t_j| over a sign-changing prefix
    ak    float8;                           -- A + k
    bk    float8;                           -- a - 1 + k
    ck    float8;                           -- C + k
    kk    float8;                           -- k + 1
    lzi   float8;                           -- backward: |ln z|
    nn    float8;                           -- backward: number of terms N
    i     int;
    f     float8;
    w     float8;
    res   float8[] := '{}';                 -- one value per horizon, in order
BEGIN
    FOREACH t IN ARRAY ts LOOP
        IF t IS NULL THEN
            res := res || NULL::float8;
            CONTINUE;
        END IF;
        z := t / (alpha + t_cal + t);
        lz1 := CASE WHEN z > 0.95 THEN pg_catalog.ln(alpha + t_cal) - pg_catalog.ln(alpha + t_cal + t)
                    WHEN 1 - z = 1 THEN -z
                    ELSE pg_catalog.ln(1 - z) * (z / (1 - (1 - z))) END;
        g := NULL;                              -- set by a route below, or not
        nn := NULL;
        IF z >= 1e-6 AND z <= 0.95 AND a >= 0.01 AND a <= 10 AND sc >= 1e-3 AND sc <= 1e6 AND sa > -4 THEN
            -- Backward route (A > -1: all terms have one sign, |G| >= |t_1|, and (A+j), (a-1+j), (C+j)
            -- > 0 for j >= 1).  With ratio_j/z = 1 + (γ j + δ)/((C+j)(j+1)), γ = A+(a-1)-C-1 = a-r-x-2,
            -- δ = A(a-1) - C, and ln(1+v) <= v:
            --   |t_N| <= |t_1| z^(N-1) e^E(N),  E(N) = γ⁺ ln((C+N-1)/C) - (γ⁻/2) ln((C+N)/(C+1)) + δ⁺
            -- (Σ_{j<N} 1/(C+j) between those logarithms, j/(j+1) >= 1/2, Σ 1/((C+j)(j+1)) <= 1), and every
            -- later ratio is <= R_N = z (1 + γ⁺/(C+N) + δ⁺/((C+N)(N+1))), so the tail after t_N is
            -- <= |t_N| R_N/(1-R_N).  So the number of terms N is known before summing: any N with
            --   (N-1) |ln z| >= -ln(1e-16) + E(N) + ln(R_N/(1-R_N))
            -- leaves a tail <= 1e-16 |t_1| <= 1e-16 |G|.  Then G = t_1 (1 + ρ_1 (1 + ρ_2 (... (1 + ρ_M)))),
            -- M >= N-1 a multiple of 16, by Horner from the inside out, sixteen ratios per statement:
            -- about half the work per term of the forward loop below (which must keep both t_k and
            -- the sum: two statements per term).
            IF sa > -1 AND a - r - x <= 2 AND sa * eps <= sc THEN
                -- γ, δ <= 0 (every a <= 2): R_N = z, E(N) = -h(N), h(N) = gg ln((C+N)/(C+1)), gg = γ⁻/2,
                -- and the condition is N |ln z| + h(N) >= L = -ln(1e-16) - ln(1-z).  Two fixed-point
                -- steps N1 = (L - h(N0))/|ln z|, N2 = (L - h(N1))/|ln z| from N0 = L/|ln z| give such
                -- an N (N2 >= N1, so N2 |ln z| + h(N2) >= N2 |ln z| + h(N1) = L).
                lzi := -pg_catalog.ln(z);
                nn := greatest((36.841361487904734 - lz1
                                - (x + r + 2 - a) / 2 * pg_catalog.ln((sc + (36.841361487904734 - lz1) / lzi) / (sc + 1))) / lzi, 1);
                nn := greatest((36.841361487904734 - lz1
                                - (x + r + 2 - a) / 2 * pg_catalog.ln((sc + nn) / (sc + 1))) / lzi, 1);
            ELSIF sa > -1 THEN
                -- γ > 0 or δ > 0 (terms may grow first): iterate N upwards from where R_N < 1 until the
                -- condition holds (it is checked as such, so the iteration needs no theory)
                lzi := -pg_catalog.ln(z);
                nn := greatest(pg_catalog.ceil(z * (greatest(a - r - x - 2, 0) + greatest(sa * eps - sc, 0)) / (1 - z) - sc) + 1, 2);
                FOR i IN 1 .. 30 LOOP
                    f := z * (1 + greatest(a - r - x - 2, 0) / (sc + nn) + greatest(sa * eps - sc, 0) / ((sc + nn) * (nn + 1)));
                    w := 1 + (36.841361487904734 + greatest(a - r - x - 2, 0) * pg_catalog.ln((sc + nn - 1) / sc)
                              - greatest(x + r + 2 - a, 0) / 2 * pg_catalog.ln((sc + nn) / (sc + 1))
                              + greatest(sa * eps - sc, 0) + pg_catalog.ln(f / (1 - f))) / lzi;
                    EXIT WHEN nn >= w OR nn > 5000;
                    nn := pg_catalog.ceil(w);
                END LOOP;
                IF NOT nn >= w OR nn > 5000 THEN
                    nn := NULL;                     -- no N found: forward route
                END IF;
            END IF;
            IF nn IS NOT NULL THEN
                s := 1;
                -- blocks of ratios ρ_k .. ρ_(k+15), k = 16i + 1, from the top block down; A + k etc. are
                -- formed afresh for each block (decrementing them would carry the rounding of A + M, an
                -- ulp of M, down to the first and weightiest ratios)
                FOR i IN REVERSE pg_catalog.ceil((pg_catalog.ceil(nn) - 1) / 16)::int - 1 .. 0 LOOP
                    ak := sa + (16 * i + 1); bk := eps + (16 * i + 1); ck := sc + (16 * i + 1); kk := 16 * i + 2;
                    s := 1 + (ak * bk / (ck * kk) * z) * (1 + ((ak + 1) * (bk + 1) / ((ck + 1) * (kk + 1)) * z) * (1 +
                           ((ak + 2) * (bk + 2) / ((ck + 2) * (kk + 2)) * z) * (1 + ((ak + 3) * (bk + 3) / ((ck + 3) * (kk + 3)) * z) * (1 +
                           ((ak + 4) * (bk + 4) / ((ck + 4) * (kk + 4)) * z) * (1 + ((ak + 5) * (bk + 5) / ((ck + 5) * (kk + 5)) * z) * (1 +
                           ((ak + 6) * (bk + 6) / ((ck + 6) * (kk + 6)) * z) * (1 + ((ak + 7) * (bk + 7) / ((ck + 7) * (kk + 7)) * z) * (1 +
                           ((ak + 8) * (bk + 8) / ((ck + 8) * (kk + 8)) * z) * (1 + ((ak + 9) * (bk + 9) / ((ck + 9) * (kk + 9)) * z) * (1 +
                           ((ak + 10) * (bk + 10) / ((ck + 10) * (kk + 10)) * z) * (1 + ((ak + 11) * (bk + 11) / ((ck + 11) * (kk + 11)) * z) * (1 +
                           ((ak + 12) * (bk + 12) / ((ck + 12) * (kk + 12)) * z) * (1 + ((ak + 13) * (bk + 13) / ((ck + 13) * (kk + 13)) * z) * (1 +
                           ((ak + 14) * (bk + 14) / ((ck + 14) * (kk + 14)) * z) * (1 + ((ak + 15) * (bk + 15) / ((ck + 15) * (kk + 15)) * z) * s)))))))))))))));
                END LOOP;
                g := sa / sc * z * s;
            ELSE
                -- Forward route (A <= -1, or no N found): until a bound on the tail computed along the
                -- way is small.
                tk := sa / sc * z;                  -- t_1
                s := tk;
                ak := sa + 1; bk := a; ck := sc + 1; kk := 2;
                pabs := 0;
                IF ak <= 0 THEN
                    -- (A)_k still changes sign: one term at a time until A + k > 0; pabs - |prefix sum|
                    -- is what the prefix can lose to cancellation
                    pabs := pg_catalog.abs(tk);
                    WHILE ak <= 0 LOOP
                        tk := tk * (ak * bk / (ck * kk) * z);
                        s := s + tk;
                        pabs := pabs + pg_catalog.abs(tk);
                        ak := ak + 1; bk := bk + 1; ck := ck + 1; kk := kk + 1;
                    END LOOP;
                    pabs := pabs - pg_catalog.abs(s);
                END IF;
                -- from here on (A+k), (a-1+k), (C+k) > 0, and every later ratio t_(j+1)/t_j, j >= k, is
                -- <= rho = z (1 + A'/(C+k) + B'/((C+k)(k+1))), A' = max(A+a-C-2, 0), B' = max(A(a-1) - C, 0)
                -- (the bound of ltv.hyp2f1_tail)
                LOOP
                    tk := tk * (ak * bk / (ck * kk) * z);                                   bs := tk;
                    tk := tk * ((ak + 1) * (bk + 1) / ((ck + 1) * (kk + 1)) * z);           bs := bs + tk;
                    tk := tk * ((ak + 2) * (bk + 2) / ((ck + 2) * (kk + 2)) * z);           bs := bs + tk;
                    tk := tk * ((ak + 3) * (bk + 3) / ((ck + 3) * (kk + 3)) * z);           bs := bs + tk;
                    tk := tk * ((ak + 4) * (bk + 4) / ((ck + 4) * (kk + 4)) * z);           bs := bs + tk;
                    tk := tk * ((ak + 5) * (bk + 5) / ((ck + 5) * (kk + 5)) * z);           bs := bs + tk;
                    tk := tk * ((ak + 6) * (bk + 6) / ((ck + 6) * (kk + 6)) * z);           bs := bs + tk;
                    tk := tk * ((ak + 7) * (bk + 7) / ((ck + 7) * (kk + 7)) * z);           bs := bs + tk;
                    s := s + bs;
                    ak := ak + 8; bk := bk + 8; ck := ck + 8; kk := kk + 8;
                    -- tail after t_k <= |t_k| rho/(1-rho) <= 1e-16 |s|  <=>  rho (|t_k| + 1e-16 |s|) <= 1e-16 |s|
                    EXIT WHEN z * (1 + greatest(sa + eps - sc - 1, 0) / ck + greatest(sa * eps - sc, 0) / (ck * kk))
                              * (pg_catalog.abs(tk) + 1e-16 * pg_catalog.abs(s)) <= 1e-16 * pg_catalog.abs(s)
                           OR kk > 5000;
                END LOOP;
                -- accept unless out of terms, or the prefix cancelled by more than a factor 100
                IF kk <= 5000 AND pabs <= 100 * pg_catalog.abs(s) THEN
                    g := s;
                END IF;
            END IF;
        END IF;

        IF g IS NULL THEN
            g := (ltv.hyp2f1_tail(sa, eps, sc, z)).g;       -- rigorous route (NULL if hopeless)
            IF g IS NULL THEN
                -- z so close to 1 that the series is hopeless: connection formula through
                -- ltv.hyp2f1 (raises if it cannot either); a = 1 exactly has no such fallback.
                IF eps = 0 THEN
                    RAISE EXCEPTION 'ltv.bgnbd_expected_purchases: series did not converge (z = %, a = 1)', z
                        USING ERRCODE = 'numeric_value_out_of_range';
                END IF;
                g := (ltv.hyp2f1(sa, eps, sc, z) - 1) / eps;
            END IF;
            f := 1 + eps * g;
            IF f <= 0 THEN
                -- ₂F₁(A, a-1; C; z) <= 0, possible only for C < 0 (x = 0 and a + b < 1; never on the
                -- fast paths): then 1 - (1-z)^(a-1) ₂F₁ >= 1 and the bracket needs no log space
                res := res || (sc * ((1 - pg_catalog.exp(eps * lz1) * f) / eps));
                CONTINUE;
            END IF;
        END IF;

        f := 1 + eps * g;                                   -- ₂F₁(A, a-1; C; z) > 0
        -- w = ln(1-z) + log1p(y)/eps, y = eps g;  log1p(y) = ln(f) · y/(f - 1) (Goldberg)
        w := lz1 + CASE WHEN f = 1 THEN g ELSE pg_catalog.ln(f) * (g / (f - 1)) END;
        -- C · (-w) · expm1(u)/u, u = eps w = ln((1-z)^(a-1) ₂F₁);  expm1(u) = (e^u - 1) · u/ln(e^u)
        -- (Kahan), = u when e^u = 1, and -1 + e^u (0 below -745) when u < -40
        res := res || (sc * CASE WHEN eps * w < -40
                         THEN w * ((1 - CASE WHEN eps * w < -745 THEN 0 ELSE pg_catalog.exp(eps * w) END) / (eps * w))
                         WHEN pg_catalog.exp(eps * w) = 1 THEN -w
                         ELSE -w * ((pg_catalog.exp(eps * w) - 1) / pg_catalog.ln(pg_catalog.exp(eps * w))) END);
    END LOOP;
    RETURN res;
END
$$;

COMMENT ON FUNCTION ltv.bgnbd_expected_purchases_kernels(float8, float8, float8, float8, float8, float8, float8[]) IS
'Internal: BG/NBD E[X(t) | x, alive at T = t_cal] = (a+b+x-1)/(a-1)·[1 - ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x-1; t/(α+T+t))], the numerator of Fader, Hardie & Lee (2005) eq. 10, for every horizon t of ts (NULL for NULL) in one call. No argument checks and no SET search_path (speed): use ltv.bgnbd_expected_purchases / _multi.';

CREATE OR REPLACE FUNCTION ltv.bgnbd_expected_purchases_multi(
    r float8, alpha float8, a float8, b float8,
    x float8, t_x float8, t_cal float8, t float8[])
RETURNS float8[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    ld  float8;
    e   float8 := 1;                        -- the result is kernel · e / d = kernel · P(alive)
    d   float8 := 1;
    th  float8;
    k   float8[];                           -- the kernel per horizon
BEGIN
    IF NOT (r > 0 AND alpha > 0 AND a > 0 AND b > 0 AND r < 'Infinity' AND alpha < 'Infinity'
            AND a < 'Infinity' AND b < 'Infinity' AND x >= 0 AND x = floor(x) AND x < 'Infinity'
            AND t_x >= 0 AND t_cal >= t_x AND t_cal < 'Infinity') THEN
        IF 'NaN'::float8 IN (r, alpha, a, b, x, t_x, t_cal) THEN
            RAISE EXCEPTION 'ltv.bgnbd_expected_purchases: NaN argument' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF NOT (r > 0 AND alpha > 0 AND a > 0 AND b > 0)
           OR r = 'Infinity' OR alpha = 'Infinity' OR a = 'Infinity' OR b = 'Infinity' THEN
            RAISE EXCEPTION 'ltv.bgnbd_expected_purchases: parameters must be positive and finite (r=%, alpha=%, a=%, b=%)', r, alpha, a, b
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF NOT (x >= 0 AND x = floor(x) AND x < 'Infinity') THEN
            RAISE EXCEPTION 'ltv.bgnbd_expected_purchases: x must be a non-negative whole number of repeat purchases, got %', x
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RAISE EXCEPTION 'ltv.bgnbd_expected_purchases: need 0 <= t_x <= t_cal and finite t >= 0 (t_x=%, t_cal=%, t=%)', t_x, t_cal, t
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF x > 0 THEN
        ld := ln(a) - ln(b + x - 1) + (r + x) * (ln(alpha + t_cal) - ln(alpha + t_x));
        IF ld > 0 THEN
            e := CASE WHEN ld > 745 THEN 0 ELSE exp(-ld) END;
            d := 1 + e;
        ELSE
            d := 1 + exp(ld);
        END IF;
    END IF;
    -- the horizons checked before any work (same errors as for one horizon) ...
    FOREACH th IN ARRAY t LOOP
        IF th IS NOT NULL AND NOT (th >= 0 AND th < 'Infinity') THEN
            IF 'NaN'::float8 IN (th) THEN
                RAISE EXCEPTION 'ltv.bgnbd_expected_purchases: NaN argument' USING ERRCODE = 'invalid_parameter_value';
            END IF;
            RAISE EXCEPTION 'ltv.bgnbd_expected_purchases: need 0 <= t_x <= t_cal and finite t >= 0 (t_x=%, t_cal=%, t=%)', t_x, t_cal, th
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    -- ... then the kernel of every positive horizon in one call (0 purchases in no time)
    k := ltv.bgnbd_expected_purchases_kernels(r, alpha, a, b, x, t_cal,
                                              ARRAY(SELECT nullif(u.th, 0) FROM unnest(t) WITH ORDINALITY AS u(th, i) ORDER BY u.i));
    RETURN ARRAY(SELECT CASE WHEN u.th IS NULL THEN NULL WHEN u.th = 0 THEN 0::float8 ELSE k[u.i] * e / d END
                 FROM unnest(t) WITH ORDINALITY AS u(th, i) ORDER BY u.i);
END
$$;

COMMENT ON FUNCTION ltv.bgnbd_expected_purchases_multi(float8, float8, float8, float8, float8, float8, float8, float8[]) IS
'BG/NBD conditional expected number of repeat purchases (ltv.bgnbd_expected_purchases) for several horizons t[] of one customer at once: one result per element of t, in order (NULL for a NULL element); the argument checks, P(alive) and the ₂F₁ kernel call are shared. Same errors.';

-- One horizon: the multi-horizon function with one element (one body, so both give the same
-- value by construction).
CREATE OR REPLACE FUNCTION ltv.bgnbd_expected_purchases(
    r float8, alpha float8, a float8, b float8,
    x float8, t_x float8, t_cal float8, t float8)
RETURNS float8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
    SELECT (ltv.bgnbd_expected_purchases_multi(r, alpha, a, b, x, t_x, t_cal, ARRAY[t]))[1]
$$;

COMMENT ON FUNCTION ltv.bgnbd_expected_purchases(float8, float8, float8, float8, float8, float8, float8, float8) IS
'BG/NBD conditional expected number of repeat purchases in (T, T+t] for a customer with x repeat purchases, last at t_x, observed for t_cal: Fader, Hardie & Lee (2005) eq. 10. Time unit = that of the fit. Errors (22023) for non-positive parameters, non-integer x, t_x > t_cal or t < 0.';

CREATE OR REPLACE FUNCTION ltv.bgnbd_unconditional_purchases(
    r float8, alpha float8, a float8, b float8, t float8)
RETURNS float8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
    -- eq. 7 is eq. 10 at x = t_x = T = 0: one code path for both
    SELECT ltv.bgnbd_expected_purchases(r, alpha, a, b, 0, 0, 0, t)
$$;

COMMENT ON FUNCTION ltv.bgnbd_unconditional_purchases(float8, float8, float8, float8, float8) IS
'BG/NBD expected number of purchases in (0, t] for a randomly chosen new customer: Fader, Hardie & Lee (2005) eq. 7.';
