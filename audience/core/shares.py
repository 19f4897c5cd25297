"""Shares a marketer can trust: each share corrected for the model's known confusion, with an
interval that counts both sampling error and the error of the confusion estimate itself.

A model's mistakes do not cancel out in a share: if 13-17 year olds are often read as 25-34,
the age chart leans the same way in every store. The model's manifest ships one confusion
matrix per head (``confusion``: true rows, predicted columns, counted on a validation split
by ``audience evaluate confusion``). Given the labels counted in a store, the true mix ``p``
is the maximum-likelihood solution of ``observed ~ Multinomial(N, p @ R)`` (``R``: the
matrix's row rates), found by EM as in Saerens, Latinne and Decaestecker (2002), Neural
Computation 14(1), with hard labels: it stays on the simplex where plain matrix inversion
(adjusted classify-and-count) gives negative shares.

The interval is a parametric bootstrap: the visitors' true classes are drawn from the
estimated mix (sampling error: 40 visitors say less than 4,000), each row of the confusion
matrix from its Dirichlet posterior given the validation counts (the matrix is itself an
estimate from a few hundred faces per class), their labels from that row, and the corrected
share is estimated again with the shipped matrix. A head without a matrix gets an interval
from sampling error alone, and says so (``HeadShares.corrected`` is False).

It lives in the shared vocabulary because two independent stages use it: inference (the
children's gender rule) and reports (every published share).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audience.core.errors import WeightsError
from audience.core.visit import AGE_BRACKETS
from audience.core.weights import WEIGHTS_DIR

#: Level of the published intervals: 9 times in 10 the interval holds the true share.
LEVEL = 0.9
DRAWS = 2000
#: The published point: EM stopped this many steps from the raw shares, a correction shrunk
#: towards them. The maximum-likelihood mix (EM to convergence) is unbiased but noisy where
#: classes are often confused (adjacent age brackets): on UTKFace val, with the matrix of the
#: other half, 3 steps gave a lower mean error than both the raw and the ML shares for
#: audiences of 50-500 (docs/accuracy.md). The interval is the ML estimate's.
EM_STEPS: int | None = 3
#: Children's gender is not reported (gender on children is the model's known gap): a visitor
#: the model thinks younger than this has gender unknown. A manifest's ``gender_min_age``
#: sets the age its model ships with.
GENDER_MIN_AGE = 13.0
#: Dirichlet prior added to each confusion count (Jeffreys): a never-seen confusion is
#: possible, not impossible.
PRIOR = 0.5

INTERVAL_NOTE = ("Shares are of the visits with a label, corrected for the model's known "
                 "mistakes; in brackets the range that holds the true share 9 times in 10, "
                 "counting both how few visits there are and how well the model's mistakes "
                 "are known.")


class ConfusionError(ValueError):
    """A confusion matrix in a manifest is malformed."""


@dataclass(frozen=True)
class Confusion:
    """One head's confusion counts: ``counts[i, j]`` faces of true class i predicted j."""

    head: str
    classes: tuple[str, ...]
    counts: np.ndarray
    source: str = ""  #: where it was counted (dataset, split, model)
    #: the same counts per true age bracket (AGE_BRACKETS order), (brackets, K, K), or None:
    #: gender mistakes depend on age (older women read as men more often), so the matrix that
    #: applies to a store depends on its age mix (``by_age``)
    by_age_counts: np.ndarray | None = None

    def __post_init__(self) -> None:
        c = np.asarray(self.counts, np.float64)
        k = len(self.classes)
        if c.shape != (k, k) or (c < 0).any() or not np.isfinite(c).all():
            raise ConfusionError(f"confusion matrix for {self.head}: expected {k}x{k} "
                                 f"non-negative counts, got shape {c.shape}")
        object.__setattr__(self, "counts", c)
        if self.by_age_counts is not None:
            b = np.asarray(self.by_age_counts, np.float64)
            if b.ndim != 3 or b.shape[1:] != (k, k) or (b < 0).any():
                raise ConfusionError(f"confusion by age for {self.head}: expected Bx{k}x{k} "
                                     f"non-negative counts, got shape {b.shape}")
            object.__setattr__(self, "by_age_counts", b)

    def by_age(self, age_mix: Sequence[float] | np.ndarray) -> Confusion:
        """The matrix for an audience with this age mix (shares of the age brackets): each
        bracket's rates weighted by its share, as many faces per row as the pooled matrix.
        A bracket without faces of a class takes the pooled rates. Self without strata."""
        if self.by_age_counts is None:
            return self
        w = np.clip(np.nan_to_num(np.asarray(age_mix, np.float64)), 0, None)
        if w.shape != (len(self.by_age_counts),) or w.sum() <= 0:
            return self
        pooled = self.rates()
        rows = self.by_age_counts.sum(2, keepdims=True)
        rates = np.where(rows > 0, (self.by_age_counts + PRIOR) / (rows + PRIOR * len(pooled)),
                         pooled[None])
        mixed = np.einsum("b,bij->ij", w / w.sum(), rates)
        return Confusion(self.head, self.classes, mixed * self.counts.sum(1, keepdims=True),
                         f"{self.source}, weighted by the age mix")

    def restrict(self, labels: Sequence[str]) -> Confusion:
        """The matrix over these classes only (rows and columns), in this order."""
        idx = [self.classes.index(lb) for lb in labels]
        return Confusion(self.head, tuple(labels), self.counts[np.ix_(idx, idx)], self.source)

    def rates(self) -> np.ndarray:
        """Row rates P(predicted j | true i), posterior mean under the Dirichlet prior."""
        a = self.counts + PRIOR
        return a / a.sum(1, keepdims=True)

    def sample(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        """``draws`` matrices of row rates from the rows' Dirichlet posteriors: (draws, K, K)."""
        a = self.counts + PRIOR
        return np.stack([rng.dirichlet(row, size=draws) for row in a], axis=1)

    def to_json(self) -> dict[str, Any]:
        out = {"classes": list(self.classes), "counts": self.counts.astype(int).tolist(),
               "source": self.source}
        if self.by_age_counts is not None:
            out["by_age_counts"] = self.by_age_counts.astype(int).tolist()
        return out


def confusions(manifest: Mapping[str, Any]) -> dict[str, Confusion]:
    """The manifest's ``confusion`` section, one matrix per head (empty if it has none)."""
    out = {}
    for head, entry in (manifest.get("confusion") or {}).items():
        try:
            strata = entry.get("by_age_counts")
            out[head] = Confusion(head, tuple(entry["classes"]), np.array(entry["counts"]),
                                  str(entry.get("source", "")),
                                  np.array(strata) if strata is not None else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfusionError(f"manifest confusion for {head!r} is malformed ({exc}): "
                                 "re-run `audience evaluate confusion --write`") from None
    return out


def manifest_confusions(path: str | Path | None = None) -> dict[str, Confusion]:
    """The confusion matrices of a model manifest (default: the shipped model's); empty if
    it has none. Only the JSON is read: no weights are loaded."""
    path = Path(path) if path else WEIGHTS_DIR / "audience-mt.json"
    try:
        return confusions(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, ConfusionError) as exc:
        raise WeightsError(f"cannot read the confusion matrices of {path} ({exc}): restore "
                           "the manifest or re-run `audience evaluate confusion --write`") from None


def manifest_gender_min_age(path: str | Path | None = None) -> float:
    """The age under which a manifest's model gives no gender (GENDER_MIN_AGE if unset)."""
    path = Path(path) if path else WEIGHTS_DIR / "audience-mt.json"
    try:
        return gender_min_age(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, TypeError, ValueError):
        return GENDER_MIN_AGE


def joint(parts: Sequence[Confusion | None]) -> Confusion | None:
    """The confusion of label combinations (age bracket x gender), errors taken as
    independent: rates multiply. Each joint row counts as many faces as the less-known of its
    factors' rows, so the combination is never more certain than its parts. None if any part
    has no matrix."""
    if any(p is None for p in parts) or not parts:
        return None
    known = [p for p in parts if p is not None]
    rates, sizes, classes = known[0].rates(), known[0].counts.sum(1), list(known[0].classes)
    for p in known[1:]:
        rates = np.kron(rates, p.rates())
        sizes = np.minimum.outer(sizes, p.counts.sum(1)).ravel()
        classes = [f"{a} / {b}" for a in classes for b in p.classes]
    return Confusion(" x ".join(p.head for p in known), tuple(classes),
                     rates * sizes[:, None], ", ".join(sorted({p.source for p in known})))


def gender_min_age(manifest: Mapping[str, Any], configured: float | None = None) -> float:
    """Under this estimated age a visitor's gender is unknown: the configured value, else the
    manifest's ``gender_min_age``, else GENDER_MIN_AGE."""
    if configured is not None:
        return float(configured)
    return float(manifest.get("gender_min_age", GENDER_MIN_AGE))


def em_shares(observed: np.ndarray, rates: np.ndarray, iters: int = 300,
              tol: float = 1e-6, start: np.ndarray | None = None) -> np.ndarray:
    """Maximum-likelihood true mix from predicted-label counts (EM on the simplex).

    ``observed``: (..., K) counts per predicted class; ``rates``: (K, K) or (..., K, K)
    P(predicted | true); ``start``: a first guess (K,), default uniform. Returns (..., K)
    shares; rows without any count give NaN."""
    n = np.asarray(observed, np.float64)
    total = n.sum(-1, keepdims=True)
    k = n.shape[-1]
    p = np.broadcast_to(start if start is not None else np.full(k, 1.0 / k), n.shape).copy()
    p = np.clip(p, 1e-3, None)  # a zero share would stay zero for ever
    p /= p.sum(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        for _ in range(iters):
            q = np.einsum("...i,...ij->...j", p, rates)  # predicted-label mix under p
            ratio = np.where(q > 0, n / np.where(q > 0, q, 1.0), 0.0)
            new = p * np.einsum("...ij,...j->...i", rates, ratio) / total
            done = np.nanmax(np.abs(new - p)) < tol
            p = new
            if done:
                break
    return np.where(total > 0, p, np.nan)


@dataclass(frozen=True)
class Share:
    label: str
    count: int  #: visits counted with this label
    raw: float  #: count over the labelled visits
    share: float  #: corrected (equal to raw without a confusion matrix)
    low: float
    high: float

    def text(self) -> str:
        """'52% (45-59%)'."""
        return f"{pct(self.share)} ({pct(self.low, False)}-{pct(self.high)})"


@dataclass(frozen=True)
class HeadShares:
    head: str
    n: int  #: labelled visits the shares are of
    corrected: bool  #: False: no confusion matrix, the interval is sampling error only
    level: float = LEVEL
    shares: list[Share] = field(default_factory=list)
    source: str = ""

    def get(self, label: str) -> Share | None:
        return next((s for s in self.shares if s.label == label), None)

    @property
    def note(self) -> str:
        if self.corrected:
            return (f"{self.head}: corrected for the model's confusion ({self.source}); "
                    f"{self.level:.0%} intervals include its uncertainty and sampling error.")
        return (f"{self.head}: not corrected (the model ships no confusion matrix for it); "
                f"{self.level:.0%} intervals are sampling error only.")


def gendered_mix(ages: HeadShares, min_age: float) -> np.ndarray:
    """The age-bracket mix of the visitors who get a gender: the corrected age shares, with
    the brackets wholly under ``min_age`` at 0 (for ``Confusion.by_age``)."""
    upper = (13, 18, 25, 35, 45, 55, 65, 200)  # each bracket's first age not in it
    mix = np.zeros(len(AGE_BRACKETS))
    for i, (b, top) in enumerate(zip(AGE_BRACKETS, upper, strict=True)):
        share = ages.get(b)
        if share is not None and top > min_age and np.isfinite(share.share):
            mix[i] = share.share
    return mix


def pct(x: float, sign: bool = True) -> str:
    if not np.isfinite(x):
        return "-"
    return f"{100 * x:.0f}" + ("%" if sign else "")


def _quantiles(x: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    a = (1 - level) / 2
    return np.nanquantile(x, a, axis=0), np.nanquantile(x, 1 - a, axis=0)


def estimate(head: str, counts: Mapping[str, int], confusion: Confusion | None = None,
             level: float = LEVEL, draws: int = DRAWS, seed: int = 0) -> HeadShares:
    """Shares of one head from its label counts (only the labels given: unknown and hidden
    cells are left out by the caller). With a confusion matrix, the labels it knows are
    corrected among themselves (its rows and columns restricted to them); any other label
    keeps its raw share and a sampling interval."""
    labels = [lb for lb in counts if counts[lb] >= 0]
    n_vec = np.array([counts[lb] for lb in labels], np.float64)
    total = int(n_vec.sum())
    rng = np.random.default_rng(seed)
    known = [lb for lb in labels if confusion is not None and lb in confusion.classes]
    if total == 0:
        return HeadShares(head, 0, bool(known), level,
                          [Share(lb, 0, np.nan, np.nan, np.nan, np.nan) for lb in labels],
                          confusion.source if confusion else "")
    raw = n_vec / total
    # Sampling error: the labelled visits are a sample of the store's audience.
    boot = rng.multinomial(total, raw, size=draws) / total
    point = raw.copy()
    lo, hi = _quantiles(boot, level)
    if confusion is not None and len(known) >= 2:
        sub = confusion.restrict(known)
        idx = [labels.index(lb) for lb in known]
        n_k = n_vec[idx]
        m = int(n_k.sum())
        if m:
            rates = sub.rates()
            est = em_shares(n_k, rates)  # maximum likelihood: the bootstrap's model
            # Parametric bootstrap: true classes from the estimate, labels through a
            # confusion drawn from its posterior, re-estimated with the shipped rates.
            true = rng.multinomial(m, est, size=draws)
            sampled = sub.sample(rng, draws)
            pred = np.zeros_like(true)
            for i in range(len(known)):
                pred += rng.multinomial(true[:, i], sampled[:, i, :])
            again = em_shares(pred, rates, start=est)
            k_lo, k_hi = _quantiles(again, level)
            if EM_STEPS:
                est = em_shares(n_k, rates, EM_STEPS, 0.0, start=n_k / m)
            scale = m / total  # the corrected labels' share of all labelled visits
            point[idx], lo[idx], hi[idx] = est * scale, k_lo * scale, k_hi * scale
    shares = [Share(lb, int(n_vec[i]), float(raw[i]), float(point[i]),
                    float(min(lo[i], point[i])), float(max(hi[i], point[i])))
              for i, lb in enumerate(labels)]
    return HeadShares(head, total, len(known) >= 2, level, shares,
                      confusion.source if confusion and len(known) >= 2 else "")
