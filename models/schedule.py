"""A cosine learning-rate schedule that ends on time as well as on steps.

On shared CPU cores an epoch takes anywhere from 1x to 2x its unloaded time, so a schedule
sized in epochs may be cut off by the time budget before it anneals, and a truncated cosine
ends at a high learning rate: the worst place to stop. Here progress is the larger of
"steps done / steps planned" and "training time spent / time budget": the cosine reaches 0
at whichever comes first, and training stops there. Time spent survives a resume
(``elapsed.json`` in the run folder, written after each epoch).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras


class CosineByProgress(keras.callbacks.Callback):
    def __init__(self, peak: float, total_steps: int, warmup_steps: int, budget_s: float,
                 state: Path) -> None:
        super().__init__()
        self.peak, self.total, self.warmup = peak, max(total_steps, 1), warmup_steps
        self.budget, self.state = budget_s, Path(state)
        self.before = (json.loads(self.state.read_text())["seconds"]
                       if self.state.is_file() else 0.0)
        self.started = time.monotonic()

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.started = time.monotonic()  # data preparation is not training time

    def elapsed(self) -> float:
        return self.before + time.monotonic() - self.started

    def lr_at(self, step: int, elapsed: float) -> tuple[float, float]:
        """(learning rate, progress in [0, 1]) after ``step`` steps and ``elapsed`` seconds."""
        if step < self.warmup:
            return self.peak * (0.05 + 0.95 * step / self.warmup), 0.0
        by_steps = (step - self.warmup) / max(self.total - self.warmup, 1)
        progress = min(max(by_steps, elapsed / self.budget), 1.0)
        return 0.5 * self.peak * (1 + math.cos(math.pi * progress)), progress

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        step = int(self.model.optimizer.iterations.numpy())
        lr, progress = self.lr_at(step, self.elapsed())
        self.model.optimizer.learning_rate.assign(lr)
        if progress >= 1.0:
            self.model.stop_training = True  # the schedule has annealed: end this epoch here

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.state.write_text(json.dumps({"seconds": self.elapsed()}))
        if logs is not None:
            logs["lr"] = float(self.model.optimizer.learning_rate.numpy())
