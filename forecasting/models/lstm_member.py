"""The LSTM member: a one-step-ahead Keras LSTM on windows of each series' own scaled history,
forecast recursively with one model call per day for all series at once.

This is the only module that imports TensorFlow. ``forecasting.models.member_class`` imports
it lazily, so XGBoost-only training, serving and the gateway never load TensorFlow.

Inputs of one sample (the target day t of series i, window W = ``lstm_window``):

    sequence (W, 3)   for days t-W .. t-1: target / scale_i (0 before the series began),
                      observed mask (1 if the series had begun), log1p(onpromotion)
    store, family     codes of the saved encoders, each through an Embedding layer
    day_of_week,      of day t, each through an Embedding layer
    month
    numeric (3,)      year - year_base, log1p(onpromotion of day t), scale_i

The target is the model's target scale (log1p(sales) by default). The network predicts
target / scale_i and a final Multiply by scale_i brings it back, so the loss is the plain
squared error on the target scale (RMSLE's scale when ``log_target`` is true).
``scale_i`` = the series' mean target over the training days, at least ``SCALE_FLOOR``; it is
saved per (store, family) in ``scalers.json`` next to the Keras model (``model.keras``).

Determinism: ``fit`` seeds Python, NumPy and TensorFlow (``keras.utils.set_random_seed``),
turns on ``tf.config.experimental.enable_op_determinism()``, hides any GPU and sets TensorFlow's
thread pools (intra-op = ``nthread``, 0 = all cores; inter-op = 1) before the runtime starts.
Same data, hyperparameters and thread count give the same model. See docs/models.md.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import ClassVar

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # keep TF's C++ info lines out of job logs

import keras
import tensorflow as tf

from forecasting.errors import DataValidationError
from forecasting.features import calendar_columns
from forecasting.history import ForecastInput
from forecasting.models.base import TrainingData, from_target, to_target

MODEL_FILE = "model.keras"
SCALERS_FILE = "scalers.json"
SCALE_FLOOR = 1.0
SEQUENCE_CHANNELS = ("target_scaled", "observed", "log1p_onpromotion")
NUMERIC = ("year_offset", "log1p_onpromotion", "scale")


def embedding_dim(cardinality: int) -> int:
    """Embedding width for a categorical: ceil(sqrt(levels)) between 2 and 8."""
    return int(min(8, max(2, math.ceil(math.sqrt(max(cardinality, 1))))))


class LSTMMember:
    """One-step LSTM on windows of the series' own history, fed back day by day."""

    kind: ClassVar[str] = "lstm"
    lookback: int = 28

    def __init__(self, model=None, scalers: dict | None = None, summary: dict | None = None):
        self.model = model
        self.scalers = scalers or {}
        self.summary = summary or {}
        if scalers:
            self.lookback = int(scalers["window"])
            self._scale_table = np.asarray(scalers["scale"], dtype=np.float64)
        self._step = None

    # ---- training -------------------------------------------------------------------------

    def fit(self, data: TrainingData, epochs: int | None = None) -> dict:
        """Train up to ``epochs`` (default ``lstm_epochs``), early-stopped on the validation
        days when ``data`` has any, keeping the best epoch's weights."""
        hp, panel, split = data.hp, data.panel, data.split
        epochs = int(hp.lstm_epochs if epochs is None else epochs)
        started = time.perf_counter()
        configure_runtime(hp.nthread, hp.seed)
        window = int(hp.lstm_window)
        self.lookback = window
        data.progress("lstm_windows", 0.2)

        target = to_target(panel.sales, hp.log_target)
        series = panel.series_index
        pos = panel.position
        scale = _series_scale(target, series, panel.day, panel.n_series, split.train_end)
        table = np.full((data.n_stores, data.n_families), float(np.median(scale)) if len(scale)
                        else SCALE_FLOOR)
        table[data.store_code, data.family_code] = scale
        first_year = int(calendar_columns(np.array([panel.origin]))["year"][0])
        self.scalers = {
            "window": window, "log_target": bool(hp.log_target), "scale_floor": SCALE_FLOOR,
            "year_base": first_year, "n_stores": int(data.n_stores),
            "n_families": int(data.n_families), "sequence_channels": list(SEQUENCE_CHANNELS),
            "numeric": list(NUMERIC), "scale": table.tolist(),
        }
        self._scale_table = table

        rng = np.random.default_rng(hp.seed)
        candidates = (panel.day <= split.train_end) & (pos >= 1) & data.keep
        train_rows = _even_sample(np.flatnonzero(candidates), hp.lstm_max_samples, rng)
        train_rows = train_rows[rng.permutation(len(train_rows))]   # batches mix series/days
        valid_mask = (panel.day > split.train_end) & (panel.day <= split.valid_end) & (pos >= 1)
        valid_rows = _even_sample(np.flatnonzero(valid_mask), hp.lstm_max_samples, rng)
        if len(train_rows) == 0:
            raise DataValidationError("sales", "no training day has a day of history before "
                                               "it: the LSTM needs at least two days per series")
        x_train = _windows(train_rows, window, target, pos, series, panel, scale,
                           data.store_code, data.family_code, first_year)
        y_train = target[train_rows].astype(np.float32)[:, None]
        w_train = data.weight[train_rows].astype(np.float32)
        x_valid = _windows(valid_rows, window, target, pos, series, panel, scale,
                           data.store_code, data.family_code, first_year)
        y_valid = target[valid_rows].astype(np.float32)[:, None]
        data.log(f"lstm: windows train={len(train_rows)} (of {int(candidates.sum())} "
                 f"candidates) validation={len(valid_rows)} window={window}")

        self.model = build_model(window, hp.lstm_units, data.n_stores, data.n_families,
                                 hp.lstm_learning_rate)
        data.progress("lstm_fit", 0.25)
        stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=hp.lstm_patience,
                                                restore_best_weights=True)
        batch = int(hp.lstm_batch_size)
        # Samples are in a seeded random order already; each epoch reshuffles the order of the
        # batches (a sample-level shuffle buffer would hold another copy of every window).
        n_batches = -(-len(train_rows) // batch)
        train_ds = (tf.data.Dataset.from_tensor_slices((x_train, y_train, w_train)).batch(batch)
                    .shuffle(n_batches, seed=hp.seed, reshuffle_each_iteration=True).prefetch(2))
        valid_ds = (tf.data.Dataset.from_tensor_slices((x_valid, y_valid)).batch(batch)
                    if len(valid_rows) else None)
        callbacks = [_Progress(data, epochs)] + ([stopper] if len(valid_rows) else [])
        history = self.model.fit(train_ds, epochs=epochs, validation_data=valid_ds,
                                 shuffle=False, verbose=0, callbacks=callbacks)
        del train_ds, valid_ds, x_train, x_valid
        losses = history.history
        self.summary = {
            "epochs_run": len(losses["loss"]),
            "train_samples": len(train_rows), "validation_samples": len(valid_rows),
            "candidate_samples": int(candidates.sum()), "window": window,
            "units": int(hp.lstm_units), "parameters": int(self.model.count_params()),
        }
        val = losses.get("val_loss")
        if val:
            best = int(np.argmin(val))
            self.summary.update({
                "best_epoch": best + 1, "best_validation_loss": float(val[best]),
                "validation_rmse": float(math.sqrt(max(val[best], 0.0))),
                "train_loss": float(losses["loss"][best])})
            data.log(f"lstm: best_epoch={best + 1} "
                     f"validation.rmse={self.summary['validation_rmse']:.6f} epochs_run={len(val)}")
        else:  # nothing held out (the refit): every epoch counts, the last weights stay
            self.summary["train_loss"] = float(losses["loss"][-1])
            data.log(f"lstm: refit epochs={len(losses['loss'])} "
                     f"train_loss={self.summary['train_loss']:.6f}")
        self.summary["fit_seconds"] = round(time.perf_counter() - started, 3)
        self._step = None
        return dict(self.summary)

    def refit(self, data: TrainingData) -> tuple[LSTMMember, dict]:
        """A new member fit on every training day of ``data`` for the epochs this one's
        validation chose (no early stopping: nothing is held out)."""
        member = LSTMMember()
        epochs = int(self.summary.get("best_epoch") or self.summary["epochs_run"])
        return member, member.fit(data, epochs=epochs)

    # ---- forecasting ----------------------------------------------------------------------

    def forecast(self, inp: ForecastInput) -> np.ndarray:
        n, horizon, window = inp.n_series, inp.horizon, self.lookback
        if n == 0 or horizon == 0:
            return np.zeros((n, horizon))
        log_target = bool(self.scalers["log_target"])
        buf = np.full((n, window + horizon), np.nan, dtype=np.float64)
        tail = inp.sales[:, -window:]
        buf[:, window - tail.shape[1]:window] = to_target(tail, log_target)
        promo = np.zeros((n, window + horizon), dtype=np.float32)
        ptail = inp.promo_history[:, -window:]
        promo[:, window - ptail.shape[1]:window] = ptail
        promo[:, window:] = inp.promo
        scale = self._scale_table[inp.store_code, inp.family_code]
        step = self._step_function()
        for d in range(horizon):
            inputs = model_inputs(buf[:, d:d + window], promo[:, d:d + window],
                                  promo[:, window + d], np.repeat(inp.dates[d], n), scale,
                                  inp.store_code, inp.family_code,
                                  int(self.scalers["year_base"]))
            buf[:, window + d] = step(inputs).numpy()[:, 0]
        return from_target(buf[:, window:], log_target)

    def _step_function(self):
        """The model as one traced ``tf.function`` (traced once, then safe to call from many
        threads); one call forecasts one day for every series."""
        if self._step is None:
            window = self.lookback
            spec = {
                "sequence": tf.TensorSpec([None, window, len(SEQUENCE_CHANNELS)], tf.float32),
                "store": tf.TensorSpec([None, 1], tf.int32),
                "family": tf.TensorSpec([None, 1], tf.int32),
                "day_of_week": tf.TensorSpec([None, 1], tf.int32),
                "month": tf.TensorSpec([None, 1], tf.int32),
                "numeric": tf.TensorSpec([None, len(NUMERIC)], tf.float32),
                "scale": tf.TensorSpec([None, 1], tf.float32),
            }
            model = self.model
            step = tf.function(lambda inputs: model(inputs, training=False),
                               input_signature=[spec])
            step.get_concrete_function()       # trace now, not on the first request
            self._step = step
        return self._step

    # ---- persistence ----------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory / MODEL_FILE)
        (directory / SCALERS_FILE).write_text(json.dumps(self.scalers))
        (directory / "member.json").write_text(json.dumps({
            "kind": self.kind, "window": self.lookback, "model_file": MODEL_FILE,
            "scalers_file": SCALERS_FILE, "log_target": bool(self.scalers["log_target"]),
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "summary": self.summary}, indent=2))

    @classmethod
    def load(cls, directory: Path, meta: dict) -> LSTMMember:
        scalers = json.loads((directory / meta.get("scalers_file", SCALERS_FILE)).read_text())
        model = keras.models.load_model(directory / meta.get("model_file", MODEL_FILE),
                                        compile=False)
        member = cls(model, scalers, meta.get("summary"))
        member._step_function()
        return member


# ---- model and runtime ----------------------------------------------------------------------

def configure_runtime(nthread: int, seed: int) -> None:
    """CPU only, fixed thread pools, op determinism and seeds (before the first TF op).

    Thread pools can only be set before TensorFlow's runtime starts; in a process that has
    already run TF ops (a second training in one test process) the earlier setting stays.
    """
    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(nthread))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    try:
        tf.config.set_visible_devices([], "GPU")
    except (RuntimeError, ValueError):
        pass
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(int(seed))


def build_model(window: int, units: int, n_stores: int, n_families: int,
                learning_rate: float):
    """The Keras functional model (see the module docstring for its inputs)."""
    layers = keras.layers
    sequence = keras.Input((window, len(SEQUENCE_CHANNELS)), name="sequence")
    store = keras.Input((1,), dtype="int32", name="store")
    family = keras.Input((1,), dtype="int32", name="family")
    dow = keras.Input((1,), dtype="int32", name="day_of_week")
    month = keras.Input((1,), dtype="int32", name="month")
    numeric = keras.Input((len(NUMERIC),), name="numeric")
    scale = keras.Input((1,), name="scale")

    def embed(inp, levels, name):
        emb = layers.Embedding(levels, embedding_dim(levels), name=f"{name}_embedding")(inp)
        return layers.Flatten(name=f"{name}_flat")(emb)

    h = layers.LSTM(units, name="lstm")(sequence)
    z = layers.Concatenate(name="concat")([
        h, embed(store, max(n_stores, 1), "store"), embed(family, max(n_families, 1), "family"),
        embed(dow, 7, "day_of_week"), embed(month, 12, "month"), numeric])
    z = layers.Dense(units, activation="relu", name="dense")(z)
    # Starts exactly at the series' mean level (relative = 1) and learns departures from it.
    relative = layers.Dense(1, kernel_initializer="zeros",
                            bias_initializer=keras.initializers.Constant(1.0),
                            name="relative")(z)
    out = layers.Multiply(name="target")([relative, scale])
    model = keras.Model([sequence, store, family, dow, month, numeric, scale], out,
                        name="lstm_member")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0), loss="mse")
    return model


class _Progress(keras.callbacks.Callback):
    """``progress`` and log lines per epoch (fit spans 25% to 85%)."""

    def __init__(self, data: TrainingData, epochs: int):
        super().__init__()
        self.data, self.epochs = data, max(int(epochs), 1)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.data.progress("lstm_fit", 0.25 + 0.6 * (epoch + 1) / self.epochs)
        parts = " ".join(f"{k}={float(v):.6f}" for k, v in sorted(logs.items())
                         if k in ("loss", "val_loss"))
        self.data.log(f"lstm: epoch={epoch + 1} {parts}")


# ---- training windows (vectorised) ----------------------------------------------------------

def _series_scale(target, series, day, n_series, train_end) -> np.ndarray:
    """Per series: mean target over its training days (the median of those if it has none),
    at least ``SCALE_FLOOR``."""
    train = day <= train_end
    total = np.bincount(series[train], weights=target[train], minlength=n_series)
    count = np.bincount(series[train], minlength=n_series)
    mean = np.divide(total, count, out=np.full(n_series, np.nan), where=count > 0)
    fallback = float(np.nanmedian(mean)) if np.isfinite(mean).any() else SCALE_FLOOR
    mean = np.where(np.isfinite(mean), mean, fallback)
    return np.maximum(mean, SCALE_FLOOR)


def _even_sample(rows: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """All rows, or ``cap`` of them drawn uniformly without replacement (seeded), in order."""
    if len(rows) <= cap:
        return rows
    return np.sort(rng.choice(rows, size=int(cap), replace=False))


def _windows(rows, window, target, pos, series, panel, scale, store_code, family_code,
             year_base) -> dict:
    """Model inputs for target rows ``rows`` of the panel: one fancy index, no loop."""
    offs = np.arange(-window, 0, dtype=np.int64)
    observed = (pos[rows][:, None] + offs[None, :]) >= 0
    idx = np.where(observed, rows[:, None] + offs[None, :], 0)
    history = np.where(observed, target[idx], np.nan)
    promo = np.where(observed, panel.onpromotion[idx], 0)
    del idx, observed
    s = series[rows]
    return model_inputs(history, promo, panel.onpromotion[rows],
                        panel.dates(panel.day[rows].astype(np.int64)), scale[s],
                        store_code[s], family_code[s], year_base)


def model_inputs(history, promo_window, promo_today, dates, scale, store_code, family_code,
                 year_base: int) -> dict:
    """The network's inputs for n samples, shared by training windows and forecast steps so
    the two can never encode a sample differently.

    ``history`` (n, W) is the target of the W days before each sample (NaN before the series
    began), ``promo_window`` (n, W) and ``promo_today`` (n,) raw promotion counts, ``dates``
    (n,) the target days, ``scale``/``store_code``/``family_code`` (n,) per sample.
    """
    observed = np.isfinite(history)
    sc = np.asarray(scale, dtype=np.float32)
    seq = np.empty((*history.shape, len(SEQUENCE_CHANNELS)), dtype=np.float32)
    seq[:, :, 0] = np.where(observed, history, 0.0) / sc[:, None]
    seq[:, :, 1] = observed
    seq[:, :, 2] = np.log1p(np.maximum(promo_window, 0))
    calendar = calendar_columns(np.asarray(dates))
    dow, month, year = calendar["day_of_week"], calendar["month"], calendar["year"]
    numeric = np.stack([year - year_base, np.log1p(np.maximum(promo_today, 0)), sc], axis=-1)
    return {"sequence": seq,
            "store": np.asarray(store_code, dtype=np.int32)[:, None],
            "family": np.asarray(family_code, dtype=np.int32)[:, None],
            "day_of_week": dow.astype(np.int32)[:, None],
            "month": (month.astype(np.int32) - 1)[:, None],
            "numeric": numeric.astype(np.float32),
            "scale": sc[:, None]}
