"""What a reader can work out from linked tables: least and most visits of every cell, by
linear programming.

One camera-day's visits per full label combination (age bracket, gender, emotion, looked: a
*joint* cell) are unknown non-negative integers to a reader. Every published table (one,
two or three labels) gives one equation per shown cell, and the day total one more (each
table's "suppressed" figure is the total minus its shown cells: nothing new). For any cell of
any table, published or not, the least and the most it can hold under those equations bound
what the reader learns. A cell is *confined* when it holds 1 to k-1 visits and the equations
allow no 0 and nothing of k or more: the reader knows that between 1 and k-1 people with
those labels came. The linear program relaxes integers to reals, so its bounds (rounded
inward) are never tighter than the reader's: no confinement it misses exists.

The reader here knows which labels occur that day at all (the variables are combinations of
those labels only), which is more than a real reader knows.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations, product

import numpy as np
from scipy.optimize import linprog

Table = tuple[int, ...]  #: label positions, ascending: one table
Cells = Mapping[tuple[str, ...], int]  #: joint cells (one label per position) -> visits
EPS = 1e-6


def tables_of(n_dims: int, most: int | None = None) -> list[Table]:
    """Every non-empty subset of label positions (of ``most`` positions at most), smallest
    tables first."""
    top = n_dims if most is None else min(most, n_dims)
    return [c for r in range(1, top + 1) for c in combinations(range(n_dims), r)]


def project(joint: Cells, table: Table) -> dict[tuple[str, ...], int]:
    """The cells of ``table``: the joint cells (one label per position) added up."""
    out: dict[tuple[str, ...], int] = defaultdict(int)
    for key, n in joint.items():
        if n:
            out[tuple(key[i] for i in table)] += n
    return dict(out)


@dataclass(frozen=True, slots=True)
class Confined:
    table: Table
    key: tuple[str, ...]  #: the cell's labels: an operator's finding, never for a reader
    visits: int
    least: int
    most: int


def _solve(a_eq: np.ndarray, b_eq: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """A vertex of {x >= 0, A x = b} that minimises ``cost``."""
    res = linprog(cost, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    if res.status != 0:  # the published figures come from real counts: always feasible
        raise RuntimeError(f"privacy audit: linear program failed: {res.message}")
    return np.asarray(res.x)


@dataclass(slots=True)
class Audited:
    cells: int = 0  #: non-empty cells of the published tables
    shown: int = 0
    checked: int = 0  #: hidden or unpublished cells of 1..k-1 visits, each bounded
    confined: list[Confined] = field(default_factory=list)


def confined(joint: Cells, hidden: Mapping[Table, set[tuple[str, ...]]], k: int) -> Audited:
    """Bound every cell of 1..k-1 visits that is not shown, in every table of the positions
    of ``joint``, given the shown cells of the tables in ``hidden`` (table -> its hidden keys)
    and the day total. The cells of those bounds that stay within 1..k-1 are ``confined``."""
    out = Audited()
    if not joint:
        return out
    n_dims = len(next(iter(joint)))
    values = [sorted({key[i] for key, n in joint.items() if n}) for i in range(n_dims)]
    # The variables: every combination of the labels that occur (itertools.product's order),
    # as the index of each label per position.
    sizes = [len(v) for v in values]
    index = np.indices(sizes).reshape(n_dims, -1)
    member: dict[tuple[Table, tuple[str, ...]], np.ndarray] = {}
    for t in tables_of(n_dims):  # each cell of each table: the joint cells it adds up
        code = np.ravel_multi_index(tuple(index[i] for i in t), [sizes[i] for i in t])
        for c, key in enumerate(product(*(values[i] for i in t))):
            member[(t, key)] = (code == c).astype(float)
    rows, rhs = [np.ones(index.shape[1])], [float(sum(joint.values()))]
    targets: list[tuple[Table, tuple[str, ...], int]] = []
    for t in tables_of(n_dims):
        for key, n in sorted(project(joint, t).items()):
            if t in hidden:
                out.cells += 1
                if key not in hidden[t]:
                    out.shown += 1
                    rows.append(member[(t, key)])
                    rhs.append(float(n))
                    continue
            if 0 < n < k:
                targets.append((t, key, n))
    out.checked = len(targets)
    if not targets:
        return out
    a_eq, b_eq = np.array(rows), np.array(rhs)
    # Every solution found is kept: a point where a cell holds 0, or k or more, clears it
    # without a solve of its own. Seed: all targets as small, then as large, as they can be.
    total = np.sum([member[(t, key)] for t, key, _ in targets], axis=0)
    points = [_solve(a_eq, b_eq, total), _solve(a_eq, b_eq, -total)]
    for t, key, n in targets:
        vec = member[(t, key)]
        at = np.array(points) @ vec
        if np.any((at <= EPS) | (at >= k - EPS)):
            continue
        points.append(low := _solve(a_eq, b_eq, vec))
        least = math.ceil(float(vec @ low) - EPS)
        if least < 1:
            continue
        points.append(high := _solve(a_eq, b_eq, -vec))
        most = math.floor(float(vec @ high) + EPS)
        if most < k:
            out.confined.append(Confined(t, key, n, least, most))
    return out

