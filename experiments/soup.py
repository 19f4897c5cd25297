"""Weight averaging: the mean of one run's last epochs (stochastic weight averaging).

The epochs at the end of one annealed run lie in one basin of the loss; the mean of their
weights is often a little better than any one of them, and it costs nothing at inference
(one network, the same size). BatchNorm statistics are re-estimated for the mean weights
(``models.train.recalibrate_batchnorm``). The result is one more candidate: it ships only
where ``models.compare`` prefers it on the validation splits.

``audience train --keep-epochs-from N`` saves ``<run>/epochs/epoch-NNN.weights.h5``; then::

    python experiments/soup.py runs/mt-2.2 --last 8

writes ``<run>/soup-last8.keras`` (export it with ``audience export``). The validation
score of the mean and of the run's best epoch are printed side by side.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from audience.core.errors import InputError

log = logging.getLogger(__name__)

EPOCH_FILE = re.compile(r"epoch-(\d+)\.weights\.h5$")


def epoch_files(run: Path) -> list[tuple[int, Path]]:
    """The kept epochs of a run, in order: (epoch number, weights file)."""
    found = [(int(m.group(1)), p) for p in (run / "epochs").glob("epoch-*.weights.h5")
             if (m := EPOCH_FILE.search(p.name))]
    return sorted(found)


def pick(files: list[tuple[int, Path]], last: int, first: int | None = None) -> list[Path]:
    """The last ``last`` epochs, or every kept epoch from ``first`` on."""
    chosen = [p for e, p in files if e >= first] if first is not None else \
        [p for _, p in files[-last:]]
    if len(chosen) < 2:
        raise InputError(f"{len(chosen)} kept epoch(s) to average: at least 2 are needed "
                         "(train with --keep-epochs-from, or lower --first)")
    return chosen


def mean_weights(model, paths: list[Path]) -> list[np.ndarray]:
    """The element-wise mean of the weights files (all of ``model``'s structure)."""
    total: list[np.ndarray] | None = None
    for path in paths:
        model.load_weights(path)
        weights = [w.astype(np.float64) for w in model.get_weights()]
        total = weights if total is None else [t + w for t, w in zip(total, weights, strict=True)]
    assert total is not None
    return [(t / len(paths)).astype(np.float32) for t in total]


def soup(run: Path, last: int = 8, first: int | None = None) -> tuple[Path, float, float]:
    """Average the chosen epochs of ``run``, recalibrate BatchNorm, save next to the run's
    checkpoints. Returns (path, validation score of the mean, of the run's best epoch)."""
    import keras

    from audience.models.net import CUSTOM_OBJECTS
    from audience.models.train import load_config, recalibrate_batchnorm, run_sets, score_on_val

    paths = pick(epoch_files(run), last, first)
    best = run / "best.keras"
    if (run / "best-recalibrated.keras").is_file():  # what the run itself chose (train.finish)
        best = run / "best-recalibrated.keras"
    if not best.is_file() or not (run / "config.json").is_file():
        raise InputError(f"{run} is not a finished `audience train` run (no best.keras or "
                         "config.json)")
    cfg = load_config(run)
    if cfg.bf16:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    sets = run_sets(cfg)
    model = keras.models.load_model(best, custom_objects=CUSTOM_OBJECTS)
    best_score = score_on_val(model, sets, cfg.tasks)
    log.info("averaging %d epochs: %s", len(paths), ", ".join(p.name for p in paths))
    model.set_weights(mean_weights(model, paths))
    recalibrate_batchnorm(model, sets["train"][0])
    mean_score = score_on_val(model, sets, cfg.tasks)
    name = f"soup-from{first}" if first is not None else f"soup-last{len(paths)}"
    out = run / f"{name}.keras"
    model.save(out)
    log.info("validation score: mean of %d epochs %.4f, best epoch %.4f (%s)", len(paths),
             mean_score, best_score, out)
    return out, mean_score, best_score


def main(
    run: Annotated[Path, typer.Argument(help="An `audience train` run folder trained with "
                                              "--keep-epochs-from.")],
    last: Annotated[int, typer.Option(min=2, help="Average the last N kept epochs.")] = 8,
    first: Annotated[int | None, typer.Option(
        help="Instead of --last: average every kept epoch from this one on.")] = None,
) -> None:
    """Average a run's last epochs into one network (stochastic weight averaging)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                                                    "%(message)s")
    try:
        out, mean_score, best_score = soup(run, last, first)
    except InputError as exc:  # one line and exit 2, as every command
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{out}: validation score {mean_score:.4f} (best epoch {best_score:.4f})")


if __name__ == "__main__":
    typer.run(main)
