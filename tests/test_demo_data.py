"""The synthetic marketplace: determinism, the shape of its output, that its processes follow
the planted sBG / BG/NBD / Gamma-Gamma truth, and that it loads through the ingestion engine."""

from __future__ import annotations

import calendar
import csv
import hashlib
import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import psycopg
import pytest
from scipy.special import hyp2f1

from ltv_db import demo_data
from ltv_db.demo_data import DemoConfig, generate_truth, write_csv
from tests.conftest import TEMPLATE_DB, create_database, drop_database, run_cli

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
LARGE = DemoConfig(suppliers=20_000, seed=11)
CATEGORIES = {
    "photographer", "videographer", "venue", "florist", "caterer",
    "planner", "dj_band", "baker", "hair_makeup", "stationer",
}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def ts(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.utcoffset() is not None, text
    return value


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar months later, the day clamped to the month's length (as billing does)."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


@dataclass
class Market:
    """One generated marketplace, parsed."""

    directory: Path
    plans: dict[str, dict[str, str]]
    fx: dict[tuple[str, str], Decimal]
    spend: list[dict[str, str]]
    customers: dict[str, dict[str, str]]
    subscriptions: dict[str, dict[str, str]]
    events: list[dict[str, str]]
    truth: dict

    def to_gbp(self, event: dict[str, str]) -> float:
        day = event["occurred_at"][:10]
        rate = Decimal(1) if event["currency"] == "GBP" else self.fx[(event["currency"], day)]
        return float(Decimal(event["amount"]) * rate)


def parse(directory: Path) -> Market:
    return Market(
        directory=directory,
        plans={r["plan_code"]: r for r in read_csv(directory / "plans.csv")},
        fx={(r["currency"], r["day"]): Decimal(r["rate"]) for r in read_csv(directory / "fx_rates.csv")},
        spend=read_csv(directory / "acquisition_spend.csv"),
        customers={r["customer_ref"]: r for r in read_csv(directory / "customers.csv")},
        subscriptions={r["subscription_ref"]: r for r in read_csv(directory / "subscriptions.csv")},
        events=read_csv(directory / "events.csv"),
        truth=json.loads((directory / "truth.json").read_text()),
    )


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Market:
    directory = tmp_path_factory.mktemp("market")
    write_csv(LARGE, directory, workers=1)
    return parse(directory)


def file_digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


# -- determinism -----------------------------------------------------------------------------------
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        write_csv(DemoConfig(suppliers=3_000, seed=seed), tmp_path / name, workers=1)
    a, b, c = (file_digests(tmp_path / n) for n in "abc")
    assert set(a) == {f"{e}.csv" for e in demo_data.ENTITIES} | {"truth.json"}
    assert a == b
    for name in ("customers.csv", "subscriptions.csv", "events.csv", "fx_rates.csv", "acquisition_spend.csv"):
        assert a[name] != c[name], name
    assert a["plans.csv"] == c["plans.csv"]  # the price list is not random


def test_output_does_not_depend_on_worker_processes(tmp_path: Path) -> None:
    config = DemoConfig(suppliers=2_500, seed=3, chunk_suppliers=1_000)
    assert config.n_chunks == 3
    write_csv(config, tmp_path / "one", workers=1)
    write_csv(config, tmp_path / "two", workers=2)
    assert file_digests(tmp_path / "one") == file_digests(tmp_path / "two")
    last = demo_data.generate_chunk(config, 2)
    assert last.rows["customers"] == 500
    assert last.csv["customers"].startswith(b"sup00002001,")
    assert (tmp_path / "one" / "customers.csv").read_bytes().endswith(last.csv["customers"])


def test_optional_start_gives_a_longer_history_default_unchanged(tmp_path: Path) -> None:
    default = DemoConfig(suppliers=2_000, seed=4)
    assert default.start == demo_data.START == date(2021, 1, 1)
    assert DemoConfig(suppliers=2_000, seed=4, start=date(2021, 1, 1)) == default
    write_csv(default, tmp_path / "default", workers=1)
    write_csv(DemoConfig(suppliers=2_000, seed=4, start=date(2016, 1, 1)), tmp_path / "longer", workers=1)
    rows = {name: list(csv.DictReader((tmp_path / name / "customers.csv").open())) for name in ("default", "longer")}
    assert min(r["signed_up_at"] for r in rows["default"]) >= "2021-01-01"
    assert min(r["signed_up_at"] for r in rows["longer"]) < "2021-01-01"
    fx = list(csv.DictReader((tmp_path / "longer" / "fx_rates.csv").open()))
    assert min(r["day"] for r in fx) == "2016-01-01"
    assert json.loads((tmp_path / "longer" / "truth.json").read_text())["start"] == "2016-01-01"
    assert json.loads((tmp_path / "default" / "truth.json").read_text())["start"] == "2021-01-01"
    with pytest.raises(ValueError, match="as_of must be after"):
        DemoConfig(suppliers=1, seed=1, start=date(2026, 10, 15))


# -- shape -------------------------------------------------------------------------------------------
def test_reference_data(market: Market) -> None:
    assert len(market.plans) == 24
    for code, plan in market.plans.items():
        assert code == f"{plan['tier']}_{plan['billing_interval']}_{plan['currency'].lower()}"
        if plan["billing_interval"] == "year":
            monthly = market.plans[code.replace("_year_", "_month_")]
            assert Decimal(plan["list_price"]) == 10 * Decimal(monthly["list_price"])
    assert {p["currency"] for p in market.plans.values()} == {"GBP", "EUR", "USD", "AUD"}
    # a rate for every currency and day of the period, stored with at most 10 decimals
    n_days = (AS_OF.date() - date(2021, 1, 1)).days
    assert len(market.fx) == 3 * n_days
    assert {c for c, _ in market.fx} == {"EUR", "USD", "AUD"}
    assert all(-rate.as_tuple().exponent <= 10 for rate in market.fx.values())
    assert 0.6 < float(market.fx[("EUR", "2026-10-31")]) < 1.2
    months = sorted({r["month"] for r in market.spend})
    assert months[0] == "2021-01-01" and months[-1] == "2026-10-01" and len(months) == 70
    assert {r["acquisition_channel"] for r in market.spend} == {
        "organic", "paid_search", "paid_social", "referral", "wedding_fair", "partner",
    }
    assert all(Decimal(r["amount"]) > 0 and r["currency"] == "GBP" for r in market.spend)


def test_customers(market: Market) -> None:
    customers = market.customers.values()
    assert len(market.customers) == LARGE.suppliers
    categories = Counter(c["vendor_category"] for c in customers)
    assert set(categories) == CATEGORIES
    assert categories.most_common(1)[0][0] == "photographer"
    assert 0.18 < categories["photographer"] / LARGE.suppliers < 0.22
    assert {c["country"] for c in customers} == {"GB", "IE", "FR", "DE", "ES", "IT", "US", "AU"}
    signups = [ts(c["signed_up_at"]) for c in customers]
    assert min(signups) >= datetime(2021, 1, 1, tzinfo=UTC) and max(signups) < AS_OF
    # engagement season: in every full year January–March beat the other months on average,
    # and the business grows year on year
    per_month = Counter((s.year, s.month) for s in signups)
    for year in range(2021, 2026):
        peak = sum(per_month[(year, m)] for m in (1, 2, 3)) / 3
        rest = sum(per_month[(year, m)] for m in range(4, 13)) / 9
        assert peak > 1.3 * rest, (year, peak, rest)
    per_year = [sum(per_month[(y, m)] for m in range(1, 13)) for y in range(2021, 2026)]
    assert per_year == sorted(per_year)


def test_subscriptions(market: Market) -> None:
    per_customer = Counter(s["customer_ref"] for s in market.subscriptions.values())
    assert set(per_customer) == set(market.customers)
    assert 1 in per_customer.values() and max(per_customer.values()) == 2  # a few resubscribe
    for ref, sub in market.subscriptions.items():
        plan = market.plans[sub["plan_code"]]
        assert sub["billing_interval"] == plan["billing_interval"]
        started = ts(sub["started_at"])
        assert started < AS_OF
        if ref.endswith("-1"):
            assert sub["started_at"] == market.customers[sub["customer_ref"]]["signed_up_at"]
        if sub["cancelled_at"]:
            assert started <= ts(sub["cancelled_at"]) < AS_OF
        if sub["ended_at"]:
            assert sub["cancelled_at"] and ts(sub["cancelled_at"]) <= ts(sub["ended_at"]) < AS_OF
    intervals = Counter(s["billing_interval"] for s in market.subscriptions.values())
    assert 0.25 < intervals["year"] / sum(intervals.values()) < 0.35


def test_events_reference_known_rows_and_are_consistent(market: Market) -> None:
    assert {e["kind"] for e in market.events} == {"subscription", "one_off", "refund", "chargeback", "credit"}
    assert {e["currency"] for e in market.events} == {"GBP", "EUR", "USD", "AUD"}
    assert {e["source"] for e in market.events} == {"stripe", "paypal", "gocardless"}
    keys = Counter((e["source"], e["external_id"]) for e in market.events)
    assert max(keys.values()) == 1
    charges: dict[str, list[datetime]] = defaultdict(list)
    largest_one_off: Counter[str] = Counter()
    corrections = []
    for e in market.events:
        assert e["customer_ref"] in market.customers
        moment = ts(e["occurred_at"])
        assert ts(market.customers[e["customer_ref"]]["signed_up_at"]) <= moment < AS_OF
        amount = Decimal(e["amount"])
        assert amount > 0 and -amount.as_tuple().exponent == 2
        if e["subscription_ref"]:
            sub = market.subscriptions[e["subscription_ref"]]
            assert sub["customer_ref"] == e["customer_ref"]
            plan = market.plans[sub["plan_code"]]
            assert e["currency"] == plan["currency"]
        if e["kind"] == "subscription":
            assert e["subscription_ref"] and amount == Decimal(plan["list_price"])
            charges[e["subscription_ref"]].append(moment)
        elif e["kind"] == "one_off":
            assert not e["subscription_ref"]
            largest_one_off[e["customer_ref"]] = max(largest_one_off[e["customer_ref"]], amount)
        else:
            corrections.append((e, amount, plan if e["subscription_ref"] else None))
    # a refund, chargeback or credit never exceeds what it corrects
    for e, amount, plan in corrections:
        limit = Decimal(plan["list_price"]) if plan else largest_one_off[e["customer_ref"]]
        assert amount <= limit, e
    # a charge opens every paid period: at the start, then once per billing period
    for ref, sub in market.subscriptions.items():
        moments = sorted(charges[ref])
        started = ts(sub["started_at"])
        step = 1 if sub["billing_interval"] == "month" else 12
        assert moments == [add_months(started, k * step) for k in range(len(moments))], ref
        if sub["ended_at"]:
            assert add_months(started, len(moments) * step) == ts(sub["ended_at"])
        elif not sub["cancelled_at"]:  # active: every period begun before as_of was charged
            assert add_months(started, len(moments) * step) >= AS_OF
        if sub["cancelled_at"]:
            assert moments[-1] <= ts(sub["cancelled_at"]) < add_months(started, len(moments) * step)


def test_money_mix(market: Market) -> None:
    revenue: Counter[str] = Counter()
    for e in market.events:
        revenue[e["kind"]] += market.to_gbp(e)
    gross = revenue["subscription"] + revenue["one_off"]
    assert 0.06 < revenue["one_off"] / gross < 0.15
    assert 0.01 < revenue["refund"] / gross < 0.04
    n = Counter(e["kind"] for e in market.events)
    charges = n["subscription"] + n["one_off"]
    assert 0.001 < n["chargeback"] / charges < 0.006
    assert 0 < n["credit"] / n["subscription"] < 0.005


# -- the planted models ------------------------------------------------------------------------------
def test_first_renewal_survival_matches_sbg(market: Market) -> None:
    """P(survive renewal 1) = E[1 − θ] = β/(α+β); P(survive 2 | survived 1) = (β+1)/(α+β+1)."""
    segment = "photographer/month"
    params = market.truth["models"]["sbg"][segment]
    alpha, beta = params["alpha"], params["beta"]
    n_charges = Counter(e["subscription_ref"] for e in market.events if e["kind"] == "subscription")
    eligible_1 = survived_1 = eligible_2 = survived_2 = 0
    for ref, sub in market.subscriptions.items():
        category = market.customers[sub["customer_ref"]]["vendor_category"]
        if f"{category}/{sub['billing_interval']}" != segment:
            continue
        started = ts(sub["started_at"])
        if add_months(started, 1) < AS_OF:
            eligible_1 += 1
            survived_1 += n_charges[ref] >= 2
            if n_charges[ref] >= 2 and add_months(started, 2) < AS_OF:
                eligible_2 += 1
                survived_2 += n_charges[ref] >= 3
    assert eligible_1 > 2_000
    for survived, eligible, expected in (
        (survived_1, eligible_1, beta / (alpha + beta)),
        (survived_2, eligible_2, (beta + 1) / (alpha + beta + 1)),
    ):
        share = survived / eligible
        se = math.sqrt(expected * (1 - expected) / eligible)
        assert abs(share - expected) < 4 * se, (share, expected, se)


def expected_purchases(r: float, alpha: float, a: float, b: float, t: np.ndarray) -> np.ndarray:
    """BG/NBD E[X(t)] (Fader, Hardie & Lee 2005, eq. 9)."""
    z = t / (alpha + t)
    return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, z))


def operational_months(signup_days: np.ndarray, truth: dict) -> np.ndarray:
    """Months of seasonally warped time from signup to as-of: ∫ 1 + A cos(ω (t − peak)) dt."""
    season = truth["one_off_seasonality"]
    omega = 2 * math.pi / season["period_days"]
    amplitude, peak = season["amplitude"], season["peak_day_of_year"]

    def warp(t: np.ndarray) -> np.ndarray:
        return t + amplitude / omega * np.sin(omega * (t - peak))

    end = (AS_OF.date() - date(1970, 1, 1)).days
    return (warp(np.full_like(signup_days, end)) - warp(signup_days)) / truth["month_days"]


def test_one_off_counts_match_bgnbd_expectation(market: Market) -> None:
    x = Counter(e["customer_ref"] for e in market.events if e["kind"] == "one_off")
    refs = list(market.customers)
    counts = np.array([x[ref] for ref in refs], dtype=float)
    signup_days = np.array(
        [ts(market.customers[ref]["signed_up_at"]).timestamp() / 86_400 for ref in refs]
    )
    t = operational_months(signup_days, market.truth)
    expected = np.empty(len(refs))
    categories = np.array([market.customers[ref]["vendor_category"] for ref in refs])
    for category, p in market.truth["models"]["bgnbd"].items():
        mask = categories == category
        expected[mask] = expected_purchases(p["r"], p["alpha"], p["a"], p["b"], t[mask])
    se = counts.std(ddof=1) / math.sqrt(len(counts))
    assert counts.mean() > 1.0
    assert abs(counts.mean() - expected.mean()) < 4 * se, (counts.mean(), expected.mean(), se)
    # the warp matters little: calendar months give nearly the same expectation
    calendar_months = (AS_OF.timestamp() / 86_400 - signup_days) / market.truth["month_days"]
    assert abs(calendar_months.mean() / t.mean() - 1) < 0.02


def test_one_off_spend_matches_gamma_gamma(market: Market) -> None:
    """E[mean spend of a customer] = p·v/(q−1) in GBP, whatever the customer's purchase count."""
    spend: dict[str, list[float]] = defaultdict(list)
    for e in market.events:
        if e["kind"] == "one_off":
            spend[e["customer_ref"]].append(market.to_gbp(e))
    gg = market.truth["models"]["gamma_gamma"]
    means, expected = [], []
    for ref, amounts in spend.items():
        p = gg[market.customers[ref]["vendor_category"]]
        means.append(sum(amounts) / len(amounts))
        expected.append(p["p"] * p["v"] / (p["q"] - 1))
    assert len(means) > 5_000
    means_a = np.array(means)
    se = means_a.std(ddof=1) / math.sqrt(len(means_a))
    assert abs(means_a.mean() - np.mean(expected)) < 4 * se
    assert min(expected) >= 30 and max(expected) <= 300


def test_truth_without_a_database() -> None:
    truth = generate_truth(7, 100)
    models = truth["models"]
    assert len(models["sbg"]) == 20 and len(models["bgnbd"]) == 10 and len(models["gamma_gamma"]) == 10
    assert {s.split("/")[0] for s in models["sbg"]} == CATEGORIES
    for segment, p in models["sbg"].items():
        if segment.endswith("/month"):
            assert 0.8 <= p["alpha"] <= 1.5 and 6 <= p["beta"] <= 15
        else:
            assert 0.6 <= p["alpha"] <= 1.0 and 2 <= p["beta"] <= 5
    assert len({(p["alpha"], p["beta"]) for p in models["sbg"].values()}) == 20
    assert all(p["q"] > 1 for p in models["gamma_gamma"].values())
    assert all(p["time_unit"] == "month" and p["a"] != 1 for p in models["bgnbd"].values())
    assert truth["seed"] == 7 and truth["suppliers"] == 100


# -- loading through the ingestion engine --------------------------------------------------------------
TABLE_QUERIES = {
    "plans": "SELECT plan_code, tier, billing_interval, list_price_minor, currency FROM ltv.plans",
    "fx_rates": "SELECT currency, day, rate FROM ltv.fx_rates",
    "acquisition_spend": "SELECT acquisition_channel, month, currency, amount_minor FROM ltv.acquisition_spend",
    "customers": """SELECT customer_ref, vendor_category, country, acquisition_channel, signed_up_at
                    FROM ltv.customers""",
    "subscriptions": """SELECT s.subscription_ref, c.customer_ref, s.plan_code, s.started_at,
                               s.cancelled_at, s.ended_at
                        FROM ltv.subscriptions s JOIN ltv.customers c USING (customer_id)""",
    "events": """SELECT e.source, e.external_id, c.customer_ref, e.occurred_at, e.kind, e.amount_minor,
                        e.currency, e.fx_rate, e.amount_base, s.subscription_ref
                 FROM ltv.revenue_events e JOIN ltv.customers c USING (customer_id)
                 LEFT JOIN ltv.subscriptions s USING (customer_id, subscription_id)""",
}


def table_digest(url: str, entity: str) -> tuple[int, str]:
    """Row count and an order-independent digest of a table's business content."""
    query = f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM ({TABLE_QUERIES[entity]}) t"
    with psycopg.connect(url) as conn:
        count, digest = conn.execute(query).fetchone()
    return count, digest


def csv_rows(directory: Path) -> dict[str, int]:
    return {e: sum(1 for _ in read_csv(directory / f"{e}.csv")) for e in demo_data.ENTITIES}


def test_cli_load_equals_csv_counts_and_csv_ingest(
    db_url: str, pg_server_url: str, tmp_path: Path
) -> None:
    """`ltv-db demo-data` loads exactly the rows `--csv` writes, with the truth; and running
    `ltv-db ingest` on those files gives the same table contents as the direct load."""
    args = ["demo-data", "--suppliers", "1200", "--seed", "21"]
    loaded = run_cli(args, db_url)
    assert loaded.returncode == 0, loaded.stderr
    assert "customers 1,200" in loaded.stdout
    written = run_cli([*args, "--csv", str(tmp_path)], db_url)
    assert written.returncode == 0, written.stderr
    for entity, n in csv_rows(tmp_path).items():
        assert table_digest(db_url, entity)[0] == n, entity

    truth = generate_truth(21, 1200)
    assert json.loads((tmp_path / "truth.json").read_text()) == truth
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT model, segment, params, seed, suppliers FROM ltv.synthetic_truth").fetchall()
        one_off_base = conn.execute(
            "SELECT sum(amount_base) FROM ltv.revenue_events WHERE kind = 'one_off'"
        ).fetchone()[0]
    assert len(rows) == 40
    for model, segment, params, seed, suppliers in rows:
        assert params == truth["models"][model][segment]
        assert (seed, suppliers) == (21, 1200)
    # the engine converts at the published daily rate, as the generator did
    market = parse(tmp_path)
    one_offs = [e for e in market.events if e["kind"] == "one_off"]
    one_off_gbp = sum(market.to_gbp(e) for e in one_offs)
    # amount_base is rounded to 4 decimals per event
    assert float(one_off_base) == pytest.approx(one_off_gbp, abs=0.00005 * len(one_offs))

    name = f"ltv_demo_ingest_{abs(hash(str(tmp_path))) % 10**8}"
    ingest_url = create_database(pg_server_url, name, TEMPLATE_DB)
    try:
        for entity in demo_data.ENTITIES:
            result = run_cli(["ingest", entity, str(tmp_path / f"{entity}.csv")], ingest_url)
            assert result.returncode == 0, (entity, result.stdout, result.stderr)
        for entity in demo_data.ENTITIES:
            assert table_digest(ingest_url, entity) == table_digest(db_url, entity), entity
    finally:
        drop_database(pg_server_url, name)
