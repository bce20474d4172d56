"""A deterministic synthetic retail bank: one DataFrame per upstream table of the contract.

`generate(customers, seed, end_week=...)` returns every table in SOURCE_TABLES, each of
which passes its pandera model, covering the `history_weeks` weeks that end with the week
keyed `end_week` (a Monday). Same arguments, same frames, byte for byte.
`generate_chunks(...)` gives the same kind of bank a chunk of customers at a time, for banks
too large for memory (10M customers x 20 products); see "Chunks" below for what chunks share.

How the bank hangs together (so the ranking has something real to find):
- customers: SCD2 master. Segment drives income, FICO and age; a few percent change
  segment or status inside the window (second version), some join inside it, and the
  closed customers closed before it (ACTIVE version followed by a CLOSED version).
- product_register: a 20-product catalogue over all eight classes, with a SUNSET bond,
  an UNDER_CAPACITY car-finance product (GROWTH until mid-window: two versions), two
  retention products and a TRAVEL card / FX wallet.
- holdings: product count and mix follow segment; every customer holds a current account
  opened on the day they joined; closed customers' products closed when they left.
- eligibility (MOD-105): income / FICO / tenure / jurisdiction rules per product with a
  persistent per-pair draw, so a pair's status is stable from week to week.
- behaviour, churn_health (MOD-040), customer_rote (MOD-106): weekly snapshots per ACTIVE
  or DORMANT party; churn rises with low financial health, low balances and dormancy.
- offer_history (MOD-108): six months of offers of products the party does not hold and
  is likely eligible for; accepted offers become holdings.
- activity: a few events per active customer a month, plus a `new_account` event for
  every holding opened inside the window.

Snapshots are dated the Sunday that closes each week (visible to that week's evaluation
on the following Monday); nothing is dated on or after end_week + 7 days.

Everything is vectorised with numpy: Python loops only run over products and weeks.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from nbp_assets.contract.inputs import (
    AGE_BANDS,
    CUSTOMER_STATUSES,
    ELIGIBILITY_STATUSES,
    GENDERS,
    JURISDICTIONS,
    OFFER_OUTCOMES,
    SEGMENTS,
    SPEND_CATEGORIES,
)

__all__ = ["generate", "generate_chunks", "ACTIVITY_TYPES", "DEFAULT_CHUNK_CUSTOMER_WEEKS"]

DAY_S = 86_400
_EPOCH = datetime.date(1970, 1, 1)
_NAT = np.iinfo(np.int64).min  # int64 that numpy reads as NaT

ACTIVITY_TYPES = ["branch_visit", "deposit", "web_open", "mobile_open", "new_account", "fx_payment", "card_payment"]

# Segment codes index these tuples: MASS, MASS_AFFLUENT, AFFLUENT, PRIVATE.
_SEGMENT_SHARE = np.array([0.62, 0.25, 0.10, 0.03])
_INCOME_MEDIAN = np.array([27_000.0, 52_000.0, 105_000.0, 300_000.0])
_FICO_MEAN = np.array([645.0, 690.0, 730.0, 765.0])
_AGE_SHARE = np.array(  # rows: segment, columns: AGE_BANDS
    [
        [0.14, 0.22, 0.20, 0.17, 0.14, 0.13],
        [0.06, 0.20, 0.23, 0.21, 0.16, 0.14],
        [0.02, 0.12, 0.22, 0.25, 0.21, 0.18],
        [0.01, 0.05, 0.15, 0.25, 0.26, 0.28],
    ]
)
_JURISDICTION_SHARE = np.array([0.88, 0.05, 0.03, 0.02, 0.02])  # GB, IE, JE, GG, IM
_GENDER_SHARE = np.array([0.49, 0.49, 0.01, 0.01])  # F, M, X, not stated (null)
_STATUS_SHARE = np.array([0.955, 0.030, 0.015])  # ACTIVE, DORMANT, CLOSED (before the window)
_SPEND_MEDIAN = np.array([1_100.0, 1_900.0, 3_200.0, 7_000.0])
_ROTE_MEAN = np.array([0.07, 0.10, 0.14, 0.17])
_TRAVEL_SHARE = np.array([0.06, 0.10, 0.16, 0.22])
_IDLE_CASH_SHARE = np.array([0.12, 0.16, 0.22, 0.28])
_PREMIER_SHARE = np.array([0.0, 0.15, 0.60, 0.85])  # current account is the Premier one
# Top spend category other than TRAVEL (TRAVEL share is per segment, above).
_OTHER_CATEGORIES = ["EVERYDAY", "FAMILY", "HOME", "LEISURE", "BUSINESS"]
_OTHER_CATEGORY_SHARE = np.array([0.52, 0.17, 0.13, 0.13, 0.05])

JOIN_RATE_PER_WEEK = 0.003  # share of the base that joins in each week of the window
CHANGE_RATE = 0.035  # share of pre-window, not-closed customers with a new version in the window
WEEKLY_REDRAW = 0.02  # share of (party, product) eligibility draws renewed each week
OFFER_WINDOW_DAYS = 182  # offer history covers this many days before the evaluation date
OFFERS_PER_CUSTOMER = 0.9  # over the offer window
OFFER_EXPIRY_DAYS = 30
ACTIVITY_PER_WEEK = 0.75  # events per active customer and week (about 3 a month)


@dataclass(frozen=True)
class _Product:
    name: str
    product_class: str
    stage: str  # lifecycle stage at the end of the window
    retention: bool
    spend_category: str | None
    target_rote: float
    launched_days_before_window: int
    held: tuple[float, float, float, float]  # probability a customer holds it, per segment
    rule: str  # eligibility rule: open | premier | credit | wealth
    fico_min: float = 0.0
    income_min: float = 1.0
    gb_only: bool = False  # ISAs are a UK tax wrapper
    min_tenure_days: int = 0  # loyalty products
    senior_factor: float = 1.0  # eligibility multiplier for the 65+ band
    close_rate: float = 0.05  # share of holdings already closed
    previous_stage: str | None = None  # stage before a mid-window lifecycle change
    offer_weight: float = 1.0
    eligible_base: float = 0.90  # rule "open": probability of ELIGIBLE


# Ordered so that any prefix of 8 covers all eight classes; 12 add SUNSET, UNDER_CAPACITY
# and the first retention product.
_CATALOGUE: tuple[_Product, ...] = (
    _Product(
        "Everyday Current Account",
        "CURRENT_ACCOUNT",
        "MATURE",
        False,
        "EVERYDAY",
        0.08,
        9_000,
        (0, 0, 0, 0),
        "open",
        eligible_base=0.97,
        close_rate=0.0,
        offer_weight=0.2,
    ),
    _Product(
        "Easy Access Saver",
        "SAVINGS",
        "MATURE",
        False,
        None,
        0.09,
        8_000,
        (0.40, 0.55, 0.65, 0.65),
        "open",
        close_rate=0.06,
    ),
    _Product(
        "Cashback Credit Card",
        "CARD",
        "GROWTH",
        False,
        "EVERYDAY",
        0.18,
        2_500,
        (0.28, 0.38, 0.42, 0.38),
        "credit",
        fico_min=600,
        income_min=14_000,
        offer_weight=1.4,
    ),
    _Product(
        "Personal Loan",
        "LENDING",
        "MATURE",
        False,
        None,
        0.16,
        7_000,
        (0.10, 0.11, 0.07, 0.03),
        "credit",
        fico_min=630,
        income_min=18_000,
        close_rate=0.20,
    ),
    _Product(
        "Residential Mortgage",
        "MORTGAGE",
        "MATURE",
        False,
        "HOME",
        0.12,
        9_000,
        (0.07, 0.22, 0.35, 0.40),
        "credit",
        fico_min=670,
        income_min=38_000,
        senior_factor=0.3,
        close_rate=0.04,
    ),
    _Product(
        "Stocks & Shares ISA",
        "INVESTMENT",
        "GROWTH",
        False,
        None,
        0.14,
        3_000,
        (0.04, 0.15, 0.40, 0.55),
        "open",
        gb_only=True,
        eligible_base=0.88,
        offer_weight=1.3,
    ),
    _Product(
        "Home Insurance",
        "INSURANCE",
        "MATURE",
        False,
        "HOME",
        0.20,
        6_000,
        (0.10, 0.20, 0.30, 0.35),
        "open",
        eligible_base=0.86,
        close_rate=0.08,
    ),
    _Product(
        "Multi-Currency Wallet",
        "FX_WALLET",
        "LAUNCH",
        False,
        "TRAVEL",
        0.11,
        120,
        (0.02, 0.05, 0.10, 0.20),
        "open",
        eligible_base=0.84,
        close_rate=0.01,
        offer_weight=1.6,
    ),
    _Product(
        "Loyalty Saver",
        "SAVINGS",
        "GROWTH",
        True,
        None,
        0.07,
        1_500,
        (0.05, 0.08, 0.10, 0.10),
        "open",
        min_tenure_days=365,
        eligible_base=0.88,
        offer_weight=1.2,
    ),
    _Product(
        "Travel Rewards Card",
        "CARD",
        "GROWTH",
        False,
        "TRAVEL",
        0.17,
        1_800,
        (0.03, 0.08, 0.20, 0.35),
        "credit",
        fico_min=640,
        income_min=30_000,
        offer_weight=1.3,
    ),
    _Product(
        "1-Year Fixed Rate Bond",
        "SAVINGS",
        "SUNSET",
        False,
        None,
        0.05,
        6_500,
        (0.05, 0.10, 0.12, 0.10),
        "open",
        eligible_base=0.75,
        close_rate=0.45,
        offer_weight=0.3,
    ),
    _Product(
        "Car Finance",
        "LENDING",
        "UNDER_CAPACITY",
        False,
        "LEISURE",
        0.15,
        2_200,
        (0.05, 0.07, 0.05, 0.02),
        "credit",
        fico_min=650,
        income_min=22_000,
        close_rate=0.15,
        previous_stage="GROWTH",
        offer_weight=0.8,
    ),
    _Product(
        "Premier Current Account",
        "CURRENT_ACCOUNT",
        "MATURE",
        False,
        "EVERYDAY",
        0.12,
        5_000,
        (0, 0, 0, 0),
        "premier",
        close_rate=0.0,
    ),
    _Product(
        "Cash ISA",
        "SAVINGS",
        "MATURE",
        False,
        None,
        0.09,
        8_500,
        (0.12, 0.20, 0.25, 0.20),
        "open",
        gb_only=True,
        eligible_base=0.88,
        close_rate=0.05,
    ),
    _Product("Managed Portfolio", "INVESTMENT", "MATURE", False, None, 0.19, 4_000, (0.0, 0.02, 0.15, 0.50), "wealth"),
    _Product(
        "Life Cover",
        "INSURANCE",
        "MATURE",
        False,
        "FAMILY",
        0.22,
        5_500,
        (0.06, 0.12, 0.20, 0.25),
        "open",
        eligible_base=0.85,
        senior_factor=0.4,
    ),
    _Product(
        "Loyalty Rewards Card",
        "CARD",
        "GROWTH",
        True,
        "EVERYDAY",
        0.10,
        900,
        (0.02, 0.04, 0.05, 0.04),
        "credit",
        fico_min=600,
        income_min=14_000,
        min_tenure_days=730,
    ),
    _Product(
        "Buy-to-Let Mortgage",
        "MORTGAGE",
        "LAUNCH",
        False,
        "HOME",
        0.13,
        150,
        (0.0, 0.02, 0.08, 0.20),
        "credit",
        fico_min=700,
        income_min=75_000,
        senior_factor=0.5,
        close_rate=0.0,
    ),
    _Product(
        "Travel Insurance",
        "INSURANCE",
        "GROWTH",
        False,
        "TRAVEL",
        0.21,
        3_500,
        (0.04, 0.08, 0.15, 0.25),
        "open",
        eligible_base=0.85,
        close_rate=0.10,
    ),
    _Product(
        "Home Improvement Loan",
        "LENDING",
        "MATURE",
        False,
        "HOME",
        0.15,
        4_500,
        (0.02, 0.04, 0.05, 0.03),
        "credit",
        fico_min=660,
        income_min=30_000,
        close_rate=0.20,
    ),
)
_EVERYDAY_CA, _PREMIER_CA = 0, 12  # catalogue positions of the two current accounts


def _catalogue(n: int) -> list[_Product]:
    """The first n products; beyond 20, further series of the non-current-account products."""
    if n < 8:
        raise ValueError("products must be at least 8 (one per product class)")
    out = list(_CATALOGUE[:n])
    templates = [p for p in _CATALOGUE if p.product_class != "CURRENT_ACCOUNT"]
    for k in range(n - len(out)):
        t = templates[k % len(templates)]
        series = 2 + k // len(templates)
        out.append(
            replace(
                t,
                name=f"{t.name} (series {series})",
                stage="LAUNCH",
                retention=False,
                previous_stage=None,
                launched_days_before_window=60 + 7 * (k % 10),
                held=tuple(h * 0.25 for h in t.held),
            )
        )
    return out


# ----------------------------------------------------------------------------- helpers


def _day(d: datetime.date) -> int:
    return (d - _EPOCH).days


def _dates(days: np.ndarray) -> np.ndarray:
    """int64 days since epoch (_NAT for missing) -> datetime64[ns]."""
    return days.astype("int64").view("datetime64[D]").astype("datetime64[ns]")


def _times(seconds: np.ndarray) -> np.ndarray:
    """int64 seconds since epoch (_NAT for missing) -> datetime64[ns]."""
    return seconds.astype("int64").view("datetime64[s]").astype("datetime64[ns]")


def _ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded string ids ("P0000001") as an object array, without a Python loop."""
    n = np.asarray(numbers, dtype=np.int64)
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    digits = ((n[:, None] // powers) % 10).astype(np.uint32) + ord("0")
    head = np.broadcast_to(np.array([ord(c) for c in prefix], dtype=np.uint32), (len(n), len(prefix)))
    codes = np.ascontiguousarray(np.concatenate([head, digits], axis=1))
    return codes.view(f"U{len(prefix) + width}").ravel().astype(object)


def _choice(
    rng: np.random.Generator, cum: np.ndarray, rows: np.ndarray | None = None, n: int | None = None
) -> np.ndarray:
    """Categorical draws: cum is a cumulative-probability vector, or a matrix indexed by rows."""
    if rows is None:
        u = rng.random(n)
        return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1).astype(np.int8)
    u = rng.random(len(rows))
    table = cum[rows]
    return np.minimum((u[:, None] >= table).sum(axis=1), cum.shape[1] - 1).astype(np.int8)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _int_array(values: np.ndarray, missing: np.ndarray) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(np.where(missing, 0, values).astype(np.int64), missing.copy())


def _objects(names: list[str | None], codes: np.ndarray) -> np.ndarray:
    """Codes -> object array of the names (code -1 picks the last name: use it for None)."""
    return np.array(names, dtype=object)[codes]


@dataclass
class _Bank:
    """Per-customer latent state shared by all tables (arrays of length N)."""

    party_id: np.ndarray
    join: np.ndarray  # day the customer joined (first version's valid_from)
    seg0: np.ndarray
    seg1: np.ndarray
    status0: np.ndarray
    status1: np.ndarray
    income0: np.ndarray  # float, NaN = not known
    income1: np.ndarray
    fico: np.ndarray  # float, NaN = not known
    change: np.ndarray  # day of the second version, _NAT if none
    end: np.ndarray  # first day the customer is gone (closure), else the evaluation date
    juris: np.ndarray
    age: np.ndarray
    # behaviour latents
    spend: np.ndarray
    months: np.ndarray  # months of spend held in the current account
    category: np.ndarray  # index into SPEND_CATEGORIES, -1 = none
    fx_months: np.ndarray
    health: np.ndarray
    churn_noise: np.ndarray
    rote: np.ndarray
    engagement: np.ndarray

    def at(self, day: int) -> dict[str, np.ndarray]:
        """Attributes of the version valid on `day` (valid_from <= day < valid_to)."""
        second = (self.change != _NAT) & (self.change <= day)
        return {
            "exists": self.join <= day,
            "segment": np.where(second, self.seg1, self.seg0),
            "status": np.where(second, self.status1, self.status0),
            "income": np.where(second, self.income1, self.income0),
        }


# ----------------------------------------------------------------------------- tables


def _customers(
    rng: np.random.Generator, n: int, ws: int, ee: int, history_weeks: int, ids: _IdStart
) -> tuple[_Bank, pd.DataFrame]:
    party_id = _ids("P", np.arange(ids.party, ids.party + n), ids.party_width)

    seg0 = _choice(rng, np.cumsum(_SEGMENT_SHARE), n=n)
    juris = _choice(rng, np.cumsum(_JURISDICTION_SHARE), n=n)
    age = _choice(rng, np.cumsum(_AGE_SHARE, axis=1), rows=seg0)
    gender = _choice(rng, np.cumsum(_GENDER_SHARE), n=n)
    income0 = np.round(_INCOME_MEDIAN[seg0] * np.exp(rng.normal(0.0, 0.35, n)) * (0.8 + 0.08 * np.minimum(age, 4)), -2)
    income0[rng.random(n) < 0.015] = np.nan
    fico = np.clip(np.round(rng.normal(_FICO_MEAN[seg0], 55.0)), 300, 850)
    fico[rng.random(n) < 0.01] = np.nan

    # Joining: most customers long before the window, some inside it.
    joiner = rng.random(n) < min(0.5, JOIN_RATE_PER_WEEK * history_weeks)
    tenure = np.minimum(rng.exponential(7.0 * 365, n), 30 * 365).astype(np.int64)
    join = np.where(joiner, ws + rng.integers(0, ee - ws, n), ws - 30 - tenure)
    young = age == 0  # 18-24s cannot have been customers for decades
    join = np.where(young & ~joiner, np.maximum(join, ws - 30 - 5 * 365), join)

    status0 = _choice(rng, np.cumsum(_STATUS_SHARE), n=n)
    status0[joiner] = 0
    closed_before = status0 == 2
    status0[closed_before] = 0  # they were ACTIVE until they closed

    # Second versions: closures before the window, and changes inside it.
    change = np.full(n, _NAT, dtype=np.int64)
    seg1, status1, income1 = seg0.copy(), status0.copy(), income0.copy()
    close_day = join + ((ws - join) * rng.uniform(0.3, 0.97, n)).astype(np.int64)
    change[closed_before] = close_day[closed_before]
    status1[closed_before] = 2

    changer = (~joiner) & (~closed_before) & (rng.random(n) < CHANGE_RATE)
    change[changer] = ws + rng.integers(0, ee - ws, n)[changer]
    kind = rng.random(n)
    dormant0 = status0 == 1
    reactivate = changer & dormant0
    up = changer & ~dormant0 & (((kind < 0.55) & (seg0 < 3)) | ((kind >= 0.55) & (kind < 0.70) & (seg0 == 0)))
    down = changer & ~dormant0 & ~up & (kind < 0.70)
    go_dormant = changer & ~dormant0 & (kind >= 0.70) & (kind < 0.88)
    go_closed = changer & ~dormant0 & (kind >= 0.88)
    status1[reactivate] = 0
    seg1[up] = seg0[up] + 1
    seg1[down] = seg0[down] - 1
    status1[go_dormant] = 1
    status1[go_closed] = 2
    moved = up | down
    income1[moved] = np.round(income0[moved] * _INCOME_MEDIAN[seg1[moved]] / _INCOME_MEDIAN[seg0[moved]], -2)

    end = np.full(n, ee, dtype=np.int64)
    end[closed_before] = close_day[closed_before]
    end[go_closed] = change[go_closed]

    # Behaviour latents.
    spend = _SPEND_MEDIAN[seg0] * np.exp(rng.normal(0.0, 0.45, n))
    idle = rng.random(n) < _IDLE_CASH_SHARE[seg0]
    months = np.where(idle, rng.uniform(5.0, 36.0, n), np.exp(rng.normal(0.2, 0.75, n)))
    travel = rng.random(n) < _TRAVEL_SHARE[seg0]
    other = _choice(rng, np.cumsum(_OTHER_CATEGORY_SHARE), n=n)
    other_codes = np.array([SPEND_CATEGORIES.index(c) for c in _OTHER_CATEGORIES], dtype=np.int8)
    category = np.where(travel, SPEND_CATEGORIES.index("TRAVEL"), other_codes[other]).astype(np.int8)
    fx_months = rng.binomial(6, np.where(travel, 0.55, np.where(rng.random(n) < 0.05, 0.5, 0.03)))
    log_income = np.log(np.nan_to_num(income0, nan=_INCOME_MEDIAN[0]))
    health = (
        52.0
        + 9.0 * (log_income - np.log(40_000.0))
        + 0.06 * (np.nan_to_num(fico, nan=600.0) - 680.0)
        + 6.0 * np.clip(np.log(months), -2.0, 2.5)
        + rng.normal(0.0, 7.0, n)
    )
    bank = _Bank(
        party_id=party_id,
        join=join,
        seg0=seg0,
        seg1=seg1,
        status0=status0,
        status1=status1,
        income0=income0,
        income1=income1,
        fico=fico,
        change=change,
        end=end,
        juris=juris,
        age=age,
        spend=spend,
        months=months,
        category=category,
        fx_months=fx_months,
        health=health,
        churn_noise=rng.normal(0.0, 0.6, n),
        rote=_ROTE_MEAN[seg0] + rng.normal(0.0, 0.03, n),
        engagement=np.exp(rng.normal(0.0, 0.5, n)),
    )

    # One row per version, ordered by party then valid_from.
    has2 = change != _NAT
    second = np.flatnonzero(has2)
    rows = np.concatenate([np.arange(n), second])
    version2 = np.concatenate([np.zeros(n, bool), np.ones(len(second), bool)])
    order = np.lexsort((version2, rows))
    rows, version2 = rows[order], version2[order]
    seg = np.where(version2, seg1[rows], seg0[rows])
    status = np.where(version2, status1[rows], status0[rows])
    income = np.where(version2, income1[rows], income0[rows])
    valid_from = np.where(version2, change[rows], join[rows])
    valid_to = np.where(version2 | ~has2[rows], _NAT, change[rows])
    frame = pd.DataFrame(
        {
            "party_id": party_id[rows],
            "jurisdiction": _objects(JURISDICTIONS, juris[rows]),
            "segment": _objects(SEGMENTS, seg),
            "age_band": _objects(AGE_BANDS, age[rows]),
            "gender": _objects([*GENDERS, None], gender[rows]),
            "status": _objects(CUSTOMER_STATUSES, status),
            "income": _int_array(np.nan_to_num(income), np.isnan(income)),
            "fico": _int_array(np.nan_to_num(fico[rows]), np.isnan(fico[rows])),
            "valid_from": _dates(valid_from),
            "valid_to": _dates(valid_to),
        },
        copy=False,
    )
    return bank, frame


def _product_register(catalogue: list[_Product], ws: int, ee: int) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    product_id = _ids("PR", np.arange(1, len(catalogue) + 1), 3)
    launch = np.array([ws - p.launched_days_before_window for p in catalogue], dtype=np.int64)
    change_day = ws + (ee - ws) // 2  # mid-window lifecycle change
    records = []
    for i, p in enumerate(catalogue):
        base = {
            "product_id": product_id[i],
            "product_name": p.name,
            "product_class": p.product_class,
            "is_retention": p.retention,
            "spend_category": p.spend_category,
            "target_rote": p.target_rote,
        }
        if p.previous_stage:
            records.append(
                {**base, "lifecycle_stage": p.previous_stage, "valid_from": launch[i], "valid_to": change_day}
            )
            records.append({**base, "lifecycle_stage": p.stage, "valid_from": change_day, "valid_to": _NAT})
        else:
            records.append({**base, "lifecycle_stage": p.stage, "valid_from": launch[i], "valid_to": _NAT})
    df = pd.DataFrame.from_records(records)
    df["valid_from"] = _dates(df["valid_from"].to_numpy(np.int64))
    df["valid_to"] = _dates(df["valid_to"].to_numpy(np.int64))
    df["is_retention"] = df["is_retention"].astype(bool)
    df = df[
        [
            "product_id",
            "product_name",
            "product_class",
            "lifecycle_stage",
            "is_retention",
            "spend_category",
            "target_rote",
            "valid_from",
            "valid_to",
        ]
    ]
    return product_id, launch, df


def _eligibility_probabilities(
    catalogue: list[_Product], bank: _Bank, attrs: dict[str, np.ndarray], day: int
) -> tuple[np.ndarray, np.ndarray]:
    """(P(ELIGIBLE), P(REFERRED)) per party and product, as N x P float32 matrices."""
    n, n_products = len(bank.join), len(catalogue)
    p_eligible = np.empty((n, n_products), dtype=np.float32)
    p_referred = np.empty((n, n_products), dtype=np.float32)
    income, segment = attrs["income"], attrs["segment"]
    known_fico = ~np.isnan(bank.fico)
    known_income = ~np.isnan(income)
    fico = np.nan_to_num(bank.fico, nan=620.0)
    log_income = np.log(np.maximum(np.nan_to_num(income, nan=_INCOME_MEDIAN[0] * 0.8), 1.0))
    tenure = day - bank.join
    senior = bank.age == len(AGE_BANDS) - 1
    gb = bank.juris == 0
    for j, p in enumerate(catalogue):
        if p.rule == "credit":
            z = 1.3 * (fico - p.fico_min) / 50.0 + 1.1 * (log_income - np.log(p.income_min))
            z = z - 0.6 * ~known_fico - 0.6 * ~known_income
            pe = 0.95 * _sigmoid(1.6 * z - 1.0)
            pr = 0.30 * np.exp(-z * z) * (1.0 - pe) + 0.25 * ~known_fico
        elif p.rule == "premier":
            ok = (np.nan_to_num(income) >= 75_000) | (segment >= 2)
            pe = np.where(ok, 0.93, 0.04)
            pr = np.full(n, 0.03)
        elif p.rule == "wealth":
            ok = (np.nan_to_num(income) >= 100_000) | (segment >= 2)
            pe = np.where(ok, 0.90, np.where(segment == 1, 0.25, 0.05))
            pr = np.full(n, 0.04)
        else:  # open
            pe = np.full(n, p.eligible_base)
            pr = np.full(n, 0.02)
        if p.gb_only:
            pe = np.where(gb, pe, 0.0)
        if p.min_tenure_days:
            pe = np.where(tenure >= p.min_tenure_days, pe, 0.0)
        if p.senior_factor != 1.0:
            pe = np.where(senior, pe * p.senior_factor, pe)
        p_eligible[:, j] = pe
        p_referred[:, j] = np.minimum(pr, 1.0 - pe)
    return p_eligible, p_referred


def _holdings(
    rng: np.random.Generator, catalogue: list[_Product], bank: _Bank, launch: np.ndarray, ws: int, ee: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(party, product, opened_on, closed_on) arrays of the customers' own product history."""
    n, n_products = len(bank.join), len(catalogue)
    held_p = np.array([p.held for p in catalogue], dtype=np.float32).T[bank.seg0]  # N x P
    gb = bank.juris == 0
    travel = bank.category == SPEND_CATEGORIES.index("TRAVEL")
    recent = bank.join >= ws - 90
    for j, p in enumerate(catalogue):
        if p.gb_only:
            held_p[~gb, j] = 0.0
        if p.spend_category == "TRAVEL":
            held_p[travel, j] = np.minimum(held_p[travel, j] * 3.0 + 0.05, 0.9)
    held_p[recent] *= 0.25  # new customers have not had time to buy much
    held = rng.random((n, n_products), dtype=np.float32) < held_p
    premier = rng.random(n) < _PREMIER_SHARE[bank.seg0]
    if n_products > _PREMIER_CA:
        held[:, _PREMIER_CA] = premier
        held[:, _EVERYDAY_CA] = ~premier | (rng.random(n) < 0.1)
    else:
        held[:, _EVERYDAY_CA] = True
    primary_ca = np.where(premier & (n_products > _PREMIER_CA), _PREMIER_CA, _EVERYDAY_CA)

    party, product = np.nonzero(held)
    party = party.astype(np.int64)
    product = product.astype(np.int64)
    # New business ends when a product is sunset (here: two months before the window).
    last_sale = np.array([ws - 60 if p.stage == "SUNSET" else ee - 1 for p in catalogue], dtype=np.int64)
    lo = np.maximum(bank.join[party], launch[product])
    hi = np.minimum(bank.end[party] - 1, last_sale[product])
    keep = lo <= hi
    party, product, lo, hi = party[keep], product[keep], lo[keep], hi[keep]
    opened = lo + (rng.random(len(party)) * (hi - lo + 1)).astype(np.int64)
    is_primary = product == primary_ca[party]
    opened = np.where(is_primary, bank.join[party], opened)

    close_rate = np.array([p.close_rate for p in catalogue])[product]
    closes = (rng.random(len(party)) < close_rate) & ~is_primary
    close_lo = opened + 30
    closed = np.where(
        closes & (close_lo < ee),
        close_lo + (rng.random(len(party)) * np.maximum(ee - close_lo, 1)).astype(np.int64),
        _NAT,
    )
    closed = np.where(closed != _NAT, np.minimum(closed, ee - 1), _NAT)
    # Customers who left closed everything still open on the day they left.
    leaver = bank.end[party] < ee
    closed = np.where(leaver & ((closed == _NAT) | (closed > bank.end[party])), bank.end[party], closed)
    return party, product, opened, closed


def _offers(
    rng: np.random.Generator,
    catalogue: list[_Product],
    bank: _Bank,
    held_codes: np.ndarray,
    p_eligible: np.ndarray,
    ee: int,
) -> tuple[np.ndarray, ...]:
    """Offers (party, product, offered_s, outcome code, outcome_s) over the offer window."""
    n, n_products = len(bank.join), len(catalogue)
    m = int(n * OFFERS_PER_CUSTOMER * 1.6) + 10
    weights = np.array([p.offer_weight for p in catalogue])
    party = rng.integers(0, n, m).astype(np.int64)
    product = np.searchsorted(np.cumsum(weights) / weights.sum(), rng.random(m), side="right").clip(0, n_products - 1)
    offered_day = ee - OFFER_WINDOW_DAYS + rng.integers(0, OFFER_WINDOW_DAYS, m)
    offered_s = offered_day * DAY_S + 8 * 3600 + rng.integers(0, 11 * 3600, m)
    codes = party * n_products + product
    keep = (
        ~np.isin(codes, held_codes)
        & (bank.join[party] <= offered_day)
        & (offered_day < bank.end[party])
        & (bank.status0[party] == 0)
        & (p_eligible[party, product] >= 0.5)
    )
    party, product, offered_s = party[keep], product[keep], offered_s[keep]
    target = int(n * OFFERS_PER_CUSTOMER)
    party, product, offered_s = party[:target], product[:target], offered_s[:target]
    k = len(party)

    u = rng.random(k)
    accept_p = 0.08 + 0.10 * (bank.seg0[party] >= 2)
    outcome = np.where(u < accept_p, 1, np.where(u < accept_p + 0.52, 2, 3)).astype(
        np.int8
    )  # ACCEPTED/REJECTED/EXPIRED
    delay = np.minimum(rng.exponential(4.0 * DAY_S, k), (OFFER_EXPIRY_DAYS - 1) * DAY_S).astype(np.int64) + 600
    outcome_s = np.where(outcome == 3, offered_s + OFFER_EXPIRY_DAYS * DAY_S, offered_s + delay)
    pending = outcome_s >= ee * DAY_S
    outcome = np.where(pending, 0, outcome).astype(np.int8)
    outcome_s = np.where(pending, _NAT, outcome_s)

    order = np.lexsort((product, party, offered_s))
    return party[order], product[order], offered_s[order], outcome[order], outcome_s[order]


def _activity(
    rng: np.random.Generator, bank: _Bank, new_party: np.ndarray, new_day: np.ndarray, ws: int, ee: int, first_id: int
) -> pd.DataFrame:
    n = len(bank.join)
    start = np.maximum(ws, bank.join)
    stop = np.minimum(ee, bank.end)
    span_days = np.maximum(stop - start, 0)
    rate = np.where(bank.status0 == 0, ACTIVITY_PER_WEEK, 0.03) * bank.engagement
    counts = rng.poisson(rate * span_days / 7.0)
    counts = np.minimum(counts, span_days // 7 * 2 + 2).astype(np.int64)
    counts[span_days == 0] = 0
    party = np.repeat(np.arange(n, dtype=np.int64), counts)
    e = len(party)
    event_s = start[party] * DAY_S + (rng.random(e) * (span_days[party] * DAY_S)).astype(np.int64)

    # Event type mix: FX-active customers pay abroad, older customers visit branches.
    base = np.array([0.05, 0.12, 0.18, 0.38, 0.0, 0.02, 0.25])
    fx_mix = base + np.array([0, 0, 0, -0.08, 0, 0.12, -0.04])
    old_mix = base + np.array([0.12, 0.02, 0, -0.14, 0, 0, 0])
    both = old_mix + np.array([0, 0, 0, -0.06, 0, 0.10, -0.04])
    mixes = np.cumsum(np.stack([base, fx_mix, old_mix, both]), axis=1)
    mixes /= mixes[:, -1:]
    profile = (bank.fx_months >= 2).astype(np.int8) + 2 * (bank.age >= 4).astype(np.int8)
    kind = _choice(rng, mixes, rows=profile[party])

    # Accounts opened in the window are events too.
    kind = np.concatenate([kind, np.full(len(new_party), ACTIVITY_TYPES.index("new_account"), np.int8)])
    event_s = np.concatenate([event_s, new_day * DAY_S + 9 * 3600 + rng.integers(0, 8 * 3600, len(new_party))])
    party = np.concatenate([party, new_party])
    e = len(party)

    a = (
        1.5
        + 0.6 * bank.seg0[party]
        + 2.0 * (kind == ACTIVITY_TYPES.index("new_account"))
        + 0.8 * (kind == ACTIVITY_TYPES.index("branch_visit"))
    )
    propensity = np.round(rng.beta(a, 4.0), 3)

    # IP addresses: a home address per customer, mobile ones from a shared pool; none in branch.
    octet = np.array([str(i) for i in range(256)], dtype=object)
    pool_size = 1 << 16
    first = np.array(
        [2, 5, 31, 51, 62, 77, 78, 79, 80, 81, 82, 86, 87, 90, 92, 109, 151, 176, 185, 212, 213], dtype=np.int64
    )
    pool = (
        octet[first[rng.integers(0, len(first), pool_size)]]
        + "."
        + octet[rng.integers(0, 256, pool_size)]
        + "."
        + octet[rng.integers(0, 256, pool_size)]
        + "."
        + octet[rng.integers(1, 255, pool_size)]
    )
    home = rng.integers(0, pool_size, n)
    mobile = rng.random(e) < 0.25
    ip = pool[np.where(mobile, rng.integers(0, pool_size, e), home[party])]
    ip[kind == ACTIVITY_TYPES.index("branch_visit")] = None

    order = np.lexsort((party, event_s))
    return pd.DataFrame(
        {
            "activity_id": pd.arrays.IntegerArray(np.arange(first_id, first_id + e, dtype=np.int64), np.zeros(e, bool)),
            "party_id": bank.party_id[party[order]],
            "event_time": _times(event_s[order]),
            "activity_type": _objects(ACTIVITY_TYPES, kind[order]),
            "propensity_to_buy": propensity[order],
            "ip_address": ip[order],
        },
        copy=False,
    )


# ----------------------------------------------------------------------------- entry point


# Chunks: the bank can be generated (and written) a chunk of customers at a time, with
# memory bounded by the chunk, not by the bank. What a chunk shares with the others, and
# what it does not:
# - chunk k holds parties k * chunk_customers + 1 ...; the width of party ids ("P0000001",
#   at least 7 digits) and of offer ids ("OF000000001", at least 9) is set by the whole bank;
# - activity_id and offer_id continue where the previous chunk stopped (1 ... total, no
#   gaps). Activity is in event-time order inside a chunk only: over the whole table,
#   activity_id order is chunk after chunk (the offer stream reads by activity_id and each
#   event stands alone, so nothing depends on global time order);
# - randomness: chunk 0 draws from the five streams SeedSequence(seed).spawn(5), exactly
#   what generate() has always used, so generate(n) is chunk 0 of a one-chunk bank; chunk
#   k > 0 draws from SeedSequence(seed, spawn_key=(5, k)).spawn(5), streams that chunk 0
#   never touches. Same (customers, seed, window, products, chunk_customers): same bank;
#   a different chunk_customers gives a different (equally valid) bank;
# - whatever looks at the population is computed per chunk: the number of offers
#   (OFFERS_PER_CUSTOMER of the chunk's customers, each to a customer of the chunk) and the
#   pool of 65,536 mobile IP addresses (shared by the chunk's customers only). Every other
#   share (segment, status, holdings, eligibility, churn, ...) is a per-customer probability,
#   so each chunk is a sample of the same bank; nothing is calibrated on the whole base;
# - the product register is the same for every chunk and comes with chunk 0 only;
# - every column has the same dtype in every chunk (checked), so appends never meet a new type.

DEFAULT_CHUNK_CUSTOMER_WEEKS = 500_000  # customers x history weeks per chunk (about 1 GiB at 20 products)
_CHUNK_STREAM = 5  # spawn_key prefix of chunks k > 0: past chunk 0's five streams (0,) ... (4,)


@dataclass(frozen=True)
class _IdStart:
    """Where a chunk's ids start, and the id widths set by the whole bank."""

    party: int = 1
    party_width: int = 7
    activity: int = 1
    offer: int = 1
    offer_width: int = 9


def generate(
    customers: int,
    seed: int,
    *,
    end_week: datetime.date,
    history_weeks: int = 8,
    products: int = 20,
) -> dict[str, pd.DataFrame]:
    """A synthetic bank: {table name: DataFrame} for every table in SOURCE_TABLES.

    The data covers the weeks end_week - (history_weeks - 1) * 7 ... end_week (Monday keys);
    snapshot tables hold one snapshot per week dated its closing Sunday, and nothing is dated
    on or after end_week + 7 days (the end week's evaluation date). It is the whole bank in
    memory: the single chunk of generate_chunks(..., chunk_customers=customers).
    """
    (tables,) = generate_chunks(
        customers, seed, end_week=end_week, history_weeks=history_weeks, products=products, chunk_customers=customers
    )
    return tables


def generate_chunks(
    customers: int,
    seed: int,
    *,
    end_week: datetime.date,
    history_weeks: int = 8,
    products: int = 20,
    chunk_customers: int | None = None,
) -> Iterator[dict[str, pd.DataFrame]]:
    """The bank of generate(), as {table name: DataFrame} per chunk of `chunk_customers` customers.

    Chunk 0 has every table in SOURCE_TABLES; later chunks have all but product_register.
    Concatenating the chunks table by table gives the whole bank (see the comment above on
    what chunks share). Default chunk: DEFAULT_CHUNK_CUSTOMER_WEEKS // history_weeks
    customers, so a chunk's memory does not grow with the history either. Arguments are
    checked when this is called, not when the first chunk is drawn.
    """
    if isinstance(end_week, datetime.datetime):
        end_week = end_week.date()
    if end_week.weekday() != 0:
        raise ValueError(f"end_week {end_week.isoformat()} is not a Monday")
    if customers < 1:
        raise ValueError("customers must be at least 1")
    if history_weeks < 1:
        raise ValueError("history_weeks must be at least 1")
    if chunk_customers is None:
        chunk_customers = max(1, DEFAULT_CHUNK_CUSTOMER_WEEKS // history_weeks)
    if chunk_customers < 1:
        raise ValueError("chunk_customers must be at least 1")
    catalogue = _catalogue(products)
    ws = _day(end_week) - (history_weeks - 1) * 7  # Monday the window starts
    ee = _day(end_week) + 7  # evaluation date of the end week: exclusive upper bound
    ids = _IdStart(
        party_width=max(7, len(str(customers))), offer_width=max(9, len(str(int(customers * OFFERS_PER_CUSTOMER))))
    )
    return _chunks(customers, seed, catalogue, ws, ee, history_weeks, chunk_customers, ids)


def _chunks(
    customers: int,
    seed: int,
    catalogue: list[_Product],
    ws: int,
    ee: int,
    history_weeks: int,
    chunk_customers: int,
    ids: _IdStart,
) -> Iterator[dict[str, pd.DataFrame]]:
    product_id, launch, products_df = _product_register(catalogue, ws, ee)
    dtypes: dict[str, pd.Series] = {}
    for k, first in enumerate(range(0, customers, chunk_customers)):
        root = np.random.SeedSequence(seed) if k == 0 else np.random.SeedSequence(seed, spawn_key=(_CHUNK_STREAM, k))
        ids = replace(ids, party=first + 1)
        tables = _chunk(
            min(chunk_customers, customers - first), root, catalogue, product_id, launch, ws, ee, history_weeks, ids
        )
        ids = replace(
            ids, activity=ids.activity + len(tables["activity"]), offer=ids.offer + len(tables["offer_history"])
        )
        if k == 0:
            tables = {"customers": tables.pop("customers"), "product_register": products_df, **tables}
            dtypes = {name: df.dtypes for name, df in tables.items()}
        _check_dtypes(k, tables, dtypes)
        yield tables
        del tables  # the next chunk is drawn without this one still alive here


def _check_dtypes(k: int, tables: dict[str, pd.DataFrame], dtypes: dict[str, pd.Series]) -> None:
    for name, df in tables.items():
        if not df.dtypes.equals(dtypes[name]):
            raise RuntimeError(f"chunk {k}: {name} has dtypes {dict(df.dtypes)}, chunk 0 had {dict(dtypes[name])}")


def _chunk(
    customers: int,
    root: np.random.SeedSequence,
    catalogue: list[_Product],
    product_id: np.ndarray,
    launch: np.ndarray,
    ws: int,
    ee: int,
    history_weeks: int,
    ids: _IdStart,
) -> dict[str, pd.DataFrame]:
    """Every table but product_register for `customers` customers, drawn from `root`'s streams."""
    n_products = len(catalogue)
    rng_customers, rng_holdings, rng_weekly, rng_offers, rng_activity = (
        np.random.default_rng(s) for s in root.spawn(5)
    )
    bank, customers_df = _customers(rng_customers, customers, ws, ee, history_weeks, ids)

    h_party, h_product, h_opened, h_closed = _holdings(rng_holdings, catalogue, bank, launch, ws, ee)
    held_codes = h_party * n_products + h_product  # unique: one row per (party, product)
    n_held = np.bincount(h_party[h_closed == _NAT], minlength=customers)

    # Weekly snapshots.
    snapshots: dict[str, list[dict[str, np.ndarray]]] = {
        t: [] for t in ("eligibility", "churn_health", "customer_rote", "behaviour")
    }
    draw = rng_weekly.random((customers, n_products), dtype=np.float32)  # persistent per-pair draw
    first_p_eligible = None
    for week in range(history_weeks):
        as_of = ws + 7 * week + 6
        attrs = bank.at(as_of)
        status, exists = attrs["status"], attrs["exists"]
        if week:
            renew = rng_weekly.random((customers, n_products), dtype=np.float32) < WEEKLY_REDRAW
            draw[renew] = rng_weekly.random(int(renew.sum()), dtype=np.float32)
        p_eligible, p_referred = _eligibility_probabilities(catalogue, bank, attrs, as_of)
        if first_p_eligible is None:
            first_p_eligible = p_eligible
        code = np.where(draw < p_eligible, 0, np.where(draw < p_eligible + p_referred, 2, 1)).astype(np.int8)
        active = np.flatnonzero(exists & (status == 0))
        # Build the id columns straight from the object arrays: one pass each at 20M rows.
        snapshots["eligibility"].append(
            {
                "day": as_of,
                "party_id": np.repeat(bank.party_id[active], n_products),
                "product_id": np.tile(product_id, len(active)),
                "status": code[active].ravel(),
            }
        )
        del code, p_referred

        served = np.flatnonzero(exists & (status != 2))  # ACTIVE and DORMANT parties
        dormant = status[served] == 1
        k = len(served)
        spend = bank.spend[served] * np.exp(rng_weekly.normal(0.0, 0.08, k))
        spend = np.where(dormant, np.where(rng_weekly.random(k) < 0.5, 0.0, spend * 0.03), spend)
        balance = bank.months[served] * bank.spend[served] * np.exp(rng_weekly.normal(0.0, 0.05, k))
        balance = np.where(dormant, balance * 0.3, balance)
        fx = np.clip(bank.fx_months[served] + (rng_weekly.random(k) < 0.08) * rng_weekly.choice([-1, 1], k), 0, 6)
        category = np.where(spend > 0, bank.category[served], -1)  # -1 -> None (no spend)
        snapshots["behaviour"].append(
            {
                "day": as_of,
                "party": served,
                "balance": np.round(balance, 2),
                "spend": np.round(spend, 2),
                "fx": fx,
                "category": category,
            }
        )
        health = np.clip(bank.health[served] - 10.0 * dormant + rng_weekly.normal(0.0, 1.5, k), 0.0, 100.0)
        logit = (
            -2.3
            - 0.06 * (health - 50.0)
            + 1.8 * dormant
            + 0.7 * (balance < 250.0)
            + 0.5 * (n_held[served] <= 1)
            + bank.churn_noise[served]
            + rng_weekly.normal(0.0, 0.1, k)
        )
        snapshots["churn_health"].append(
            {"day": as_of, "party": served, "churn": np.round(_sigmoid(logit), 4), "health": np.round(health, 1)}
        )
        rote = bank.rote[served] + 0.008 * (np.minimum(n_held[served], 6) - 2) + rng_weekly.normal(0.0, 0.003, k)
        snapshots["customer_rote"].append(
            {"day": as_of, "party": served, "rote": np.round(np.clip(rote, -1.0, 1.0), 4)}
        )

    def stacked(table: str, key: str) -> np.ndarray:
        parts = [s[key] for s in snapshots[table]]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def snapshot_dates(table: str, key: str = "party") -> np.ndarray:
        return np.concatenate(
            [np.full(len(s[key]), np.datetime64(int(s["day"]), "D"), dtype="datetime64[ns]") for s in snapshots[table]]
        )

    eligibility_df = pd.DataFrame(
        {
            "as_of_date": snapshot_dates("eligibility", "party_id"),
            "party_id": stacked("eligibility", "party_id"),
            "product_id": stacked("eligibility", "product_id"),
            "eligibility_status": _objects(ELIGIBILITY_STATUSES, stacked("eligibility", "status")),
        },
        copy=False,
    )
    snapshots["eligibility"].clear()
    churn_df = pd.DataFrame(
        {
            "as_of_date": snapshot_dates("churn_health"),
            "party_id": bank.party_id[stacked("churn_health", "party")],
            "churn_probability": stacked("churn_health", "churn"),
            "financial_health_score": stacked("churn_health", "health"),
        },
        copy=False,
    )
    rote_df = pd.DataFrame(
        {
            "as_of_date": snapshot_dates("customer_rote"),
            "party_id": bank.party_id[stacked("customer_rote", "party")],
            "customer_rote": stacked("customer_rote", "rote"),
        },
        copy=False,
    )
    fx = stacked("behaviour", "fx")
    behaviour_df = pd.DataFrame(
        {
            "as_of_date": snapshot_dates("behaviour"),
            "party_id": bank.party_id[stacked("behaviour", "party")],
            "current_account_balance": stacked("behaviour", "balance"),
            "monthly_spend": stacked("behaviour", "spend"),
            "fx_active_months_6m": _int_array(fx, np.zeros(len(fx), bool)),
            "top_spend_category": _objects([*SPEND_CATEGORIES, None], stacked("behaviour", "category")),
        },
        copy=False,
    )

    # Offers, and the holdings that accepted offers created.
    o_party, o_product, o_offered, o_outcome, o_outcome_s = _offers(
        rng_offers, catalogue, bank, held_codes, first_p_eligible, ee
    )
    del first_p_eligible, draw
    accepted = (o_outcome == 1) & (o_outcome_s // DAY_S < bank.end[o_party])
    a_codes, first = np.unique((o_party * n_products + o_product)[accepted], return_index=True)
    a_party, a_product = np.divmod(a_codes, n_products)
    a_opened = o_outcome_s[accepted][first] // DAY_S
    h_party = np.concatenate([h_party, a_party])
    h_product = np.concatenate([h_product, a_product])
    h_opened = np.concatenate([h_opened, a_opened])
    h_closed = np.concatenate([h_closed, np.full(len(a_party), _NAT, np.int64)])
    order = np.lexsort((h_opened, h_product, h_party))
    h_party, h_product, h_opened, h_closed = h_party[order], h_product[order], h_opened[order], h_closed[order]
    holdings_df = pd.DataFrame(
        {
            "party_id": bank.party_id[h_party],
            "product_id": product_id[h_product],
            "opened_on": _dates(h_opened),
            "closed_on": _dates(h_closed),
        },
        copy=False,
    )
    offers_df = pd.DataFrame(
        {
            "offer_id": _ids("OF", np.arange(ids.offer, ids.offer + len(o_party)), ids.offer_width),
            "party_id": bank.party_id[o_party],
            "product_id": product_id[o_product],
            "offered_at": _times(o_offered),
            "outcome": _objects(OFFER_OUTCOMES, o_outcome),
            "outcome_at": _times(o_outcome_s),
        },
        copy=False,
    )

    in_window = h_opened >= ws
    activity_df = _activity(rng_activity, bank, h_party[in_window], h_opened[in_window], ws, ee, ids.activity)

    return {
        "customers": customers_df,
        "holdings": holdings_df,
        "eligibility": eligibility_df,
        "churn_health": churn_df,
        "customer_rote": rote_df,
        "offer_history": offers_df,
        "behaviour": behaviour_df,
        "activity": activity_df,
    }
