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

A matrix counted on one kind of face does not hold for another: children, or faces of other
origins, are confused differently, and a store's faces are never the validation faces. A
matrix may therefore be counted on several sources (``sources``: one count per labelled
split, the pooled counts their sum). The spread of a row's rates between the sources,
beyond what their counts alone explain, is the model's variation between kinds of faces: by
the method of moments (as DerSimonian and Laird's between-study variance, pooled over the
row's columns), ``sum_s n_s |r_s - r|^2 = (S - 1) B + (N - sum_s n_s^2 / N) B rho`` with
``B = 1 - |r|^2``, where ``rho = 1 / (c + 1)`` and ``c`` is the concentration of a
Dirichlet(c r) that draws a new kind of face's row around the pooled rates ``r``. The
bootstrap then draws each row from a Dirichlet whose variance adds this spread to the pooled
estimate's own (``1 / (c_row + 1) = rho + 1 / (N + K / 2 + 1)``), so its concentration is
never above the counts' own: a store unlike every source still gets an interval as wide as
the sources disagree. The point estimate keeps the pooled rates. With one source, or where
the sources agree as well as their counts allow (``rho`` 0), a row is drawn from its counts'
posterior as before; with a handful of sources ``rho`` is itself a rough estimate.

Children are confused more than adults on every kind of face, so a source of children and
one of adults disagree even where the kinds of face do not differ. The gender matrix, which
follows the store's age mix (``by_age``), therefore takes its spread from the sources with
ages compared within each age bracket, and weights the brackets' ``sqrt(rho)`` by the mix (a kind
of face's deviations move together across ages: the most their weighted sum can vary).
Comparing the pooled rows instead widened the adults' gender intervals to cover 100% of the
time (docs/accuracy.md). The age mix that weights it is the store's estimated one, itself
uncertain (most of all for children and teenagers, whose brackets the model confuses): the
variance of the weighted rows over the age estimate's bootstrap draws joins their spread.

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
    #: the counts per source (each with its ``source`` name, e.g. "lfw:val"), whose sum is
    #: ``counts``; empty for a matrix counted on one source. Their disagreement widens the
    #: intervals (``spread``).
    sources: tuple[Confusion, ...] = ()
    #: the rows' between-source spread where it is not the sources' own (``by_age``: the
    #: spread within each age bracket, weighted like the rates); None: from ``sources``
    rho: np.ndarray | None = None

    @classmethod
    def pooled(cls, parts: Sequence[Confusion], source: str = "") -> Confusion:
        """One matrix from the counts of several sources (same head and classes): their sum,
        the strata summed over the sources that have them, the parts kept as ``sources``.
        One part is returned as it is, named ``source``."""
        if not parts:
            raise ConfusionError("no confusion counts to pool")
        first = parts[0]
        if any(p.head != first.head or p.classes != first.classes for p in parts):
            raise ConfusionError(f"cannot pool confusion counts of different heads or classes "
                                 f"({', '.join(p.source for p in parts)})")
        if len(parts) == 1:
            return cls(first.head, first.classes, first.counts, source or first.source,
                       first.by_age_counts)
        strata = [p.by_age_counts for p in parts if p.by_age_counts is not None]
        by_age = np.sum(strata, axis=0) if strata else None
        return cls(first.head, first.classes, np.sum([p.counts for p in parts], axis=0),
                   source or " + ".join(p.source for p in parts), by_age,
                   tuple(cls(p.head, p.classes, p.counts, p.source, p.by_age_counts)
                         for p in parts))

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

    def by_age(self, age_mix: Sequence[float] | np.ndarray,
               mix_draws: np.ndarray | None = None) -> Confusion:
        """The matrix for an audience with this age mix (shares of the age brackets): each
        bracket's rates weighted by its share, as many faces per row as the pooled matrix.
        A bracket without faces of a class takes the pooled rates. Self without strata.
        ``mix_draws`` (draws, brackets): the age mix is an estimate too; the rows' variance
        over these draws of it joins their spread (``rho``), so the gender interval counts
        how little the age mix is known."""
        if self.by_age_counts is None:
            return self
        w = np.clip(np.nan_to_num(np.asarray(age_mix, np.float64)), 0, None)
        if w.shape != (len(self.by_age_counts),) or w.sum() <= 0:
            return self
        pooled = self.rates()
        rows = self.by_age_counts.sum(2, keepdims=True)
        rates = np.where(rows > 0, (self.by_age_counts + PRIOR) / (rows + PRIOR * len(pooled)),
                         pooled[None])
        w = w / w.sum()
        mixed = np.einsum("b,bij->ij", w, rates)
        rho = None
        if self.sources:  # the kinds of faces compared within each age bracket
            strata = [p.by_age_counts for p in self.sources if p.by_age_counts is not None]
            per_bracket = np.array([_spread(np.stack([s[b] for s in strata]))
                                    if strata else np.zeros(len(pooled))
                                    for b in range(len(w))])
            # one kind of face's deviations move together across ages: the variance of
            # their weighted sum is at most (sum_b w_b sqrt(rho_b))^2, reached when they do
            rho = (w @ np.sqrt(per_bracket)) ** 2
        if mix_draws is not None:
            rho = (0.0 if rho is None else rho) + _mix_spread(rates, mixed, mix_draws)
        return Confusion(self.head, self.classes, mixed * self.counts.sum(1, keepdims=True),
                         f"{self.source}, weighted by the age mix", sources=self.sources,
                         rho=rho)

    def restrict(self, labels: Sequence[str]) -> Confusion:
        """The matrix over these classes only (rows and columns), in this order."""
        idx = [self.classes.index(lb) for lb in labels]
        return Confusion(self.head, tuple(labels), self.counts[np.ix_(idx, idx)], self.source,
                         sources=tuple(p.restrict(labels) for p in self.sources),
                         rho=None if self.rho is None else self.rho[idx])

    def spread(self) -> np.ndarray:
        """Per row, the share of a rate's variance that is between kinds of faces, ``rho``
        (module docstring): the sources' disagreement beyond their counts' sampling error,
        by the method of moments. Zeros for one source, or rows fewer than two sources
        have faces of."""
        if self.rho is not None:
            return np.asarray(self.rho, np.float64)
        if len(self.sources) < 2:
            return np.zeros(len(self.classes))
        return _spread(np.stack([p.counts for p in self.sources]))

    def concentration(self) -> np.ndarray:
        """Per row, the total of the Dirichlet a row is drawn from: the counts plus the prior
        where the sources agree (or there is one), less where they do not."""
        k = len(self.classes)
        own = self.counts.sum(1) + PRIOR * k
        rho = self.spread()
        with np.errstate(divide="ignore"):
            spread = 1.0 / (rho + 1.0 / (own + 1.0)) - 1.0
        return np.where(rho > 0, np.clip(spread, PRIOR * k, own), own)

    def row_sizes(self) -> np.ndarray:
        """How many faces each row is worth: its count, or fewer where the sources disagree."""
        rho = self.spread()
        k = len(self.classes)
        return np.where(rho > 0, np.maximum(self.concentration() - PRIOR * k, 1.0),
                        self.counts.sum(1))

    def rates(self) -> np.ndarray:
        """Row rates P(predicted j | true i), posterior mean under the Dirichlet prior."""
        a = self.counts + PRIOR
        return a / a.sum(1, keepdims=True)

    def sample(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        """``draws`` matrices of row rates from the rows' Dirichlet posteriors: (draws, K, K)."""
        a = self.counts + PRIOR
        rho = self.spread()
        if (rho > 0).any():  # a new kind of face's rows spread around the pooled rates
            a = np.where(rho[:, None] > 0, self.rates() * self.concentration()[:, None], a)
        return np.stack([rng.dirichlet(row, size=draws) for row in a], axis=1)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"classes": list(self.classes),
                               "counts": self.counts.astype(int).tolist(), "source": self.source}
        if self.by_age_counts is not None:
            out["by_age_counts"] = self.by_age_counts.astype(int).tolist()
        if self.sources:
            out["sources"] = {p.source: {k: v for k, v in p.to_json().items()
                                         if k in ("counts", "by_age_counts")}
                              for p in self.sources}
        return out


def _mix_spread(rates: np.ndarray, mixed: np.ndarray, mix_draws: np.ndarray) -> np.ndarray:
    """Per row, the variance of the age-weighted rates over draws of the age mix, as a share
    of ``1 - |r|^2`` (the scale of ``rho``): bracket ``rates`` (B, K, K), their weighting at
    the point mix ``mixed`` (K, K), ``mix_draws`` (draws, B)."""
    w = np.clip(np.nan_to_num(np.asarray(mix_draws, np.float64)), 0, None)
    w = w[w.sum(1) > 0]
    if len(w) < 2:
        return np.zeros(len(mixed))
    drawn = np.einsum("db,bij->dij", w / w.sum(1, keepdims=True), rates)
    scale = 1.0 - (mixed ** 2).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip(np.nan_to_num(drawn.var(0).sum(1) / scale), 0.0, 1.0)


def _spread(per: np.ndarray) -> np.ndarray:
    """``rho`` per row of the sources' counts ``per`` (S, K, K): the method of moments of the
    module docstring, the columns of a row pooled, clipped to [0, 1]."""
    k = per.shape[1]
    rho = np.zeros(k)
    for i in range(k):
        n = per[:, i].sum(1)
        rows, n = per[n > 0, i], n[n > 0]
        if len(n) < 2:
            continue
        total = n.sum()
        mean = rows.sum(0) / total
        b = 1.0 - float((mean ** 2).sum())
        scale = total - float((n ** 2).sum()) / total
        if b <= 0 or scale <= 0:
            continue
        q = float((n * ((rows / n[:, None] - mean) ** 2).sum(1)).sum())
        rho[i] = min(max(0.0, (q - (len(n) - 1) * b) / (scale * b)), 1.0)
    return rho


def confusions(manifest: Mapping[str, Any]) -> dict[str, Confusion]:
    """The manifest's ``confusion`` section, one matrix per head (empty if it has none)."""
    out = {}
    for head, entry in (manifest.get("confusion") or {}).items():
        try:
            classes = tuple(entry["classes"])
            parts = tuple(_part(head, classes, name, part)
                          for name, part in (entry.get("sources") or {}).items())
            out[head] = _part(head, classes, entry.get("source", ""), entry, parts)
            if parts and not np.array_equal(sum(p.counts for p in parts), out[head].counts):
                raise ValueError("the sources' counts do not add up to the pooled counts")
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfusionError(f"manifest confusion for {head!r} is malformed ({exc}): "
                                 "re-run `audience evaluate confusion --write`") from None
    return out


def _part(head: str, classes: tuple[str, ...], name: str, entry: Mapping[str, Any],
          sources: tuple[Confusion, ...] = ()) -> Confusion:
    """One matrix from its manifest entry (``counts``, optional ``by_age_counts``)."""
    strata = entry.get("by_age_counts")
    return Confusion(head, classes, np.array(entry["counts"]), str(name),
                     np.array(strata) if strata is not None else None, sources)


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
    factors' rows (``Confusion.row_sizes``: fewer than its count where a factor's sources
    disagree), so the combination is never more certain than its parts. None if any part
    has no matrix."""
    if any(p is None for p in parts) or not parts:
        return None
    known = [p for p in parts if p is not None]
    rates, sizes, classes = known[0].rates(), known[0].row_sizes(), list(known[0].classes)
    for p in known[1:]:
        rates = np.kron(rates, p.rates())
        sizes = np.minimum.outer(sizes, p.row_sizes()).ravel()
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
    #: the bootstrap's draws of the shares (draws, labels), in the order of ``shares``
    draws: np.ndarray | None = field(default=None, repr=False, compare=False)

    def get(self, label: str) -> Share | None:
        return next((s for s in self.shares if s.label == label), None)

    @property
    def note(self) -> str:
        if self.corrected:
            return (f"{self.head}: corrected for the model's confusion ({self.source}); "
                    f"{self.level:.0%} intervals include its uncertainty and sampling error.")
        return (f"{self.head}: not corrected (the model ships no confusion matrix for it); "
                f"{self.level:.0%} intervals are sampling error only.")


def _gendered_brackets(ages: HeadShares, min_age: float) -> list[tuple[int, int]]:
    """(bracket index in AGE_BRACKETS, index in ``ages.shares``) of the age brackets not
    wholly under ``min_age`` that ``ages`` has."""
    upper = (13, 18, 25, 35, 45, 55, 65, 200)  # each bracket's first age not in it
    labels = [s.label for s in ages.shares]
    return [(i, labels.index(b)) for i, (b, top) in enumerate(zip(AGE_BRACKETS, upper,
                                                                   strict=True))
            if b in labels and top > min_age]


def gendered_mix(ages: HeadShares, min_age: float) -> np.ndarray:
    """The age-bracket mix of the visitors who get a gender: the corrected age shares, with
    the brackets wholly under ``min_age`` at 0 (for ``Confusion.by_age``)."""
    mix = np.zeros(len(AGE_BRACKETS))
    for i, j in _gendered_brackets(ages, min_age):
        if np.isfinite(ages.shares[j].share):
            mix[i] = ages.shares[j].share
    return mix


def gender_matrix(matrix: Confusion, ages: HeadShares, min_age: float) -> Confusion:
    """The gender matrix for an audience with these estimated age shares: weighted by their
    point, with their uncertainty (the age estimate's bootstrap draws) in its rows' spread
    (``Confusion.by_age``)."""
    draws = None
    if ages.draws is not None:
        draws = np.zeros((len(ages.draws), len(AGE_BRACKETS)))
        for i, j in _gendered_brackets(ages, min_age):
            draws[:, i] = np.nan_to_num(ages.draws[:, j])
    return matrix.by_age(gendered_mix(ages, min_age), draws)


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
    drawn = boot.copy()
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
            drawn[:, idx] = again * scale
    shares = [Share(lb, int(n_vec[i]), float(raw[i]), float(point[i]),
                    float(min(lo[i], point[i])), float(max(hi[i], point[i])))
              for i, lb in enumerate(labels)]
    return HeadShares(head, total, len(known) >= 2, level, shares,
                      confusion.source if confusion and len(known) >= 2 else "", drawn)
