-- optimizer.sql — the numerical optimiser behind every in-database maximum-likelihood fit.
--
-- ltv.bfgs_minimize(objective, x0, aux, ...)
--   Minimises objective(phi float8[], aux float8[]) → (f float8, g float8[]), where f is the
--   negative log-likelihood and g its analytic gradient, over phi (model parameters in log space,
--   so positivity needs no constraint).  Method: BFGS on the inverse Hessian (Nocedal & Wright,
--   "Numerical Optimization", 2nd ed., Alg. 6.1 with the eq. 6.20 initial scaling), backtracking
--   Armijo line search with quadratic interpolation (ibid. §3.5), steps capped at 2 in log space
--   (a factor e² per iteration) so that no trial point is absurd.  phi is kept in the box
--   [-bound, bound]; a component at the box edge whose gradient pushes outwards is frozen
--   (projected gradient), so a likelihood whose supremum lies at infinity (no interior MLE) ends at
--   the edge instead of wandering — callers report such a fit as not converged.
--   An evaluation that raises a data exception (overflow, log of 0, ...) counts as f = +inf and the
--   step is shortened.  If the quasi-Newton direction fails, the Hessian approximation is reset to
--   steepest descent (a restart); if even that makes no progress the run stops.
--   converged = the projected gradient satisfies max|g_i| <= gtol · max(1, |f|), or the search
--   stalled (no decrease possible even along steepest descent) with max|g_i| <= 1000 · gtol · max(1, |f|).
--   Bounded: max_iter iterations, 60 trial points per line search.
--
-- ltv.bfgs_minimize_from(objective, x0, h0, aux, ...)
--   The same, started from h0 as the inverse-Hessian approximation (NULL: the identity, as
--   above), and also returning the final approximation h. A fit on a sample of the data hands
--   its optimum and its h (scaled by sample weight / total weight: the log-likelihood is a sum)
--   to the fit on everything, which then needs a few Newton-like steps instead of twenty.
--
-- ltv.mle_standard_errors(objective, phi, aux, dtheta_dphi)
--   Standard errors of the natural parameters θ = θ(phi) at the optimum: Hessian of f in phi by
--   central differences of the analytic gradient (step 1e-4, symmetrised), inverted by Cholesky
--   (observed information), then the delta method SE(θ_i) = |dθ_i/dphi_i| sqrt((H⁻¹)_ii).
--   NULL when the Hessian is not positive definite (boundary or flat optimum).

CREATE OR REPLACE FUNCTION ltv.bfgs_minimize_from(
    objective regproc, x0 float8[], h0 float8[], aux float8[],
    max_iter int DEFAULT 200, gtol float8 DEFAULT 1e-9, bound float8 DEFAULT 25,
    OUT x float8[], OUT f float8, OUT grad float8[], OUT converged boolean,
    OUT iterations int, OUT evaluations int, OUT h float8[])
LANGUAGE plpgsql VOLATILE
SET search_path = ltv, pg_catalog
AS $$
DECLARE
    n      int := cardinality(x0);
    q      text := format('SELECT f, g FROM %s($1, $2)', objective);
    gp     float8[];               -- projected gradient
    d      float8[];
    xn     float8[];
    gn     float8[];
    fn     float8;
    s      float8[];
    y      float8[];
    hy     float8[];
    gd     float8;
    step   float8;
    sy     float8;
    yy     float8;
    yhy    float8;
    dmax   float8;
    gmax   float8;
    tmp    float8;
    fresh  boolean := true;        -- h is (a multiple of) the identity
    ok     boolean;
    i      int;
    j      int;
    ls     int;
BEGIN
    IF n IS NULL OR n = 0 THEN
        RAISE EXCEPTION 'ltv.bfgs_minimize: empty starting point' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF h0 IS NULL THEN
        h := array_fill(0::float8, ARRAY[n, n]);
        FOR i IN 1..n LOOP h[i][i] := 1; END LOOP;
    ELSIF array_dims(h0) = format('[1:%s][1:%s]', n, n) THEN
        h := h0;               -- a caller's estimate of the inverse Hessian: Newton-like from step one
        fresh := false;
    ELSE
        RAISE EXCEPTION 'ltv.bfgs_minimize_from: h0 must be an % x % matrix, got %', n, n, array_dims(h0)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    x := x0;
    FOR i IN 1..n LOOP
        x[i] := least(greatest(x[i], -bound), bound);
    END LOOP;
    EXECUTE q INTO f, grad USING x, aux;
    evaluations := 1;
    iterations := 0;
    converged := false;
    IF f IS NULL OR NOT (abs(f) < 'Infinity') OR grad IS NULL OR cardinality(grad) <> n THEN
        RAISE EXCEPTION 'ltv.bfgs_minimize: objective % is not finite at the starting point %', objective, x
            USING ERRCODE = 'numeric_value_out_of_range';
    END IF;

    LOOP
        -- projected gradient: freeze components at the box edge that want to leave it
        gp := grad;
        gmax := 0;
        FOR i IN 1..n LOOP
            IF (x[i] >= bound AND grad[i] < 0) OR (x[i] <= -bound AND grad[i] > 0) THEN
                gp[i] := 0;
            END IF;
            gmax := greatest(gmax, abs(gp[i]));
        END LOOP;
        IF gmax <= gtol * greatest(1, abs(f)) THEN
            converged := true;
            EXIT;
        END IF;
        EXIT WHEN iterations >= max_iter;
        iterations := iterations + 1;

        -- quasi-Newton direction d = -H gp (frozen components stay put)
        d := array_fill(0::float8, ARRAY[n]);
        gd := 0;
        FOR i IN 1..n LOOP
            IF gp[i] = 0 AND grad[i] <> 0 THEN CONTINUE; END IF;
            tmp := 0;
            FOR j IN 1..n LOOP tmp := tmp - h[i][j] * gp[j]; END LOOP;
            d[i] := tmp;
            gd := gd + gp[i] * tmp;
        END LOOP;
        IF NOT gd < 0 THEN
            -- not a descent direction: restart from steepest descent
            FOR i IN 1..n LOOP
                FOR j IN 1..n LOOP h[i][j] := CASE WHEN i = j THEN 1 ELSE 0 END; END LOOP;
                d[i] := -gp[i];
            END LOOP;
            gd := 0;
            FOR i IN 1..n LOOP gd := gd - gp[i] * gp[i]; END LOOP;
            fresh := true;
        END IF;
        dmax := 0;
        FOR i IN 1..n LOOP dmax := greatest(dmax, abs(d[i])); END LOOP;
        IF dmax > 2 THEN
            FOR i IN 1..n LOOP d[i] := d[i] * (2 / dmax); END LOOP;
            gd := gd * (2 / dmax);
        END IF;

        -- backtracking line search (Armijo, c1 = 1e-4)
        step := 1;
        ok := false;
        FOR ls IN 1..60 LOOP
            xn := x;
            FOR i IN 1..n LOOP
                xn[i] := least(greatest(x[i] + step * d[i], -bound), bound);
            END LOOP;
            BEGIN
                EXECUTE q INTO fn, gn USING xn, aux;
            EXCEPTION WHEN data_exception THEN
                fn := NULL;
            END;
            evaluations := evaluations + 1;
            IF fn IS NOT NULL AND abs(fn) < 'Infinity' AND gn IS NOT NULL THEN
                ok := true;
                tmp := 0;                                 -- directional derivative at xn
                FOR i IN 1..n LOOP
                    IF NOT abs(gn[i]) < 'Infinity' THEN ok := false; END IF;
                    tmp := tmp + gn[i] * (xn[i] - x[i]);
                END LOOP;
                -- Armijo; or, once f is flat to rounding, the approximate Wolfe conditions of
                -- Hager & Zhang (2005): f did not rise beyond noise and the slope along d shrank.
                -- Without the latter BFGS stalls a hair short of the optimum, where f has no
                -- digits left to show a decrease but the gradient still does.
                ok := ok AND (fn <= f + 1e-4 * step * gd
                              OR (fn <= f + 1e-12 * abs(f)
                                  AND tmp >= 0.9 * step * gd AND tmp <= -0.8 * step * gd));
                EXIT WHEN ok;
            END IF;
            IF fn IS NOT NULL AND abs(fn) < 'Infinity' AND fn - f - gd * step > 0 THEN
                -- minimiser of the quadratic through f, f'(0) = gd and fn, kept in [0.1, 0.5]·step
                tmp := -gd * step * step / (2 * (fn - f - gd * step));
                step := least(greatest(tmp, 0.1 * step), 0.5 * step);
            ELSE
                step := 0.5 * step;
            END IF;
        END LOOP;

        IF NOT ok THEN
            IF fresh THEN
                -- even steepest descent cannot improve: stalled.  Accept as converged when the
                -- gradient is small on a looser scale (f has run out of significant digits).
                converged := gmax <= 1e3 * gtol * greatest(1, abs(f));
                EXIT;
            END IF;
            FOR i IN 1..n LOOP
                FOR j IN 1..n LOOP h[i][j] := CASE WHEN i = j THEN 1 ELSE 0 END; END LOOP;
            END LOOP;
            fresh := true;
            CONTINUE;
        END IF;

        s := array_fill(0::float8, ARRAY[n]);
        y := array_fill(0::float8, ARRAY[n]);
        sy := 0; yy := 0;
        FOR i IN 1..n LOOP
            s[i] := xn[i] - x[i];
            y[i] := gn[i] - grad[i];
            sy := sy + s[i] * y[i];
            yy := yy + y[i] * y[i];
        END LOOP;
        IF sy > 1e-12 * sqrt(yy) * sqrt((SELECT sum(v * v) FROM unnest(s) v)) THEN
            IF fresh THEN
                FOR i IN 1..n LOOP h[i][i] := sy / yy; END LOOP;
                fresh := false;
            END IF;
            -- H+ = H + (sy + y'Hy) ss'/sy² - (Hy s' + s y'H)/sy
            hy := array_fill(0::float8, ARRAY[n]);
            yhy := 0;
            FOR i IN 1..n LOOP
                tmp := 0;
                FOR j IN 1..n LOOP tmp := tmp + h[i][j] * y[j]; END LOOP;
                hy[i] := tmp;
                yhy := yhy + y[i] * tmp;
            END LOOP;
            FOR i IN 1..n LOOP
                FOR j IN 1..n LOOP
                    h[i][j] := h[i][j] + (sy + yhy) * s[i] * s[j] / (sy * sy)
                               - (hy[i] * s[j] + s[i] * hy[j]) / sy;
                END LOOP;
            END LOOP;
        END IF;
        x := xn;
        f := fn;
        grad := gn;
    END LOOP;
END
$$;

COMMENT ON FUNCTION ltv.bfgs_minimize_from(regproc, float8[], float8[], float8[], int, float8, float8) IS
'ltv.bfgs_minimize started from an inverse-Hessian estimate h0 (NULL: the identity), also returning the final inverse-Hessian approximation h: a fit on a sample hands its curvature to the fit on all the data.';

CREATE OR REPLACE FUNCTION ltv.bfgs_minimize(
    objective regproc, x0 float8[], aux float8[],
    max_iter int DEFAULT 200, gtol float8 DEFAULT 1e-9, bound float8 DEFAULT 25,
    OUT x float8[], OUT f float8, OUT grad float8[], OUT converged boolean,
    OUT iterations int, OUT evaluations int)
LANGUAGE sql VOLATILE
SET search_path = ltv, pg_catalog
AS $$
SELECT b.x, b.f, b.grad, b.converged, b.iterations, b.evaluations
FROM ltv.bfgs_minimize_from(objective, x0, NULL, aux, max_iter, gtol, bound) b
$$;

COMMENT ON FUNCTION ltv.bfgs_minimize(regproc, float8[], float8[], int, float8, float8) IS
'BFGS minimiser with backtracking line search, restarts and box [-bound, bound] for objective(phi float8[], aux float8[]) returning (f float8, g float8[]). Bounded iterations; converged = max|projected gradient| <= gtol·max(1,|f|). Engine of ltv.fit_sbg, ltv.fit_bgnbd, ltv.fit_gamma_gamma.';

CREATE OR REPLACE FUNCTION ltv.mle_standard_errors(
    objective regproc, phi float8[], aux float8[], dtheta_dphi float8[], h float8 DEFAULT 1e-4)
RETURNS float8[]
LANGUAGE plpgsql VOLATILE
SET search_path = ltv, pg_catalog
AS $$
DECLARE
    n    int := cardinality(phi);
    q    text := format('SELECT g FROM %s($1, $2)', objective);
    hess float8[] := array_fill(0::float8, ARRAY[n, n]);
    l    float8[] := array_fill(0::float8, ARRAY[n, n]);
    gp   float8[];
    gm   float8[];
    xp   float8[];
    se   float8[] := array_fill(NULL::float8, ARRAY[n]);
    col  float8[];
    tmp  float8;
    i    int;
    j    int;
    k    int;
BEGIN
    BEGIN
        FOR j IN 1..n LOOP
            xp := phi; xp[j] := phi[j] + h;
            EXECUTE q INTO gp USING xp, aux;
            xp := phi; xp[j] := phi[j] - h;
            EXECUTE q INTO gm USING xp, aux;
            FOR i IN 1..n LOOP
                hess[i][j] := (gp[i] - gm[i]) / (2 * h);
            END LOOP;
        END LOOP;
    EXCEPTION WHEN data_exception THEN
        RETURN NULL;
    END;
    FOR i IN 1..n LOOP
        FOR j IN 1..i - 1 LOOP
            tmp := (hess[i][j] + hess[j][i]) / 2;
            hess[i][j] := tmp; hess[j][i] := tmp;
        END LOOP;
    END LOOP;
    -- Cholesky hess = L L'
    FOR j IN 1..n LOOP
        tmp := hess[j][j];
        FOR k IN 1..j - 1 LOOP tmp := tmp - l[j][k] * l[j][k]; END LOOP;
        IF NOT (tmp > 0 AND tmp < 'Infinity') THEN
            RETURN NULL;                                  -- not positive definite
        END IF;
        l[j][j] := sqrt(tmp);
        FOR i IN j + 1..n LOOP
            tmp := hess[i][j];
            FOR k IN 1..j - 1 LOOP tmp := tmp - l[i][k] * l[j][k]; END LOOP;
            l[i][j] := tmp / l[j][j];
        END LOOP;
    END LOOP;
    -- (H⁻¹)_jj = ‖L⁻¹ e_j‖²: forward-substitute each unit vector
    FOR j IN 1..n LOOP
        col := array_fill(0::float8, ARRAY[n]);
        FOR i IN j..n LOOP
            tmp := CASE WHEN i = j THEN 1 ELSE 0 END;
            FOR k IN j..i - 1 LOOP tmp := tmp - l[i][k] * col[k]; END LOOP;
            col[i] := tmp / l[i][i];
        END LOOP;
        tmp := 0;
        FOR i IN j..n LOOP tmp := tmp + col[i] * col[i]; END LOOP;
        se[j] := abs(dtheta_dphi[j]) * sqrt(tmp);
    END LOOP;
    RETURN se;
END
$$;

COMMENT ON FUNCTION ltv.mle_standard_errors(regproc, float8[], float8[], float8[], float8) IS
'Asymptotic standard errors of MLE parameters: numerical Hessian (central differences of the analytic gradient of objective in phi), Cholesky-inverted, delta method with dtheta_dphi. NULL when the Hessian is not positive definite.';
