-- ltv.segment_fits(fit_ids): which fit serves each (vendor category, billing interval) — the
-- segment's own fit, else its parent: sBG 'category/interval' else 'all/interval'; BG/NBD and
-- Gamma-Gamma 'category' else 'all' (the pooling fit_models documents). fit_ids NULL = the
-- active fits; otherwise exactly those (a backtest's). One row per vendor category and billing
-- interval 'month', 'year' or NULL (customers without a subscription: no sBG fit). The one
-- place scoring and backtests look fits up, so both always pool the same way.

CREATE OR REPLACE FUNCTION ltv.segment_fits(p_fit_ids bigint[] DEFAULT NULL)
RETURNS TABLE (
    vendor_category  text,
    billing_interval text,
    sbg_segment      text,
    sbg              jsonb,
    bgnbd_segment    text,
    bg_fit_id        bigint,
    bg               jsonb,
    gg               jsonb
)
LANGUAGE sql STABLE PARALLEL SAFE
-- No SET search_path, deliberately: only then is this one-SELECT SQL function inlined into the
-- caller's query, whose plan ltv.customer_ltv reuses for a whole session (a function planned on
-- every call cost ~1.5 ms per single-customer lookup). Tables are schema-qualified; inlined, the
-- rest is parsed under the caller's pinned search_path; it runs with the caller's privileges.
AS $$
WITH
fits AS (
    SELECT f.fit_id, f.model, f.segment, f.params
    FROM ltv.model_fits f
    WHERE CASE WHEN p_fit_ids IS NULL THEN f.is_active ELSE f.fit_id = ANY (p_fit_ids) END
),
segments AS (
    SELECT c.vendor_category, i.billing_interval
    FROM ltv.vendor_categories c
    CROSS JOIN (VALUES ('month'), ('year'), (NULL)) AS i(billing_interval)
)
SELECT s.vendor_category, s.billing_interval,
       coalesce(sbg_own.segment, sbg_parent.segment),
       coalesce(sbg_own.params, sbg_parent.params),
       coalesce(bg_own.segment, bg_parent.segment),
       coalesce(bg_own.fit_id, bg_parent.fit_id),
       coalesce(bg_own.params, bg_parent.params),
       coalesce(gg_own.params, gg_parent.params)
FROM segments s
LEFT JOIN fits sbg_own    ON sbg_own.model = 'sbg' AND sbg_own.segment = s.vendor_category || '/' || s.billing_interval
LEFT JOIN fits sbg_parent ON sbg_parent.model = 'sbg' AND sbg_parent.segment = 'all/' || s.billing_interval
LEFT JOIN fits bg_own     ON bg_own.model = 'bgnbd' AND bg_own.segment = s.vendor_category
LEFT JOIN fits bg_parent  ON bg_parent.model = 'bgnbd' AND bg_parent.segment = 'all'
LEFT JOIN fits gg_own     ON gg_own.model = 'gamma_gamma' AND gg_own.segment = s.vendor_category
LEFT JOIN fits gg_parent  ON gg_parent.model = 'gamma_gamma' AND gg_parent.segment = 'all'
$$;

COMMENT ON FUNCTION ltv.segment_fits(bigint[]) IS
    'The sBG, BG/NBD and Gamma-Gamma fit serving each vendor category x billing interval (own segment, else its parent)';
