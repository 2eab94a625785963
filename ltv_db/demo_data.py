"""A synthetic wedding-supplier marketplace whose true model parameters are known.

Why it exists: the LTV models can only be trusted when they recover parameters we planted, and
the backtests need realistic data at scale. Everything here is deterministic for a seed, and
every timestamp is strictly before ``as_of`` (default 2026-11-01, never "today").

The processes (time unit for the models: months of 30.4375 days; all timestamps UTC):

* **Signups** from 2021-01-01 to ``as_of``: a daily density that grows ~30 %/year and peaks in
  the engagement season (January–March).
* **Subscriptions** follow a shifted-beta-geometric model per segment (vendor category ×
  billing interval): each subscription draws θ ~ Beta(α, β) and leaves at each renewal with
  probability θ. Billing periods are calendar months / years from the start (a start on the
  31st renews on the last day of shorter months). A charge opens every paid period;
  ``cancelled_at`` falls inside the last paid period and ``ended_at`` is its end. Anything not
  yet known at ``as_of`` is left empty (a cancellation after ``as_of``, an end after ``as_of``).
  A few churned suppliers resubscribe later; the new subscription draws a fresh θ from the same
  Beta, so every subscription is an independent sBG draw.
* **One-off purchases** (featured listings, ads, …) follow BG/NBD + Gamma-Gamma per vendor
  category, independently of the subscription process (a supplier who cancels its plan may
  still buy add-ons; independence keeps each model's truth exact). The clock starts at signup
  (the model's time 0): every later purchase is a repeat transaction. Purchase rate
  λ ~ Gamma(r, α) per month, dropout p ~ Beta(a, b) after each purchase. Spend per purchase
  z ~ Gamma(p, ν) with ν ~ Gamma(q, v) per supplier, drawn in GBP (the base currency) and
  charged in the supplier's currency at that day's rate, so converted amounts reproduce z to
  the cent. Wedding-season seasonality is a time warp of the Poisson process,
  w(t) = 1 + A cos(2π (t − mid-July) / 365.25 d), which keeps the expected count over every
  365.25-day window unchanged.
* **Money corrections**: ~2.5 % of charges are refunded (60 % in full) a few days later,
  ~0.3 % charged back, ~0.2 % of subscription charges partly credited. Corrections that would
  fall on or after ``as_of`` have not happened yet and are dropped.

Scale: suppliers are generated in chunks of ``CHUNK_SUPPLIERS`` with a per-chunk seed spawned
from the root seed (``SeedSequence(seed).spawn``), so output does not depend on the number of
worker processes and memory stays flat; CSV bytes are assembled as numpy byte matrices
(``_Field``) rather than formatted row by row.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

# -- fixed design constants -------------------------------------------------------------------
DEFAULT_AS_OF = date(2026, 11, 1)
START = date(2021, 1, 1)
MONTH_DAYS = 30.4375  # the models' month: 365.25 / 12 days
CHUNK_SUPPLIERS = 50_000  # default chunk size; part of the output's definition
BASE_CURRENCY = "GBP"
FORMAT_ROWS = 200_000  # rows formatted at a time, to bound the byte-matrix memory

ENTITIES: tuple[str, ...] = (
    "plans", "fx_rates", "acquisition_spend", "customers", "subscriptions", "events",
)
HEADERS: dict[str, bytes] = {
    "plans": b"plan_code,tier,billing_interval,list_price,currency\n",
    "fx_rates": b"currency,day,rate\n",
    "acquisition_spend": b"acquisition_channel,month,amount,currency\n",
    "customers": b"customer_ref,vendor_category,country,acquisition_channel,signed_up_at\n",
    "subscriptions": (
        b"subscription_ref,customer_ref,plan_code,billing_interval,started_at,cancelled_at,"
        b"ended_at\n"
    ),
    "events": (
        b"source,external_id,customer_ref,occurred_at,kind,amount,currency,subscription_ref\n"
    ),
}
SUPPLIER_ENTITIES = ("customers", "subscriptions", "events")

# Vendor categories: share of suppliers and the basic / pro / premium tier mix (venues and
# planners buy bigger plans).
CATEGORIES: tuple[tuple[str, float, tuple[float, float, float]], ...] = (
    ("photographer", 0.20, (0.50, 0.35, 0.15)),
    ("videographer", 0.08, (0.45, 0.38, 0.17)),
    ("venue", 0.12, (0.25, 0.40, 0.35)),
    ("florist", 0.10, (0.55, 0.33, 0.12)),
    ("caterer", 0.09, (0.40, 0.40, 0.20)),
    ("planner", 0.10, (0.40, 0.38, 0.22)),
    ("dj_band", 0.09, (0.55, 0.33, 0.12)),
    ("baker", 0.08, (0.60, 0.30, 0.10)),
    ("hair_makeup", 0.09, (0.60, 0.30, 0.10)),
    ("stationer", 0.05, (0.65, 0.27, 0.08)),
)
COUNTRIES: tuple[tuple[str, float, str], ...] = (
    ("GB", 0.35, "GBP"), ("IE", 0.05, "EUR"), ("FR", 0.08, "EUR"), ("DE", 0.08, "EUR"),
    ("ES", 0.06, "EUR"), ("IT", 0.06, "EUR"), ("US", 0.25, "USD"), ("AU", 0.07, "AUD"),
)
CURRENCIES: tuple[str, ...] = ("GBP", "EUR", "USD", "AUD")
# Acquisition channels: share of signups and the cost per acquired supplier (GBP).
CHANNELS: tuple[tuple[str, float, float], ...] = (
    ("organic", 0.35, 6.0), ("paid_search", 0.20, 120.0), ("paid_social", 0.15, 90.0),
    ("referral", 0.12, 40.0), ("wedding_fair", 0.08, 150.0), ("partner", 0.10, 60.0),
)
TIERS: tuple[str, ...] = ("basic", "pro", "premium")
INTERVALS: tuple[str, ...] = ("month", "year")
INTERVAL_MONTHS = np.array([1, 12], dtype=np.int64)
MONTHLY_PRICE: dict[str, tuple[int, int, int]] = {  # major units per tier
    "GBP": (29, 59, 119), "EUR": (35, 69, 139), "USD": (39, 75, 149), "AUD": (55, 109, 219),
}
ANNUAL_MULTIPLIER = 10  # an annual plan costs ten monthly payments
ANNUAL_SHARE = 0.30

SIGNUP_GROWTH_PER_YEAR = 0.30
# Relative signup intensity per calendar month: the engagement season (Christmas to Valentine's
# Day) sends suppliers looking for customers in January–March.
SIGNUP_MONTH_FACTOR = (1.60, 1.50, 1.35, 1.05, 0.90, 0.80, 0.75, 0.75, 0.85, 0.90, 0.80, 0.75)

FX_START = {"EUR": 0.86, "USD": 0.78, "AUD": 0.52}  # GBP per unit
FX_ANNUAL_VOLATILITY = 0.06
FX_MEAN_REVERSION_PER_DAY = 1 / 365  # keeps six years of random walk within sane bounds

SOURCES: tuple[str, ...] = ("stripe", "paypal", "gocardless")
SUBSCRIPTION_SOURCE_SHARE = (0.65, 0.15, 0.20)
ONE_OFF_SOURCE_SHARE = (0.80, 0.20, 0.0)
KINDS: tuple[str, ...] = ("subscription", "one_off", "refund", "chargeback", "credit")
SUBSCRIPTION, ONE_OFF, REFUND, CHARGEBACK, CREDIT = range(5)
# external_id prefixes per (source, kind), in the style of each platform
EXTERNAL_PREFIX: tuple[tuple[str, ...], ...] = (
    ("in_", "ch_", "re_", "dp_", "cn_"),
    ("PAY-", "PAY-", "RF-", "CB-", "CR-"),
    ("PM", "PM", "RF", "CB", "CR"),
)
REFUND_RATE = 0.025
FULL_REFUND_SHARE = 0.60
CHARGEBACK_RATE = 0.003
CREDIT_RATE = 0.002  # subscription charges only
RESUBSCRIBE_RATE = 0.04

ONE_OFF_SEASON_AMPLITUDE = 0.15
ONE_OFF_SEASON_PEAK_DAY = 195.0  # days after 1 January (≈ 15 July); period 365.25 days
YEAR_DAYS = 365.25

# True sBG parameters (α, β) per vendor category: monthly plans, annual plans.
SBG_TRUTH: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "photographer": ((1.10, 9.0), (0.80, 3.5)),
    "videographer": ((1.20, 8.0), (0.85, 3.0)),
    "venue": ((0.80, 12.0), (0.60, 4.5)),
    "florist": ((1.30, 10.0), (0.90, 3.2)),
    "caterer": ((1.00, 11.0), (0.70, 4.0)),
    "planner": ((1.40, 12.0), (0.95, 3.8)),
    "dj_band": ((1.50, 8.5), (1.00, 2.8)),
    "baker": ((1.25, 7.0), (0.90, 2.5)),
    "hair_makeup": ((1.45, 7.5), (0.95, 2.6)),
    "stationer": ((0.90, 6.0), (0.75, 2.2)),
}
# True BG/NBD parameters (r, α, a, b) per vendor category; α is a rate per month. No a is
# exactly 1, where the closed form of E[X(t)] has a removable singularity ((a+b−1)/(a−1)).
BGNBD_TRUTH: dict[str, tuple[float, float, float, float]] = {
    "photographer": (0.90, 3.5, 0.90, 2.6),
    "videographer": (0.80, 3.5, 0.85, 2.8),
    "venue": (1.10, 3.5, 0.75, 2.4),
    "florist": (0.85, 3.8, 1.05, 2.8),
    "caterer": (0.95, 4.0, 0.80, 2.5),
    "planner": (0.75, 3.0, 0.95, 2.6),
    "dj_band": (0.80, 4.0, 1.10, 3.0),
    "baker": (0.70, 3.6, 0.90, 2.4),
    "hair_makeup": (0.75, 3.8, 0.95, 2.5),
    "stationer": (0.60, 3.2, 0.85, 2.2),
}
# True Gamma-Gamma parameters (p, q, v) per vendor category, GBP; mean spend p·v/(q−1) is
# £30 to £72 (venues), which keeps one-off revenue near an eighth of the total.
GG_TRUTH: dict[str, tuple[float, float, float]] = {
    "photographer": (5.0, 4.0, 18.0),
    "videographer": (4.5, 3.5, 22.0),
    "venue": (6.0, 4.5, 42.0),
    "florist": (4.0, 3.8, 21.0),
    "caterer": (5.5, 4.2, 27.0),
    "planner": (4.8, 3.6, 24.0),
    "dj_band": (4.2, 3.9, 21.0),
    "baker": (3.8, 3.4, 19.0),
    "hair_makeup": (4.0, 3.6, 20.0),
    "stationer": (3.5, 3.2, 19.0),
}


# -- configuration and truth ------------------------------------------------------------------
@dataclass(frozen=True)
class DemoConfig:
    """What defines one synthetic marketplace: the same config always gives the same bytes."""

    suppliers: int
    seed: int
    as_of: date = DEFAULT_AS_OF
    # Suppliers per chunk (each chunk has its own spawned seed): the same seed with another
    # chunk size gives other data. Only tests change it, to get several chunks cheaply.
    chunk_suppliers: int = CHUNK_SUPPLIERS
    # First day of the marketplace's history (signups spread from here to as_of). An earlier
    # start gives a longer history and more events per supplier; the default is the design's.
    start: date = START
    # Yearly growth of the signup rate. The default (the design's) makes most suppliers recent;
    # 0 gives a mature marketplace with steady signups and so longer histories per supplier
    # (the 1M benchmark database uses it to reach 20 M events). No model parameter depends on it.
    signup_growth: float = SIGNUP_GROWTH_PER_YEAR

    def __post_init__(self) -> None:
        if not 1 <= self.suppliers < 100_000_000:
            raise ValueError("suppliers must be between 1 and 99,999,999")
        if self.seed < 0:
            raise ValueError("seed must be non-negative")
        if self.chunk_suppliers < 1:
            raise ValueError("chunk_suppliers must be positive")
        if self.as_of <= self.start + timedelta(days=31):
            raise ValueError(f"as_of must be after {self.start + timedelta(days=31)}")
        if not -1 < self.signup_growth < 100:
            raise ValueError("signup_growth must be a yearly rate above -1 (e.g. 0.30 for +30 %)")

    @property
    def n_chunks(self) -> int:
        return -(-self.suppliers // self.chunk_suppliers)

    def chunk_bounds(self, index: int) -> tuple[int, int]:
        """Global index range [first, stop) of the suppliers in chunk ``index``."""
        first = index * self.chunk_suppliers
        return first, min(first + self.chunk_suppliers, self.suppliers)


def generate_truth(
    seed: int,
    suppliers: int = 0,
    as_of: date = DEFAULT_AS_OF,
    start: date = START,
    signup_growth: float = SIGNUP_GROWTH_PER_YEAR,
) -> dict[str, Any]:
    """The true parameters behind a marketplace, as stored in truth.json / ltv.synthetic_truth.

    The parameters are design constants (the seed only drives sampling), so tests can get them
    without generating anything.
    """
    sbg: dict[str, dict[str, Any]] = {}
    for category, per_interval in SBG_TRUTH.items():
        for interval, (alpha, beta) in zip(INTERVALS, per_interval, strict=True):
            sbg[f"{category}/{interval}"] = {"alpha": alpha, "beta": beta, "period": interval}
    bgnbd = {
        category: {"r": r, "alpha": alpha, "a": a, "b": b, "time_unit": "month"}
        for category, (r, alpha, a, b) in BGNBD_TRUTH.items()
    }
    gamma_gamma = {
        category: {"p": p, "q": q, "v": v, "currency": BASE_CURRENCY}
        for category, (p, q, v) in GG_TRUTH.items()
    }
    return {
        "seed": seed,
        "suppliers": suppliers,
        "as_of": as_of.isoformat(),
        "start": start.isoformat(),
        "signup_growth": signup_growth,
        "time_unit": "month",
        "month_days": MONTH_DAYS,
        "models": {"sbg": sbg, "bgnbd": bgnbd, "gamma_gamma": gamma_gamma},
        "segments": {
            "sbg": "vendor_category/billing_interval (one sBG draw per subscription)",
            "bgnbd": "vendor_category; clock starts at signup, every one-off is a repeat",
            "gamma_gamma": "vendor_category; gross one_off amounts in GBP",
        },
        "one_off_seasonality": {
            "amplitude": ONE_OFF_SEASON_AMPLITUDE,
            "peak_day_of_year": ONE_OFF_SEASON_PEAK_DAY,
            "period_days": YEAR_DAYS,
            "form": "intensity multiplier 1 + A*cos(2*pi*(t - peak)/period), t in days since "
            "1970-01-01 UTC",
        },
        "rates": {
            "refund": REFUND_RATE,
            "full_refund_share": FULL_REFUND_SHARE,
            "chargeback": CHARGEBACK_RATE,
            "credit": CREDIT_RATE,
            "resubscribe": RESUBSCRIBE_RATE,
            "annual_share": ANNUAL_SHARE,
        },
    }


def truth_rows(truth: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(model, segment, params) rows for ltv.synthetic_truth."""
    return [
        (model, segment, params)
        for model, segments in truth["models"].items()
        for segment, params in segments.items()
    ]


# -- calendar: integer days / months since 1970, via small lookup tables ----------------------
def _epoch_day(d: date) -> int:
    return (d - date(1970, 1, 1)).days


@dataclass(frozen=True)
class _Calendar:
    """Day ↔ month lookups between the start and a year past ``as_of`` (vectorised add_months)."""

    day0: int
    as_of_day: int
    month0: int
    day_month: np.ndarray  # month index (months since 1970-01) of day day0 + i
    day_dom: np.ndarray  # 0-based day of month of day day0 + i
    month_first: np.ndarray  # first epoch day of month month0 + i
    month_len: np.ndarray  # days in month month0 + i

    @property
    def as_of_sec(self) -> int:
        return self.as_of_day * 86400

    @property
    def as_of_month(self) -> int:
        return int(self.day_month[self.as_of_day - self.day0])

    def add_months(self, sec: np.ndarray, months: np.ndarray | int) -> np.ndarray:
        """``sec`` moved by whole calendar months, day clamped to the target month's length."""
        day = sec // 86400
        tod = sec - day * 86400
        target = self.day_month[day - self.day0] + months - self.month0
        dom = np.minimum(self.day_dom[day - self.day0], self.month_len[target] - 1)
        return (self.month_first[target] + dom) * 86400 + tod

    def periods_started(self, start: np.ndarray, months_per_period: np.ndarray) -> np.ndarray:
        """How many billing periods, counted from ``start``, begin before ``as_of``."""
        month = self.day_month[start // 86400 - self.day0]
        gap = self.as_of_month - month
        # periods whose start month lies before as_of's month certainly began before as_of
        whole = np.where(gap > 0, (gap - 1) // months_per_period + 1, 0)
        # the next one may begin earlier in as_of's own month
        candidate = self.add_months(start, whole * months_per_period)
        return whole + (candidate < self.as_of_sec)


@lru_cache(maxsize=8)
def _calendar(as_of: date, start: date = START) -> _Calendar:
    day0 = _epoch_day(start)
    last = as_of + timedelta(days=800)  # covers period ends up to a year past as_of
    days = np.arange(day0, _epoch_day(last), dtype=np.int64)
    as_dt = days.astype("datetime64[D]")
    months = as_dt.astype("datetime64[M]")
    month_index = months.astype(np.int64)
    month0 = int(month_index[0])
    all_months = np.arange(month0, int(month_index[-1]) + 2, dtype=np.int64)
    firsts = all_months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    return _Calendar(
        day0=day0,
        as_of_day=_epoch_day(as_of),
        month0=month0,
        day_month=month_index,
        day_dom=days - months.astype("datetime64[D]").astype(np.int64),
        month_first=firsts[:-1],
        month_len=np.diff(firsts),
    )


def signup_day_weights(
    as_of: date, start: date = START, growth: float = SIGNUP_GROWTH_PER_YEAR
) -> tuple[np.ndarray, np.ndarray]:
    """Epoch days start … as_of−1 and the probability that a supplier signs up on each."""
    cal = _calendar(as_of, start)
    days = np.arange(cal.day0, cal.as_of_day, dtype=np.int64)
    years = (days - cal.day0) / YEAR_DAYS
    month_of_year = cal.day_month[days - cal.day0] % 12
    weight = np.exp(np.log1p(growth) * years)
    weight *= np.asarray(SIGNUP_MONTH_FACTOR)[month_of_year]
    return days, weight / weight.sum()


# -- one-off seasonality: a time warp -----------------------------------------------------------
def season_warp(days: np.ndarray | float) -> np.ndarray:
    """Operational time W(t) = ∫ w: integrated wedding-season intensity (epoch days → days)."""
    omega = 2 * np.pi / YEAR_DAYS
    t = np.asarray(days, dtype=np.float64)
    return t + ONE_OFF_SEASON_AMPLITUDE / omega * np.sin(omega * (t - ONE_OFF_SEASON_PEAK_DAY))


def _season_unwarp(target: np.ndarray) -> np.ndarray:
    """Calendar epoch days t with W(t) = target (Newton; W' ≥ 1 − A > 0 so it converges fast)."""
    omega = 2 * np.pi / YEAR_DAYS
    t = target.copy()
    for _ in range(6):
        slope = 1 + ONE_OFF_SEASON_AMPLITUDE * np.cos(omega * (t - ONE_OFF_SEASON_PEAK_DAY))
        t -= (season_warp(t) - target) / slope
    return t


# -- reference data: FX, plans, acquisition spend ---------------------------------------------
def _reference_rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    reference, _suppliers = np.random.SeedSequence(seed).spawn(2)
    fx, spend = reference.spawn(2)
    return np.random.default_rng(fx), np.random.default_rng(spend)


def _chunk_rng(seed: int, n_chunks: int, index: int) -> np.random.Generator:
    _reference, suppliers = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(suppliers.spawn(n_chunks)[index])


@lru_cache(maxsize=8)
def fx_table(seed: int, as_of: date, start: date = START) -> tuple[int, np.ndarray]:
    """(first epoch day, rates[currency, day]) to GBP for every day start … as_of−1.

    A mean-reverting random walk of the log rate, rounded to the 10 decimals the table stores,
    so the rate used to convert one-off spend is exactly the published one.
    """
    rng, _ = _reference_rngs(seed)
    cal = _calendar(as_of, start)
    n_days = cal.as_of_day - cal.day0
    rates = np.ones((len(CURRENCIES), n_days))
    sigma = FX_ANNUAL_VOLATILITY / np.sqrt(365.0)
    for ci, currency in enumerate(CURRENCIES):
        if currency == BASE_CURRENCY:
            continue
        mean = np.log(FX_START[currency])
        shocks = rng.normal(0.0, sigma, n_days)
        log_rate = np.empty(n_days)
        level = mean
        for i in range(n_days):  # a few thousand steps: plain loop is fine
            level += FX_MEAN_REVERSION_PER_DAY * (mean - level) + shocks[i]
            log_rate[i] = level
        rates[ci] = np.round(np.exp(log_rate), 10)
    return cal.day0, rates


def plan_codes() -> list[tuple[str, str, str, int, str]]:
    """(plan_code, tier, interval, price_minor, currency) in plan-index order tier→interval→ccy."""
    plans = []
    for ti, tier in enumerate(TIERS):
        for interval in INTERVALS:
            for currency in CURRENCIES:
                monthly = MONTHLY_PRICE[currency][ti]
                price = monthly * (ANNUAL_MULTIPLIER if interval == "year" else 1)
                code = f"{tier}_{interval}_{currency.lower()}"
                plans.append((code, tier, interval, price * 100, currency))
    return plans


def _plans_csv() -> bytes:
    lines = [
        f"{code},{tier},{interval},{minor // 100}.{minor % 100:02d},{currency}\n"
        for code, tier, interval, minor, currency in plan_codes()
    ]
    return "".join(lines).encode()


def _fx_csv(config: DemoConfig) -> bytes:
    day0, rates = fx_table(config.seed, config.as_of, config.start)
    days = [str(d) for d in np.arange(day0, day0 + rates.shape[1]).astype("datetime64[D]")]
    lines = [
        f"{currency},{day},{rate:.10f}\n"
        for ci, currency in enumerate(CURRENCIES)
        if currency != BASE_CURRENCY
        for day, rate in zip(days, rates[ci].tolist(), strict=True)
    ]
    return "".join(lines).encode()


def _acquisition_spend_csv(config: DemoConfig) -> bytes:
    """Monthly spend per channel: expected signups × the channel's cost per signup × noise."""
    _, rng = _reference_rngs(config.seed)
    cal = _calendar(config.as_of, config.start)
    days, prob = signup_day_weights(config.as_of, config.start, config.signup_growth)
    months = cal.day_month[days - cal.day0]
    mass = np.bincount(months - cal.month0, weights=prob)
    lines = []
    for mi, month_mass in enumerate(mass.tolist()):
        month = str(np.datetime64(cal.month0 + mi, "M").astype("datetime64[D]"))
        noise = rng.lognormal(0.0, 0.15, len(CHANNELS))
        for (channel, share, cac), factor in zip(CHANNELS, noise.tolist(), strict=True):
            minor = round(config.suppliers * month_mass * share * cac * factor * 100)
            lines.append(f"{channel},{month},{minor // 100}.{minor % 100:02d},GBP\n")
    return "".join(lines).encode()


# -- CSV bytes as numpy matrices ---------------------------------------------------------------
@dataclass(frozen=True)
class _Field:
    """One CSV column for n rows: (n, w) bytes, and which of them are emitted (None = all)."""

    data: np.ndarray
    mask: np.ndarray | None = None


def _digit_table() -> np.ndarray:
    n = np.arange(10_000)
    out = np.empty((10_000, 4), np.uint8)
    for i, p in enumerate((1000, 100, 10, 1)):
        out[:, i] = 48 + (n // p) % 10
    return out


_DIGITS4 = _digit_table()


def _fixed_digits(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of non-negative integers, as an (n, width) byte matrix."""
    v = np.asarray(values, dtype=np.int64).copy()
    out = np.empty((len(v), width), np.uint8)
    pos = width
    while pos > 0:
        take = min(4, pos)
        out[:, pos - take:pos] = _DIGITS4[v % 10_000][:, 4 - take:]
        v //= 10_000
        pos -= take
    return out


def _uint_field(values: np.ndarray, width: int) -> _Field:
    """Unpadded decimal integers (up to ``width`` digits): right-aligned, leading zeros masked."""
    v = np.asarray(values, dtype=np.int64)
    if len(v) and int(v.max()) >= 10**width:
        raise ValueError(f"value {int(v.max())} does not fit {width} digits")
    n_digits = np.ones(len(v), np.int64)
    for k in range(1, width):
        n_digits += v >= 10**k
    mask = np.arange(width)[None, :] >= (width - n_digits)[:, None]
    return _Field(_fixed_digits(v, width), mask)


def _lut_field(codes: np.ndarray, values: Sequence[bytes]) -> _Field:
    """A categorical column: row i is ``values[codes[i]]``."""
    width = max(1, max(len(v) for v in values))
    table = np.zeros((len(values), width), np.uint8)
    valid = np.zeros((len(values), width), bool)
    for i, v in enumerate(values):
        table[i, : len(v)] = np.frombuffer(v, np.uint8)
        valid[i, : len(v)] = True
    return _Field(table[codes], None if valid.all() else valid[codes])


def _const_field(n: int, value: bytes) -> _Field:
    return _Field(np.broadcast_to(np.frombuffer(value, np.uint8), (n, len(value))))


def _concat(*fields: _Field) -> _Field:
    """Several fields glued into one column (no separator)."""
    data = np.hstack([f.data for f in fields])
    if all(f.mask is None for f in fields):
        return _Field(data)
    masks = [np.ones(f.data.shape, bool) if f.mask is None else f.mask for f in fields]
    return _Field(data, np.hstack(masks))


def _blank_unless(f: _Field, present: np.ndarray) -> _Field:
    """The field where ``present``, an empty string elsewhere."""
    mask = np.broadcast_to(present[:, None], f.data.shape)
    return _Field(f.data, mask if f.mask is None else f.mask & mask)


@lru_cache(maxsize=1)
def _time_table() -> np.ndarray:
    """'HH:MM:SS+00:00' for every second of a day."""
    tod = np.arange(86_400)
    out = np.empty((86_400, 14), np.uint8)
    out[:, 0:2] = _fixed_digits(tod // 3600, 2)
    out[:, 2] = ord(":")
    out[:, 3:5] = _fixed_digits(tod // 60 % 60, 2)
    out[:, 5] = ord(":")
    out[:, 6:8] = _fixed_digits(tod % 60, 2)
    out[:, 8:14] = np.frombuffer(b"+00:00", np.uint8)
    return out


@lru_cache(maxsize=8)
def _date_table(day0: int, n_days: int) -> np.ndarray:
    """'YYYY-MM-DD' for epoch days day0 … day0+n_days−1."""
    days = np.arange(day0, day0 + n_days).astype("datetime64[D]")
    text = np.datetime_as_string(days).astype("S10")
    return text.view(np.uint8).reshape(n_days, 10)


def _date_field(days: np.ndarray, cal: _Calendar) -> _Field:
    table = _date_table(cal.day0, len(cal.day_month))
    return _Field(table[days - cal.day0])


def _timestamp_field(sec: np.ndarray, cal: _Calendar) -> _Field:
    """ISO 8601 UTC timestamps with offset: 2024-03-05T10:11:12+00:00."""
    day = sec // 86_400
    data = np.empty((len(sec), 25), np.uint8)
    data[:, :10] = _date_table(cal.day0, len(cal.day_month))[day - cal.day0]
    data[:, 10] = ord("T")
    data[:, 11:] = _time_table()[sec - day * 86_400]
    return _Field(data)


def _optional_timestamp_field(sec: np.ndarray, cal: _Calendar) -> _Field:
    """Timestamps where ``sec`` ≥ 0, empty where it is −1 (not known at as_of)."""
    present = sec >= 0
    return _blank_unless(_timestamp_field(np.where(present, sec, cal.day0 * 86_400), cal), present)


def _money_field(minor: np.ndarray) -> _Field:
    """Major units with two decimals: 1234 → '12.34'."""
    return _concat(
        _uint_field(minor // 100, 9),
        _const_field(len(minor), b"."),
        _Field(_fixed_digits(minor % 100, 2)),
    )


def _csv_rows(fields: Sequence[_Field]) -> bytes:
    """Join fields with commas into newline-terminated rows, dropping masked-out bytes."""
    n = fields[0].data.shape[0]
    width = sum(f.data.shape[1] for f in fields) + len(fields)
    buf = np.empty((n, width), np.uint8)
    mask = None
    if any(f.mask is not None for f in fields):
        mask = np.ones((n, width), bool)
    col = 0
    for f in fields:
        w = f.data.shape[1]
        buf[:, col:col + w] = f.data
        if f.mask is not None and mask is not None:
            mask[:, col:col + w] = f.mask
        buf[:, col + w] = ord(",")
        col += w + 1
    buf[:, -1] = ord("\n")
    return (buf[mask] if mask is not None else buf).tobytes()


def _format(n: int, build: Callable[[slice], list[_Field]]) -> bytes:
    """Rows 0…n−1 formatted in slices of FORMAT_ROWS, so byte matrices stay small."""
    parts = [_csv_rows(build(slice(i, min(i + FORMAT_ROWS, n)))) for i in range(0, n, FORMAT_ROWS)]
    return b"".join(parts)


def _ref_field(prefix: bytes, numbers: np.ndarray) -> _Field:
    return _concat(_const_field(len(numbers), prefix), _Field(_fixed_digits(numbers, 8)))


# -- one chunk of suppliers --------------------------------------------------------------------
@dataclass
class _Subscriptions:
    """Simulated subscriptions: per subscription, and the flattened charges they made."""

    start: np.ndarray
    cancelled: np.ndarray  # −1 = not (yet) cancelled at as_of
    ended: np.ndarray  # −1 = not ended by as_of
    charge_owner: np.ndarray  # index into the subscriptions for each charge
    charge_sec: np.ndarray


def _simulate_subscriptions(
    rng: np.random.Generator,
    cal: _Calendar,
    start: np.ndarray,
    period_months: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
) -> _Subscriptions:
    """sBG lifetimes: θ ~ Beta(α, β); periods paid ~ Geometric(θ) (leave at each renewal w.p. θ)."""
    n = len(start)
    theta = rng.beta(alpha, beta)
    paid = rng.geometric(np.maximum(theta, 1e-12))
    cancel_fraction = rng.random(n)
    observable = cal.periods_started(start, period_months)
    charges = np.minimum(paid, observable)
    last_start = cal.add_months(start, (charges - 1) * period_months)
    last_end = cal.add_months(start, charges * period_months)
    cancel = last_start + np.floor(cancel_fraction * (last_end - last_start)).astype(np.int64)
    cancelled = np.where((paid <= observable) & (cancel < cal.as_of_sec), cancel, -1)
    ended = np.where(paid < observable, last_end, -1)
    owner = np.repeat(np.arange(n), charges)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(charges) - charges, charges)
    charge_sec = cal.add_months(start[owner], k * period_months[owner])
    return _Subscriptions(start, cancelled, ended, owner, charge_sec)


@dataclass
class _OneOffs:
    owner: np.ndarray  # customer index per purchase
    sec: np.ndarray
    spend_gbp: np.ndarray


def _simulate_one_offs(
    rng: np.random.Generator, cal: _Calendar, signup: np.ndarray, category: np.ndarray
) -> _OneOffs:
    """BG/NBD purchases in seasonally warped time and Gamma-Gamma spend (GBP)."""
    n = len(signup)
    bg = np.array([BGNBD_TRUTH[c[0]] for c in CATEGORIES])[category]
    gg = np.array([GG_TRUTH[c[0]] for c in CATEGORIES])[category]
    lam = rng.gamma(bg[:, 0], 1.0 / bg[:, 1])  # purchases per month while alive
    dropout = np.maximum(rng.beta(bg[:, 2], bg[:, 3]), 1e-12)
    warp0 = season_warp(signup / 86_400)
    tau = (season_warp(cal.as_of_day) - warp0) / MONTH_DAYS  # operational months observed
    arrivals = rng.poisson(lam * tau)  # purchases if the supplier never dropped out
    alive_for = rng.geometric(dropout)  # the purchase after which it drops out
    x = np.minimum(arrivals, alive_for)
    # The first x of `arrivals` uniform order statistics on (0, tau), via exponential spacings:
    # U_(i) = S_i / S_(arrivals+1), where S_(arrivals+1) = S_x + Gamma(arrivals + 1 − x).
    owner = np.repeat(np.arange(n), x)
    spacing = rng.exponential(size=len(owner))
    rest = rng.gamma(arrivals - x + 1.0)
    cum = np.cumsum(spacing)
    before = np.repeat(np.concatenate(([0.0], cum))[np.cumsum(x) - x], x)
    s_i = cum - before
    s_x = np.zeros(n)
    np.add.at(s_x, owner, spacing)
    fraction = s_i / (s_x[owner] + rest[owner])
    day = _season_unwarp(warp0[owner] + fraction * tau[owner] * MONTH_DAYS)
    sec = np.clip(np.floor(day * 86_400).astype(np.int64), signup[owner], cal.as_of_sec - 1)
    nu = rng.gamma(gg[:, 1], 1.0 / gg[:, 2])  # per supplier
    spend = rng.gamma(gg[owner, 0], 1.0 / nu[owner])
    return _OneOffs(owner, sec, spend)


@dataclass
class _Suppliers:
    """Per-supplier draws of one chunk (index i = the chunk's i-th supplier)."""

    number: np.ndarray  # global 1-based supplier number, used in refs
    signup: np.ndarray  # epoch seconds
    category: np.ndarray
    country: np.ndarray
    channel: np.ndarray
    currency: np.ndarray
    interval: np.ndarray  # 0 month, 1 year
    plan: np.ndarray  # index into plan_codes()
    source: np.ndarray  # payment platform of the subscription


def _draw_suppliers(
    rng: np.random.Generator, config: DemoConfig, first: int, stop: int
) -> _Suppliers:
    n = stop - first
    days, prob = signup_day_weights(config.as_of, config.start, config.signup_growth)
    pick = np.searchsorted(np.cumsum(prob), rng.random(n), "right")
    signup = days[np.minimum(pick, len(days) - 1)] * 86_400 + rng.integers(0, 86_400, n)
    category = rng.choice(len(CATEGORIES), n, p=[c[1] for c in CATEGORIES])
    country = rng.choice(len(COUNTRIES), n, p=[c[1] for c in COUNTRIES])
    channel = rng.choice(len(CHANNELS), n, p=[c[1] for c in CHANNELS])
    currency = np.array([CURRENCIES.index(c[2]) for c in COUNTRIES])[country]
    tier_cum = np.cumsum([c[2] for c in CATEGORIES], axis=1)[category]
    tier_u = rng.random(n)
    tier = (tier_u >= tier_cum[:, 0]).astype(np.int64) + (tier_u >= tier_cum[:, 1])
    interval = (rng.random(n) < ANNUAL_SHARE).astype(np.int64)
    source = rng.choice(len(SOURCES), n, p=SUBSCRIPTION_SOURCE_SHARE)
    return _Suppliers(
        number=np.arange(first, stop, dtype=np.int64) + 1,
        signup=signup,
        category=category,
        country=country,
        channel=channel,
        currency=currency,
        interval=interval,
        plan=(tier * len(INTERVALS) + interval) * len(CURRENCIES) + currency,
        source=source,
    )


@dataclass
class _SubscriptionRows:
    """All subscriptions of a chunk, ordered by (supplier, subscription number)."""

    supplier: np.ndarray
    number: np.ndarray  # 1 = at signup, 2 = a resubscription after churn
    start: np.ndarray
    cancelled: np.ndarray  # −1 = not cancelled by as_of
    ended: np.ndarray  # −1 = not ended by as_of


@dataclass
class _Events:
    """Money movements, one entry per event (unordered until formatted)."""

    supplier: np.ndarray
    sec: np.ndarray
    kind: np.ndarray
    minor: np.ndarray
    source: np.ndarray
    subscription: np.ndarray  # subscription number, 0 = none

    def take(self, index: np.ndarray) -> _Events:
        return _Events(*(getattr(self, f)[index] for f in _EVENT_FIELDS))

    @staticmethod
    def concat(*parts: _Events) -> _Events:
        return _Events(*(np.concatenate([getattr(p, f) for p in parts]) for f in _EVENT_FIELDS))


_EVENT_FIELDS = ("supplier", "sec", "kind", "minor", "source", "subscription")


def _draw_subscriptions(
    rng: np.random.Generator, cal: _Calendar, sup: _Suppliers
) -> tuple[_SubscriptionRows, _Events]:
    """Every supplier's subscription from signup, and a resubscription for a few churned ones."""
    n = len(sup.signup)
    sbg = np.array([SBG_TRUTH[c[0]] for c in CATEGORIES])  # [category, interval, (α, β)]
    alpha = sbg[sup.category, sup.interval, 0]
    beta = sbg[sup.category, sup.interval, 1]
    period = INTERVAL_MONTHS[sup.interval]
    first = _simulate_subscriptions(rng, cal, sup.signup, period, alpha, beta)
    gap = rng.integers(14 * 86_400, 365 * 86_400, n)
    again = (first.ended >= 0) & (rng.random(n) < RESUBSCRIBE_RATE)
    who = np.flatnonzero(again & (first.ended + gap < cal.as_of_sec))
    second = _simulate_subscriptions(
        rng, cal, first.ended[who] + gap[who], period[who], alpha[who], beta[who]
    )
    supplier = np.concatenate((np.arange(n), who))
    number = np.concatenate((np.ones(n, np.int64), np.full(len(who), 2)))
    order = np.lexsort((number, supplier))
    rows = _SubscriptionRows(
        supplier=supplier[order],
        number=number[order],
        start=np.concatenate((first.start, second.start))[order],
        cancelled=np.concatenate((first.cancelled, second.cancelled))[order],
        ended=np.concatenate((first.ended, second.ended))[order],
    )
    owner = np.concatenate((first.charge_owner, n + second.charge_owner))  # into `supplier`
    charged = supplier[owner]
    price_minor = np.array([p[3] for p in plan_codes()], dtype=np.int64)
    charges = _Events(
        supplier=charged,
        sec=np.concatenate((first.charge_sec, second.charge_sec)),
        kind=np.full(len(owner), SUBSCRIPTION),
        minor=price_minor[sup.plan[charged]],
        source=sup.source[charged],
        subscription=number[owner],
    )
    return rows, charges


def _draw_purchases(
    rng: np.random.Generator, cal: _Calendar, sup: _Suppliers, config: DemoConfig
) -> _Events:
    """One-off purchases, charged in the supplier's currency at the day's published rate."""
    one_offs = _simulate_one_offs(rng, cal, sup.signup, sup.category)
    count = len(one_offs.owner)
    source = rng.choice(len(SOURCES), count, p=ONE_OFF_SOURCE_SHARE)
    fx_day0, fx = fx_table(config.seed, config.as_of, config.start)
    rate = fx[sup.currency[one_offs.owner], one_offs.sec // 86_400 - fx_day0]
    minor = np.maximum(np.rint(one_offs.spend_gbp / rate * 100).astype(np.int64), 1)
    return _Events(
        supplier=one_offs.owner,
        sec=one_offs.sec,
        kind=np.full(count, ONE_OFF),
        minor=minor,
        source=source,
        subscription=np.zeros(count, np.int64),
    )


def _draw_corrections(rng: np.random.Generator, cal: _Calendar, charges: _Events) -> _Events:
    """Refunds, chargebacks and credits of some charges, days later (dropped if after as_of)."""
    m = len(charges.sec)
    u = rng.random(m)
    fraction = rng.uniform(0.1, 0.9, m)
    full = rng.random(m) < FULL_REFUND_SHARE
    delay_fraction = rng.random(m)
    delay_sec = rng.integers(0, 86_400, m)
    is_refund = u < REFUND_RATE
    is_chargeback = (u >= REFUND_RATE) & (u < REFUND_RATE + CHARGEBACK_RATE)
    is_credit = (
        (u >= REFUND_RATE + CHARGEBACK_RATE)
        & (u < REFUND_RATE + CHARGEBACK_RATE + CREDIT_RATE)
        & (charges.kind == SUBSCRIPTION)
    )
    kind = np.select([is_refund, is_chargeback, is_credit], [REFUND, CHARGEBACK, CREDIT], -1)
    # delay ranges in days: refund 1–20, chargeback 20–75, credit 2–30
    lo = np.select([is_refund, is_chargeback], [1, 20], 2)
    hi = np.select([is_refund, is_chargeback], [20, 75], 30)
    delay_days = lo + np.floor(delay_fraction * (hi - lo)).astype(np.int64)
    sec = charges.sec + delay_days * 86_400 + delay_sec
    # partial refunds give back 10–90 %, credits 5–45 %; chargebacks and full refunds all of it
    share = np.where(is_credit, fraction / 2, np.where(is_refund & ~full, fraction, 1.0))
    minor = np.maximum(np.rint(charges.minor * share).astype(np.int64), 1)
    keep = np.flatnonzero((kind >= 0) & (sec < cal.as_of_sec))
    corrected = charges.take(keep)
    corrected.sec, corrected.kind, corrected.minor = sec[keep], kind[keep], minor[keep]
    return corrected


# -- one chunk as CSV bytes ----------------------------------------------------------------------
def _customers_csv(sup: _Suppliers, cal: _Calendar) -> bytes:
    return _format(len(sup.number), lambda s: [
        _ref_field(b"sup", sup.number[s]),
        _lut_field(sup.category[s], [c[0].encode() for c in CATEGORIES]),
        _lut_field(sup.country[s], [c[0].encode() for c in COUNTRIES]),
        _lut_field(sup.channel[s], [c[0].encode() for c in CHANNELS]),
        _timestamp_field(sup.signup[s], cal),
    ])


def _subscription_ref_field(supplier_number: np.ndarray, subscription: np.ndarray) -> _Field:
    """sub00000042-1: the supplier's number and which of its subscriptions."""
    return _concat(
        _ref_field(b"sub", supplier_number),
        _const_field(len(subscription), b"-"),
        _Field(_fixed_digits(subscription, 1)),
    )


def _subscriptions_csv(subs: _SubscriptionRows, sup: _Suppliers, cal: _Calendar) -> bytes:
    plan_names = [p[0].encode() for p in plan_codes()]
    return _format(len(subs.supplier), lambda s: [
        _subscription_ref_field(sup.number[subs.supplier[s]], subs.number[s]),
        _ref_field(b"sup", sup.number[subs.supplier[s]]),
        _lut_field(sup.plan[subs.supplier[s]], plan_names),
        _lut_field(sup.interval[subs.supplier[s]], [i.encode() for i in INTERVALS]),
        _timestamp_field(subs.start[s], cal),
        _optional_timestamp_field(subs.cancelled[s], cal),
        _optional_timestamp_field(subs.ended[s], cal),
    ])


ORDINAL_DIGITS = 5  # events per supplier in an external_id; far above any simulated count


def _events_csv(events: _Events, sup: _Suppliers, cal: _Calendar) -> bytes:
    """Rows in time order; external_id = platform prefix + supplier number + the event's
    ordinal among that supplier's events, so it is unique per source across all chunks."""
    by_supplier = np.lexsort((events.kind, events.sec, events.supplier))
    counts = np.bincount(events.supplier, minlength=len(sup.number))
    if counts.max(initial=0) >= 10**ORDINAL_DIGITS:
        raise OverflowError("a supplier has more events than external ids can number")
    ordinal = np.empty(len(events.sec), np.int64)
    group_start = np.repeat(np.cumsum(counts) - counts, counts)
    ordinal[by_supplier] = np.arange(len(events.sec)) - group_start
    order = np.lexsort((ordinal, events.supplier, events.sec))
    ev = events.take(order)
    ordinal = ordinal[order]
    number = sup.number[ev.supplier]
    prefixes = [p.encode() for per_source in EXTERNAL_PREFIX for p in per_source]
    return _format(len(order), lambda s: [
        _lut_field(ev.source[s], [src.encode() for src in SOURCES]),
        _concat(
            _lut_field(ev.source[s] * len(KINDS) + ev.kind[s], prefixes),
            _Field(_fixed_digits(number[s], 8)),
            _const_field(len(number[s]), b"-"),
            _Field(_fixed_digits(ordinal[s], ORDINAL_DIGITS)),
        ),
        _ref_field(b"sup", number[s]),
        _timestamp_field(ev.sec[s], cal),
        _lut_field(ev.kind[s], [k.encode() for k in KINDS]),
        _money_field(ev.minor[s]),
        _lut_field(sup.currency[ev.supplier[s]], [c.encode() for c in CURRENCIES]),
        _blank_unless(
            _subscription_ref_field(number[s], ev.subscription[s]), ev.subscription[s] > 0
        ),
    ])


@dataclass
class ChunkOutput:
    """CSV rows (no headers) of one chunk, per supplier entity, and their row counts."""

    index: int
    csv: dict[str, bytes] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)


def generate_chunk(config: DemoConfig, index: int) -> ChunkOutput:
    """Customers, subscriptions and events of the suppliers in chunk ``index``; depends only
    on (config, index), so chunks can be generated anywhere in any order."""
    rng = _chunk_rng(config.seed, config.n_chunks, index)
    cal = _calendar(config.as_of, config.start)
    sup = _draw_suppliers(rng, config, *config.chunk_bounds(index))
    subs, subscription_charges = _draw_subscriptions(rng, cal, sup)
    charges = _Events.concat(subscription_charges, _draw_purchases(rng, cal, sup, config))
    events = _Events.concat(charges, _draw_corrections(rng, cal, charges))
    out = ChunkOutput(index)
    out.csv["customers"] = _customers_csv(sup, cal)
    out.csv["subscriptions"] = _subscriptions_csv(subs, sup, cal)
    out.csv["events"] = _events_csv(events, sup, cal)
    out.rows = {
        "customers": len(sup.number),
        "subscriptions": len(subs.supplier),
        "events": len(events.sec),
    }
    return out


# -- driving the chunks: in order, over worker processes ----------------------------------------
def _chunk_job(args: tuple[DemoConfig, int]) -> ChunkOutput:
    return generate_chunk(*args)


def iter_chunks(config: DemoConfig, workers: int = 2) -> Iterator[ChunkOutput]:
    """Every chunk in index order; with workers > 1 they are generated in parallel processes.

    Each chunk depends only on (seed, index), so the output is the same for any worker count.
    Workers are spawned (not forked) because the caller may run a progress-bar thread.
    """
    jobs = [(config, i) for i in range(config.n_chunks)]
    if workers <= 1 or len(jobs) == 1:
        yield from map(_chunk_job, jobs)
        return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap(_chunk_job, jobs)


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


class Progress:
    """What the generator reports: override to draw a bar (the CLI uses rich)."""

    def start(self, label: str, total: int) -> None:  # pragma: no cover - interface
        """A new phase of ``total`` units begins."""

    def advance(self, units: int) -> None:  # pragma: no cover - interface
        """``units`` more are done."""


class RichProgress(Progress):
    """Progress drawn as a rich bar (on whatever console the caller gives, e.g. stderr)."""

    def __init__(self, bar: Any) -> None:
        self._bar = bar
        self._task: Any = None

    def start(self, label: str, total: int) -> None:
        if self._task is not None:
            self._bar.update(self._task, completed=self._bar.tasks[self._task].total)
        self._task = self._bar.add_task(label, total=total)

    def advance(self, units: int) -> None:
        if self._task is not None:
            self._bar.advance(self._task, units)


@dataclass
class DemoSummary:
    """Row counts per entity (CSV rows, headers excluded) and where the files went."""

    rows: dict[str, int]
    directory: Path | None = None
    truth: dict[str, Any] = field(default_factory=dict)


def write_csv(
    config: DemoConfig,
    directory: Path,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
) -> DemoSummary:
    """Write plans, fx_rates, acquisition_spend, customers, subscriptions, events CSVs and
    truth.json into ``directory``; the same bytes `load` streams into the database."""
    progress = progress or Progress()
    directory.mkdir(parents=True, exist_ok=True)
    rows = {entity: 0 for entity in ENTITIES}
    handles = {entity: (directory / f"{entity}.csv").open("wb") for entity in ENTITIES}
    try:
        for entity, fh in handles.items():
            fh.write(HEADERS[entity])
        for entity, body in (
            ("plans", _plans_csv()),
            ("fx_rates", _fx_csv(config)),
            ("acquisition_spend", _acquisition_spend_csv(config)),
        ):
            handles[entity].write(body)
            rows[entity] = body.count(b"\n")
        progress.start("generating suppliers", config.suppliers)
        for chunk in iter_chunks(config, workers or default_workers()):
            for entity in SUPPLIER_ENTITIES:
                handles[entity].write(chunk.csv[entity])
                rows[entity] += chunk.rows[entity]
            progress.advance(chunk.rows["customers"])
    finally:
        for fh in handles.values():
            fh.close()
    truth = generate_truth(config.seed, config.suppliers, config.as_of, config.start, config.signup_growth)
    (directory / "truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n")
    return DemoSummary(rows=rows, directory=directory, truth=truth)


def _file_chunks(path: Path, progress: Progress, size: int = 8 << 20) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while block := fh.read(size):
            progress.advance(len(block))
            yield block


class DemoLoadError(RuntimeError):
    """The ingestion engine refused part of the generated data (a generator or engine bug)."""


def load(
    conn: Any,
    config: DemoConfig,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    spool: Path | None = None,
) -> DemoSummary:
    """Generate the marketplace and load it through the ingestion engine, then the truth.

    The CSVs are spooled to a temporary directory first: the engine takes one stream per entity
    (customers before subscriptions before events), while generation yields all three per
    chunk. Spooling keeps memory flat and makes the loaded bytes exactly the `--csv` bytes.
    """
    from ltv_db.ingest import ingest_stream

    progress = progress or Progress()
    with tempfile.TemporaryDirectory(prefix="ltv-demo-", dir=spool) as tmp:
        summary = write_csv(config, Path(tmp), workers=workers, progress=progress)
        for entity in ENTITIES:
            path = Path(tmp) / f"{entity}.csv"
            progress.start(f"loading {entity}", path.stat().st_size)
            result = ingest_stream(
                conn, entity, _file_chunks(path, progress), file_name=f"demo-data/{entity}.csv"
            )
            rejected = _rejected(result)
            if rejected:
                raise DemoLoadError(f"{entity}: the ingestion engine rejected {rejected} rows")
            _analyze(conn, entity)
    store_truth(conn, summary.truth)
    if not conn.autocommit:
        conn.commit()  # a loaded marketplace is meant to stay, whatever the caller does next
    summary.directory = None
    return summary


# Tables each entity fills. Freshly bulk-loaded tables have no statistics until autovacuum gets
# to them, and the next entity's batch joins against them (events look up customers,
# subscriptions and FX rates): without ANALYZE those joins are planned for empty tables.
_ANALYZE_TARGETS: dict[str, tuple[str, ...]] = {
    "plans": ("ltv.plans",),
    "fx_rates": ("ltv.fx_rates",),
    "acquisition_spend": ("ltv.acquisition_spend",),
    "customers": ("ltv.customers",),
    "subscriptions": ("ltv.subscriptions",),
    "events": ("ltv.revenue_events", "ltv.revenue_event_keys"),
}


def _analyze(conn: Any, entity: str) -> None:
    for table in _ANALYZE_TARGETS[entity]:
        conn.execute(f"ANALYZE {table}")  # fixed identifiers from the table above


def _rejected(result: Any) -> int:
    value = getattr(result, "rejected", 0)
    if isinstance(value, dict):  # rejected-by-reason
        return sum(value.values())
    return int(value or 0)


def store_truth(conn: Any, truth: dict[str, Any]) -> None:
    """Record the true parameters in ltv.synthetic_truth (replacing an earlier demo's)."""
    from psycopg.types.json import Jsonb

    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO ltv.synthetic_truth (model, segment, params, seed, suppliers)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (model, segment) DO UPDATE
            SET params = EXCLUDED.params, seed = EXCLUDED.seed,
                suppliers = EXCLUDED.suppliers, generated_at = clock_timestamp()
            """,
            [
                (model, segment, Jsonb(params), truth["seed"], truth["suppliers"])
                for model, segment, params in truth_rows(truth)
            ],
        )
