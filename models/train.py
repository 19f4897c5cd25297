"""Train the multi-task face attribute network on FER-2013 and UTKFace together.

Resumable: re-running the same command with the same ``--out`` continues from the last
finished epoch (Keras ``BackupAndRestore``). Seeded. Stops early when the validation
score stops improving or the time budget runs out; the best checkpoint is kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audience.core.preprocess import INPUT_SIZE, LUMA_BGR, prepare_batch, to_channels
from audience.inference.cpu import cpu_flags
from audience.models.backbone import Backbone as Backbone
from audience.models.data import (
    EMOTIONS,
    ETHNICITIES,
    FerData,
    aligned_utk_faces,
    cache_dir,
    load_fer2013,
    load_ferplus,
    load_utkface,
)

log = logging.getLogger(__name__)

#: The network's outputs, each trained by its own masked loss (``TrainConfig.tasks``).
TASKS = ("emotion", "age", "gender", "ethnicity")


@dataclass
class TrainConfig:
    fer_csv: str
    utk_dir: str
    out: str = "runs/mt"
    ferplus_csv: str | None = None
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    ferplus_weight: float = 0.2  # share of FER+ votes in the emotion target
    seed: int = 1234
    max_hours: float = 2.4
    patience: int = 8
    limit: int = 0  # use only the first N samples of each set (smoke tests)
    init_from: str | None = None  # start from a .keras checkpoint or a shipped manifest (.json)
    size: int = INPUT_SIZE
    widths: tuple[int, ...] = (32, 64, 128, 256)  # backbone block widths (models.net)
    emotion_block: int = 0  # width of emotion's own last block, 0 for none (models.net)
    backbone: str = "vgg"  # backbone family (models.net.BACKBONES)
    teacher: str | None = None  # a shipped manifest (.json) whose model teaches (distillation)
    distill: float = 0.5  # share of the teacher's outputs in each training target
    erase: float = 0.0  # probability of random erasing (one patch, filled with the mean)
    channels: int = 1  # network input: 1 gray, 3 BGR (FER-2013 rows are gray, replicated)
    gray: float = 0.0  # probability a colour training face is shown in gray (its luma)
    utk_repeat: int = 1  # each epoch shows every UTKFace training chip this many times
    # The teachers recipe (``--teachers``, models.teachers.targets): pretrained teachers'
    # soft targets and pseudo-labels, every UTKFace folder de-duplicated.
    teachers: bool = False
    utk_dirs: tuple[str, ...] = ()  # with --teachers; empty: (utk_dir,)
    temperature: float = 3.0
    kd_alpha: float = 0.5  # share of the T^2 KL term in the emotion loss
    utk_emotion_weight: float = 0.5  # mini-Xception's emotion on UTKFace chips
    expression_share: float = 0.0  # FaceExpressionNet's share of the FER-2013 emotion teacher
    # a shipped manifest whose emotion head joins the FER-2013 emotion teacher (one network
    # distilled from an emotion specialist), and its share of that teacher
    emotion_teacher: str | None = None
    emotion_teacher_share: float = 0.5
    fer_gender_weight: float = 0.5  # AgeGenderNet's gender on FER-2013 faces
    fer_age_weight: float = 0.25  # AgeGenderNet's age on FER-2013 faces
    optimizer: str = "adamw"  # or sgd (Nesterov 0.9)
    warmup_epochs: int = 1
    head: str = "flatten"  # or gap (models.net.HEADS)
    dropout: float = 0.3
    bf16: bool = False  # mixed bfloat16 training (the export is float32)
    anneal_hours: float = 0.0  # >0: the cosine also ends when this much training time is spent
    keep_epochs_from: int = 0  # >0: save epochs/epoch-NNN.weights.h5 from this epoch on (soup)
    # The heads whose losses train (the rest get weight 0 and are left out of the validation
    # score): ``("emotion",)`` trains an emotion specialist for an ensemble (models.ensemble
    # averages each head over the members that trained it).
    tasks: tuple[str, ...] = TASKS
    # Faces in the wild with their hair (``models.wild``: AAF, LFW folders; with --teachers):
    # gender always, age where the folder has it. Training shows them ``wild_repeat`` times.
    wild_dirs: tuple[str, ...] = ()
    wild_repeat: int = 1
    # Camera conditions: the share of training faces shown at 12-24 px and scaled back up
    # (a ceiling camera's face; the crop side is about the face box), and the share given a
    # colour cast (an independent gain of 0.8-1.2 per channel: white balance, lighting).
    lowres: float = 0.0
    colour: float = 0.0


def _with_mask(target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.concatenate([target.astype(np.float32), mask[:, None].astype(np.float32)], 1)


def _fer_inputs(csv_path: str, size: int) -> tuple[np.ndarray, FerData]:
    fer = load_fer2013(csv_path)
    key = hashlib.sha1(f"{Path(csv_path).resolve()}|{len(fer.rows)}|{size}".encode()).hexdigest()
    cached = cache_dir() / f"fer_{key[:16]}.npy"
    if cached.is_file():
        x = np.load(cached)
    else:
        x = prepare_batch(list(fer.images), size=size)
        np.save(cached, x)
    return x, fer


def class_weights(labels: np.ndarray, n: int, power: float = 0.5) -> np.ndarray:
    """Mild inverse-frequency weights (freq^-power), mean 1 over samples."""
    counts = np.bincount(labels, minlength=n).astype(np.float64)
    w = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1)) ** power, 0.0)
    w = w / (w[labels].mean())
    return w.astype(np.float32)


def build_sets(cfg: TrainConfig) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Training and validation arrays: x and one masked target per head."""
    x_fer, fer = _fer_inputs(cfg.fer_csv, cfg.size)
    x_fer = to_channels(x_fer, cfg.channels)
    soft = np.eye(len(EMOTIONS), dtype=np.float32)[fer.labels]
    if cfg.ferplus_csv:
        votes = load_ferplus(cfg.ferplus_csv, int(fer.rows.max()) + 1)[fer.rows]
        has = votes.sum(1) > 0
        soft[has] = (1 - cfg.ferplus_weight) * soft[has] + cfg.ferplus_weight * votes[has]
        log.info("FER+ votes blended into %d of %d emotion targets", has.sum(), len(has))
    utk_all = load_utkface(cfg.utk_dir)
    race_w = class_weights(utk_all.race, len(ETHNICITIES))
    sets = {}
    for name, fer_split, utk_split_name in (("train", "Training", "train"),
                                             ("val", "PublicTest", "val")):
        keep = fer.usage == fer_split
        utk = load_utkface(cfg.utk_dir, split=utk_split_name)
        xf, sf = x_fer[keep], soft[keep]
        if cfg.limit:
            xf, sf = xf[: cfg.limit], sf[: cfg.limit]
            utk = utk.subset(np.arange(len(utk.paths)) < cfg.limit)
        xu = aligned_utk_faces(utk, cfg.size, cfg.channels)
        if name == "train" and cfg.utk_repeat > 1:  # UTKFace is 5x smaller than FER-2013
            rep = np.tile(np.arange(len(xu)), cfg.utk_repeat)
            xu, utk = xu[rep], utk.take(rep)
        nf, nu = len(xf), len(xu)
        zf, zu, of, ou = np.zeros(nf), np.zeros(nu), np.ones(nf), np.ones(nu)
        ew = race_w[utk.race] if name == "train" else ou
        y = {
            "emotion": _with_mask(np.concatenate([sf, np.zeros((nu, 7))]), np.r_[of, zu]),
            "age": _with_mask(np.r_[np.zeros(nf), utk.age][:, None], np.r_[zf, ou]),
            "gender": _with_mask(np.r_[np.zeros(nf), utk.gender][:, None], np.r_[zf, ou]),
            "ethnicity": _with_mask(
                np.concatenate([np.zeros((nf, 5)), np.eye(5)[utk.race]]), np.r_[zf, ew]),
        }
        x = np.concatenate([xf, xu]).astype(np.float32)
        if name == "train" and cfg.teacher:
            distill(y, teacher_outputs(cfg.teacher, x), nf, cfg.distill)
        sets[name] = (x, y)
        log.info("%s: %d FER-2013 rows + %d UTKFace chips", name, nf, nu)
    return sets


def teacher_outputs(manifest: str, x: np.ndarray, batch: int = 256) -> dict[str, np.ndarray]:
    """The teacher's four raw outputs on the (un-augmented) training inputs (FaceAnalyzer.predict).

    Cached next to the other preprocessed arrays: it is a pure function of the two.
    """
    from audience.inference.analyzer import FaceAnalyzer
    from audience.inference.config import AnalyzerConfig, AttributePolicy

    teacher = FaceAnalyzer(AnalyzerConfig(weights=manifest, batch_size=batch),
                           AttributePolicy.from_names("emotion,age,gender,ethnicity"))
    key = hashlib.sha1(
        f"{teacher.manifest['sha256']}|{len(x)}|{float(x[::997].sum()):.4f}".encode())
    cached = cache_dir() / f"teacher_{key.hexdigest()[:16]}.npz"
    if cached.is_file():
        return dict(np.load(cached))
    outs = teacher.predict(x)
    np.savez(cached, **outs)  # type: ignore[arg-type]  # numpy's stub: names as keywords
    log.info("teacher %s labelled %d training inputs", teacher.version, len(x))
    return outs


def distill(y: dict[str, np.ndarray], teacher: dict[str, np.ndarray], n_fer: int,
            share: float) -> None:
    """Blend the teacher's outputs into the training targets, in place (offline distillation).

    Labelled rows get ``(1 - share) * label + share * teacher``. Emotion on UTKFace chips and
    gender on FER-2013 faces have no label: there the teacher's output is the target, weighted
    ``share`` through the mask. Age and ethnicity stay on UTKFace only.
    """
    def mix(head: str, rows: slice, out: np.ndarray) -> None:
        y[head][rows, :-1] = (1 - share) * y[head][rows, :-1] + share * out[rows]

    from audience.inference.analyzer import expected_age

    fer, utk = slice(0, n_fer), slice(n_fer, None)
    t_age = expected_age(teacher["age"])[:, None]
    mix("emotion", fer, teacher["emotion"])
    y["emotion"][utk, :-1], y["emotion"][utk, -1] = teacher["emotion"][utk], share
    mix("gender", utk, teacher["gender"])
    y["gender"][fer, :-1], y["gender"][fer, -1] = teacher["gender"][fer], share
    mix("age", utk, t_age)
    mix("ethnicity", utk, teacher["ethnicity"])


def check_tasks(tasks: str | tuple[str, ...]) -> tuple[str, ...]:
    """The heads named (``"emotion,age"`` or a tuple) in the network's order, parsed as the
    analyzer's attribute policy parses them; a ValueError names an unknown or missing one."""
    from audience.inference.config import AttributePolicy

    try:
        chosen = AttributePolicy.from_names(tasks if isinstance(tasks, str) else list(tasks))
    except ValueError:
        chosen = AttributePolicy.from_names([])
    if not chosen.enabled():
        got = tasks if isinstance(tasks, str) else ", ".join(tasks)
        raise ValueError(f"tasks must be some of {', '.join(TASKS)} (got {got})")
    return tuple(chosen.enabled())


def val_score(logs: dict, tasks: tuple[str, ...] = TASKS) -> float:
    """One number to pick the best epoch: accuracies up, age error (in decades) down, over the
    heads that train (an untrained head's figures are noise)."""
    score = sum(logs.get(f"val_{t}_acc", 0) for t in ("emotion", "gender", "ethnicity")
                if t in tasks)
    return score - (logs.get("val_age_mae", 0) / 10 if "age" in tasks else 0)


def recalibrate_batchnorm(model, x: np.ndarray, batch_size: int = 256) -> None:
    """Re-estimate BatchNorm statistics for the final weights (forward passes only).

    The moving averages lag the weights while the learning rate is high, which makes the
    validation figures jump from epoch to epoch; a cumulative average over the un-augmented
    training set with the weights frozen removes that lag.
    """
    import keras
    import tensorflow as tf

    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in bns]
    for layer in bns:
        layer.moving_mean.assign(tf.zeros_like(layer.moving_mean))
        layer.moving_variance.assign(tf.ones_like(layer.moving_variance))
    order = np.random.default_rng(0).permutation(len(x))
    n_batches = len(x) // batch_size
    for i in range(n_batches):
        for layer in bns:  # momentum i/(i+1): the running mean of all batches so far
            layer.momentum = i / (i + 1)
        model(x[order[i * batch_size:(i + 1) * batch_size]], training=True)
    for layer, m in zip(bns, saved, strict=True):
        layer.momentum = m


def score_on_val(model, sets: dict, tasks: tuple[str, ...] = TASKS) -> float:
    """``val_score`` of ``model`` on the validation set of ``sets``."""
    x_val, y_val = sets["val"]
    logs = model.evaluate(x_val, y_val, batch_size=256, verbose=0, return_dict=True)
    return val_score({f"val_{k}": v for k, v in logs.items()}, tasks)


def load_config(run: Path) -> TrainConfig:
    """The configuration a run trained with (``config.json``, written by ``train``)."""
    raw: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                           for k, v in json.loads((Path(run) / "config.json").read_text()).items()}
    return TrainConfig(**raw)


def run_sets(cfg: TrainConfig) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Training and validation arrays for ``cfg``: the teachers recipe's or the plain ones."""
    if cfg.teachers:
        from audience.models.teachers.targets import build_teacher_sets

        return build_teacher_sets(cfg)
    return build_sets(cfg)


def finish(model_path: Path, sets: dict, out: Path, tasks: tuple[str, ...] = TASKS) -> Path:
    """Recalibrate BatchNorm on the best checkpoint; keep it only if validation improves."""
    import keras

    from audience.models.net import CUSTOM_OBJECTS

    model = keras.models.load_model(model_path, custom_objects=CUSTOM_OBJECTS)
    before = score_on_val(model, sets, tasks)
    recalibrate_batchnorm(model, sets["train"][0])
    after = score_on_val(model, sets, tasks)
    log.info("BatchNorm recalibration: validation score %.4f -> %.4f", before, after)
    if after <= before:
        return model_path
    path = out / "best-recalibrated.keras"
    model.save(path)
    return path


def cpu_has_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether the CPU runs bfloat16 natively. Measured: without it one --bf16 epoch took over
    7 minutes where float32 took 159 s (Xeon with AVX-512 but no avx512_bf16, 2 cores). Unknown
    (no /proc/cpuinfo) counts as yes: no warning on a guess."""
    flags = cpu_flags(cpuinfo)
    return flags is None or any(f in flags for f in ("avx512_bf16", "amx_bf16"))


def train(cfg: TrainConfig) -> Path:
    import keras
    import tensorflow as tf

    from audience.models.net import build_model, check_backbone, compile_model

    check_backbone(cfg.backbone)  # before minutes of data preparation, not after
    cfg.tasks = check_tasks(cfg.tasks)
    if cfg.teachers and not cfg.utk_dirs:
        cfg.utk_dirs = (cfg.utk_dir,)
    if cfg.teachers:  # a missing package says `make teachers` now, not after data preparation
        from audience.models.teachers import require_packages

        require_packages(expression=cfg.expression_share > 0)

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    keras.utils.set_random_seed(cfg.seed)
    if cfg.bf16:
        if not cpu_has_bf16():
            log.warning("--bf16: this CPU has no bfloat16 instructions (avx512_bf16 or AMX), so "
                        "TensorFlow emulates them and training runs several times slower; "
                        "drop --bf16 on this machine")
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    sets = run_sets(cfg)
    x_train, y_train = sets["train"]
    x_val, y_val = sets["val"]

    steps_aug = [
        keras.layers.RandomFlip("horizontal"),
        keras.layers.RandomRotation(0.03, fill_mode="nearest"),
        keras.layers.RandomTranslation(0.08, 0.08, fill_mode="nearest"),
        keras.layers.RandomZoom(0.1, fill_mode="nearest"),
    ]
    if cfg.erase:  # inputs are standardised, so 0 is the image mean: a patch hides an eye
        steps_aug.append(keras.layers.RandomErasing(
            (cfg.erase, cfg.erase), scale=(0.02, 0.2), fill_value=0.0, value_range=(-5, 5)))
    augment = keras.Sequential(steps_aug, name="augment")
    luma = tf.constant(LUMA_BGR)

    def augment_batch(x: tf.Tensor) -> tf.Tensor:
        x = tf.cast(augment(x, training=True), tf.float32)  # bfloat16 under --bf16
        n = tf.shape(x)[0]
        if cfg.lowres:  # one size per batch; area-downscaled, bilinear back: a small, soft face
            side = tf.random.uniform([], 12, 25, dtype=tf.int32)
            small = tf.image.resize(x, tf.stack([side, side]), method="area")
            up = tf.image.resize(small, [cfg.size, cfg.size], method="bilinear")
            x = tf.where(tf.random.uniform(tf.stack([n, 1, 1, 1])) < cfg.lowres, up, x)
        if cfg.colour and cfg.channels == 3:
            gain = tf.random.uniform(tf.stack([n, 1, 1, 3]), 0.8, 1.2)
            x = tf.where(tf.random.uniform(tf.stack([n, 1, 1, 1])) < cfg.colour, x * gain, x)
        if cfg.gray and cfg.channels == 3:  # so colour is a hint, never a requirement
            gray = tf.repeat(tf.reduce_sum(x * luma, -1, keepdims=True), 3, axis=-1)
            pick = tf.random.uniform(tf.stack([tf.shape(x)[0], 1, 1, 1])) < cfg.gray
            x = tf.where(pick, gray, x)
        return x

    train_ds = (tf.data.Dataset.from_tensor_slices((x_train, y_train))
                .shuffle(len(x_train), seed=cfg.seed, reshuffle_each_iteration=True)
                .batch(cfg.batch_size, drop_remainder=True)
                .map(lambda x, y: (augment_batch(x), y),
                     num_parallel_calls=tf.data.AUTOTUNE)
                .prefetch(tf.data.AUTOTUNE))
    val_ds = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(256)

    steps = len(x_train) // cfg.batch_size
    warmup = steps * cfg.warmup_epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=cfg.lr / 20, decay_steps=max(steps * cfg.epochs - warmup, 1),
        warmup_target=cfg.lr, warmup_steps=warmup, alpha=0.0)
    anneal = None
    if cfg.anneal_hours > 0:  # the learning rate is set per step by a callback instead
        from audience.models.schedule import CosineByProgress

        anneal = CosineByProgress(cfg.lr, steps * cfg.epochs, warmup,
                                  cfg.anneal_hours * 3600, out / "elapsed.json")
        schedule = cfg.lr / 20
    from_manifest = cfg.init_from is not None and cfg.init_from.endswith(".json")
    if from_manifest and cfg.init_from is not None:
        from audience.models.warmstart import (
            add_emotion_block,
            emotion_block_width,
            grows,
            keras_from_manifest,
            structure,
            widen,
        )

        calibration = x_train[np.random.default_rng(cfg.seed).permutation(len(x_train))[:4096]]
        model = keras_from_manifest(cfg.init_from, cfg.channels, calibration,
                                    cfg.dropout, size=cfg.size)
        shape = structure(model)
        asked = (tuple(cfg.widths), cfg.backbone, cfg.head)
        # The shipped network made wider: it starts out computing the shipped function.
        if asked[1:] == shape[1:] and asked[0] != shape[0] and grows(shape[0], asked[0]):
            model = widen(model, asked[0], cfg.dropout, seed=cfg.seed)
            shape = structure(model)
        if cfg.emotion_block and not emotion_block_width(model):
            model = add_emotion_block(model, cfg.emotion_block, cfg.dropout)
        if (own := emotion_block_width(model)) != cfg.emotion_block:
            log.warning("emotion block of width %d comes from %s (the command asked for %d)",
                        own, cfg.init_from, cfg.emotion_block)
            cfg.emotion_block = own
            (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        if shape != asked:  # the run's record (config.json, the manifest) says what trained
            log.warning("widths, backbone, head %s come from %s (the command asked for %s)",
                        shape, cfg.init_from, asked)
            cfg.widths, cfg.backbone, cfg.head = shape
            (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    else:
        model = build_model(cfg.size, cfg.widths, cfg.dropout, backbone=cfg.backbone,
                            channels=cfg.channels, head_type=cfg.head,
                            emotion_block=cfg.emotion_block)
    compile_model(model, schedule, cfg.weight_decay, cfg.optimizer, kd=cfg.teachers,
                  tasks=cfg.tasks)
    if cfg.init_from and not from_manifest:
        from audience.models.net import CUSTOM_OBJECTS

        source = keras.models.load_model(cfg.init_from, custom_objects=CUSTOM_OBJECTS)
        model.set_weights(source.get_weights())
    if cfg.init_from:
        log.info("weights initialised from %s (a new schedule starts)", cfg.init_from)
    log.info("model: %d parameters, %d steps per epoch", model.count_params(), steps)

    started = time.monotonic()

    class Score(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["val_score"] = val_score(logs, cfg.tasks)
            hours = (time.monotonic() - started) / 3600
            if hours > cfg.max_hours:
                log.warning("time budget of %.1f h reached after epoch %d: stopping",
                            cfg.max_hours, epoch + 1)
                self.model.stop_training = True
            if cfg.keep_epochs_from and epoch + 1 >= cfg.keep_epochs_from:  # experiments/soup.py
                (out / "epochs").mkdir(exist_ok=True)
                self.model.save_weights(out / "epochs" / f"epoch-{epoch + 1:03d}.weights.h5")

    model.fit(
        train_ds, validation_data=val_ds, epochs=cfg.epochs, verbose=2,
        callbacks=[
            *([anneal] if anneal else []),
            keras.callbacks.TerminateOnNaN(),  # a diverged run says so at once
            Score(),
            keras.callbacks.BackupAndRestore(str(out / "backup")),
            keras.callbacks.ModelCheckpoint(str(out / "best.keras"), monitor="val_score",
                                            mode="max", save_best_only=True),
            # Not in the first half: at a high learning rate the validation score jumps
            # around, and one lucky epoch must not end the run before the schedule decays.
            keras.callbacks.EarlyStopping(monitor="val_score", mode="max",
                                          patience=cfg.patience,
                                          start_from_epoch=cfg.epochs // 2),
            keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
        ],
    )
    log.info("training finished in %.1f min; best checkpoint %s",
             (time.monotonic() - started) / 60, out / "best.keras")
    return finish(out / "best.keras", sets, out, cfg.tasks)
