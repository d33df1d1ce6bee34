"""The XGBoost member: hist trees on the lag features, early stopping on validation, and a
recursive forecast that makes one ``inplace_predict`` call per day for all series."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import xgboost as xgb

from forecasting import distributed, features
from forecasting.history import ForecastInput
from forecasting.models.base import TrainingData, to_target
from forecasting.models.leaf_refresh import refresh_leaves
from forecasting.models.recursion import recursive_forecast

MODEL_FILE = "model.ubj"
CHUNK_ROWS = 1 << 18      # rows featurized at a time while building a matrix
# What an unknown lag or window (NaN in ``features``: before a series' first day) becomes in
# this member's forecasts. Training leaves such rows out (``fit``), so the trees never saw a
# value below 0 there and read -1 as 0 sales: a series younger than the lookback is forecast
# as if it sold nothing before its first day. No NaN reaches XGBoost, which then builds its
# histograms with its dense kernels (one NaN in a matrix made every round 1.5x slower at 15M
# rows, docs/scaling.md). Models saved before it (no ``unknown_value`` in member.json) keep
# NaN as missing, as their trees were grown.
UNKNOWN_VALUE = -1.0


class XGBoostMember:
    """Gradient-boosted trees on a ``features.FeatureSet`` (``features.DEFAULT`` when fit)."""

    kind: ClassVar[str] = "xgboost"

    def __init__(self, booster: xgb.Booster | None = None, log_target: bool = True,
                 best_iteration: int | None = None, unknown_value: float | None = UNKNOWN_VALUE,
                 feature_set: features.FeatureSet = features.DEFAULT, objective: str = "rmsle"):
        self.booster = booster
        self.log_target = log_target
        self.best_iteration = best_iteration
        self.unknown_value = unknown_value   # None: NaN stays NaN (models saved before it)
        self.features = feature_set
        self.objective = objective           # rmsle: output on the target scale; tweedie: units

    @property
    def lookback(self) -> int:
        return self.features.lookback

    def fit(self, data: TrainingData) -> dict:
        """Boost up to ``num_round`` rounds, early-stopped on the validation days.

        Rows whose lags or windows reach before their series' first day are left out (as
        mlforecast's ``dropna`` does): cleaning starts every series on its first sale, so those
        rows are a biased sample (a series' first day always sells), and kept in with
        ``UNKNOWN_VALUE`` they taught the trees to forecast sales for series with no recent
        sales (docs/models.md, "Unknown lags")."""
        hp, panel = data.hp, data.panel
        # Tweedie learns units from units: its lags and windows are sales, not log1p(sales)
        # (Online Retail II backtest, WAPE 0.921 -> 0.881 at variance power 1.3).
        self.log_target = hp.log_target and hp.objective != "tweedie"
        self.unknown_value = UNKNOWN_VALUE
        self.features, self.objective = features.DEFAULT, hp.objective
        target = _target(panel.sales, self.log_target)
        train, valid, _ = data.split.masks(panel.day)
        known = panel.rows_with_history(self.features.lookback)
        data.progress("featurize", 0.15)
        dtrain = _matrix(data, target, train & data.keep & known, self.features,
                         max_bin=hp.max_bin, unknown_value=self.unknown_value,
                         objective=self.objective)
        dvalid = _matrix(data, target, valid & known, self.features, ref=dtrain,
                         max_bin=hp.max_bin, unknown_value=self.unknown_value,
                         objective=self.objective)   # XGBoost refuses a ref of other bins
        data.progress("fit", 0.25)
        history: dict = {}
        self.booster = xgb.train(
            _params(hp), dtrain, num_boost_round=hp.num_round, evals=[(dvalid, "validation")],
            early_stopping_rounds=hp.early_stopping_rounds, evals_result=history,
            verbose_eval=False, callbacks=[_Progress(data, hp.num_round)])
        self.best_iteration = int(self.booster.best_iteration)
        if hp.refit:   # the refit bins all days with these cuts (no second quantile sketch)
            self._cuts, self._fit_end = dtrain, data.split.train_end
        curve = history["validation"][_eval_metric(hp)]
        data.log(f"xgboost: best_iteration={self.best_iteration} objective={self.objective} "
                 f"validation.{_eval_metric(hp)}={curve[self.best_iteration]:.6f} "
                 f"rounds_run={len(curve)}")
        return {"best_iteration": self.best_iteration, "rounds_run": len(curve),
                "objective": self.objective, "validation_metric": _eval_metric(hp),
                "validation_score": float(curve[self.best_iteration]),
                "train_rows": distributed.total(dtrain.num_row()),
                "validation_rows": distributed.total(dvalid.num_row())}

    def refit(self, data: TrainingData) -> tuple[XGBoostMember, dict]:
        """A new member that has also seen the days after this fit's train end (``data.split``
        is ``everything()``), by ``refit_method`` (docs/models.md):

        - ``full``: ``best_iteration + 1`` rounds regrown on every day;
        - ``refresh``: the same trees, their leaf values recomputed on every day;
        - ``continue``: ``refit_rounds`` more trees boosted on the days after the train end.

        ``full`` and ``continue`` bin the rows with this fit's quantile cuts, so no day is
        sketched twice; ``refresh`` reads the days after the fit and a sample of its own rows,
        at most ``refresh_rows`` rows (``forecasting.models.leaf_refresh``)."""
        hp, panel = data.hp, data.panel
        method = hp.refit_method
        target = _target(panel.sales, self.log_target)
        cuts, self._cuts = getattr(self, "_cuts", None), None
        rounds = self.best_iteration + 1
        first = self.booster[:rounds]
        data.progress("featurize", 0.15)
        rows = data.keep & panel.rows_with_history(self.features.lookback)
        unseen = panel.day > getattr(self, "_fit_end", panel.last_day - 2 * hp.horizon)
        if method == "continue":
            rows = rows & unseen
        if method == "refresh":    # a float matrix of the (sampled) rows: no bins needed
            del cuts
            rows, weight = refresh_sample(data, rows, unseen)
            chunks = FeatureChunks(data, target, rows, self.features, weight, self.unknown_value,
                                   self.objective)
            data.progress("fit", 0.25)
            booster = refresh_leaves(
                first, chunks, ~unseen[rows], _params(hp), chunks.dmatrix,
                progress=lambda done, total: _report_fit(data, done, total),
                reduce=distributed.allreduce_sum if distributed.active() else None)
            train_rows = distributed.total(chunks.n_rows)
        else:
            matrix = _matrix(data, target, rows, self.features, ref=cuts, max_bin=hp.max_bin,
                             unknown_value=self.unknown_value, objective=self.objective)
            del cuts, rows, target   # the first fit's bins go as soon as the new ones exist
            data.progress("fit", 0.25)
            if method == "continue":
                booster = xgb.train(_params(hp), matrix, num_boost_round=hp.refit_rounds,
                                    xgb_model=first, verbose_eval=False)
                rounds += hp.refit_rounds
            else:
                booster = xgb.train(_params(hp), matrix, num_boost_round=rounds,
                                    verbose_eval=False, callbacks=[_Progress(data, rounds)])
            train_rows = distributed.total(matrix.num_row())
        member = XGBoostMember(booster, self.log_target, rounds - 1, self.unknown_value,
                               self.features, self.objective)
        data.log(f"xgboost: refit method={method} rounds={rounds} train_rows={train_rows}")
        return member, {"method": method, "rounds": rounds, "train_rows": train_rows}

    def predict_features(self, matrix: np.ndarray, copy: bool = True) -> np.ndarray:
        """The forecast on the target scale (that of the lags: log1p(sales) by default) for
        ready feature rows in ``self.features`` order; NaN (an unknown lag or window) is read
        as the member's ``unknown_value`` (without ``copy``, set in ``matrix`` itself). A
        Tweedie booster answers units, which this turns to the target scale, so the recursion
        feeds every objective alike."""
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        if self.unknown_value is not None:
            matrix = fill_unknown(matrix, self.unknown_value, self.features.n_history, copy)
        out = self.booster.inplace_predict(
            matrix, iteration_range=(0, self.best_iteration + 1), validate_features=False)
        return to_target(out, self.log_target) if self.objective == "tweedie" else out

    def forecast(self, inp: ForecastInput, threads: int = 1, pool=None) -> np.ndarray:
        """(n_series, horizon) sales, one ``inplace_predict`` a day for all series
        (``forecasting.models.recursion``; ``threads`` groups of series on ``pool``)."""
        return recursive_forecast(self, inp, threads, pool)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(directory / MODEL_FILE)
        (directory / "member.json").write_text(json.dumps({
            "kind": self.kind, "best_iteration": self.best_iteration,
            "log_target": self.log_target, "unknown_value": self.unknown_value,
            "objective": self.objective, "features": list(self.features.names)}, indent=2))

    @classmethod
    def load(cls, directory: Path, meta: dict) -> XGBoostMember:
        booster = xgb.Booster()
        booster.load_model(directory / MODEL_FILE)
        booster.set_param({"nthread": 1})
        unknown = meta.get("unknown_value")
        names = meta.get("features")
        return cls(booster, bool(meta["log_target"]), int(meta["best_iteration"]),
                   None if unknown is None else float(unknown),
                   features.FeatureSet(tuple(names)) if names else features.LEGACY,
                   str(meta.get("objective", "rmsle")))


def fill_unknown(matrix: np.ndarray, value: float, n_history: int,
                 copy: bool = True) -> np.ndarray:
    """``matrix`` with the NaN of its first ``n_history`` columns (the lags and windows, the
    only features that can be unknown) set to ``value``. With ``copy`` (a caller's rows) a copy
    is made only when there is something to set; without, ``matrix`` is filled in place."""
    unknown = np.isnan(matrix[:, :n_history])
    if not unknown.any():
        return matrix
    if copy:
        matrix = matrix.copy()
    matrix[:, :n_history][unknown] = value
    return matrix


def refresh_sample(data: TrainingData, rows: np.ndarray, latest: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """The rows ``refit_method=refresh`` reads, and their weights (None: the usual ones).

    Every row of the ``latest`` days (those the evaluated fit has not seen, which the refit
    exists for) and a seeded uniform sample of the earlier rows (the fit's own), each weighing
    ``1/rate``, so that at most ``refresh_rows`` rows are read. The earlier rows enter the
    refresh through the sums the fit stored in its trees; the sample only measures how their
    gradients move as the leaves change (``leaf_refresh``), so it can be small."""
    total = distributed.total   # the rows of every host (the identity on one)
    cap, n = data.hp.refresh_rows, total(int(np.count_nonzero(rows)))
    if cap == 0 or n <= cap:
        return rows, None
    recent = rows & latest
    older = rows & ~latest
    rate = max(cap - total(int(np.count_nonzero(recent))), 0) / max(
        total(int(np.count_nonzero(older))), 1)
    picked = older & (np.random.default_rng(data.hp.seed).random(len(rows)) < rate)
    usual = _usual_weight(data)
    weight = (usual.astype(np.float32) if usual is not None
              else np.ones(len(rows), dtype=np.float32))
    if rate > 0:
        weight[picked] /= np.float32(rate)
    data.log(f"xgboost: refresh reads {int(np.count_nonzero(recent))} latest rows and "
             f"{int(np.count_nonzero(picked))} of {int(np.count_nonzero(older))} earlier ones "
             f"(rate {rate:.4f}, weight {1 / rate if rate else 0:.3f})")
    return recent | picked, weight


def _usual_weight(data: TrainingData) -> np.ndarray | None:
    """The rows' sample weights, or None when no zero rows were down-sampled (all 1)."""
    return data.weight if data.hp.zero_sample_rate < 1.0 else None


def _target(sales: np.ndarray, log_target: bool) -> np.ndarray:
    """The learning target as float32 (XGBoost keeps labels as float32 anyway)."""
    return to_target(sales, log_target).astype(np.float32)


def _eval_metric(hp) -> str:
    """The early-stopping metric: RMSE of the label for rmsle, Tweedie's negative
    log-likelihood for tweedie."""
    if hp.objective == "tweedie":
        return f"tweedie-nloglik@{hp.tweedie_variance_power:g}"
    return "rmse"


def _params(hp) -> dict:
    tweedie = hp.objective == "tweedie"
    params = {
        "objective": "reg:tweedie" if tweedie else "reg:squarederror",
        "tweedie_variance_power": hp.tweedie_variance_power if tweedie else None,
        "tree_method": "hist", "eval_metric": _eval_metric(hp),
        "eta": hp.eta, "max_depth": hp.max_depth, "min_child_weight": hp.min_child_weight,
        "subsample": hp.subsample, "colsample_bytree": hp.colsample_bytree,
        "lambda": getattr(hp, "lambda"), "alpha": hp.alpha, "max_bin": hp.max_bin,
        "max_cat_to_onehot": hp.max_cat_to_onehot, "seed": hp.seed,
        "nthread": hp.nthread or None,
    }
    return {k: v for k, v in params.items() if v is not None}


def _matrix(data: TrainingData, target: np.ndarray, rows: np.ndarray,
            feature_set: features.FeatureSet, ref: xgb.QuantileDMatrix | None = None,
            max_bin: int | None = None, unknown_value: float | None = UNKNOWN_VALUE,
            objective: str = "rmsle") -> xgb.QuantileDMatrix:
    """A ``QuantileDMatrix`` of the panel rows in ``rows``, fed a few series at a time, so the
    feature table of all rows is never held in memory (only its 1-byte bins). With ``ref``
    the bins reuse that matrix's quantile cuts and the sketching pass is skipped."""
    chunks = _PanelChunks(FeatureChunks(data, target, rows, feature_set,
                                        unknown_value=unknown_value, objective=objective))
    try:
        matrix = xgb.QuantileDMatrix(chunks, ref=ref, max_bin=max_bin, enable_categorical=True)
    except Exception:
        if chunks.interrupted is None:
            raise
    if chunks.interrupted is not None:
        raise chunks.interrupted
    return matrix


class FeatureChunks:
    """The feature rows (``FeatureSet.training_matrix``) of a panel's rows in ``rows``, whole
    series at a time, about ``CHUNK_ROWS`` rows per chunk, as ``(X, label, weight)``; so the
    feature table of all rows is never held at once. Unknown lags and windows are
    ``unknown_value`` (None: NaN). The label is the target (objective rmsle) or the sales in
    units (tweedie). Sample weights are passed only when zero rows were down-sampled, or given
    (otherwise they are all 1 and cost memory and time for nothing)."""

    def __init__(self, data: TrainingData, target: np.ndarray, rows: np.ndarray,
                 feature_set: features.FeatureSet, weight: np.ndarray | None = None,
                 unknown_value: float | None = UNKNOWN_VALUE, objective: str = "rmsle"):
        self.data, self.target, self.rows = data, target, rows
        self.units = objective == "tweedie"
        self.features = feature_set
        self.unknown_value = unknown_value
        offsets = data.panel.offsets
        cut = np.searchsorted(offsets, np.arange(CHUNK_ROWS, offsets[-1], CHUNK_ROWS))
        self.bounds = np.unique(np.concatenate([[0], cut, [len(offsets) - 1]]))
        self.weight = weight if weight is not None else _usual_weight(data)
        self.n_rows = int(np.count_nonzero(rows))

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        d, i0, i1 = self.data, self.bounds[i], self.bounds[i + 1]
        panel = d.panel
        a, b = panel.offsets[i0], panel.offsets[i1]
        take = np.flatnonzero(self.rows[a:b])     # only these rows are featurized
        X = self.features.training_matrix(
            self.target[a:b], panel.offsets[i0:i1 + 1] - a, panel.dates(panel.day[a:b]),
            panel.onpromotion[a:b], d.store_code[i0:i1], d.family_code[i0:i1], at=take)
        if self.unknown_value is not None:
            fill_unknown(X, self.unknown_value, self.features.n_history, copy=False)
        weight = self.weight[a:b][take] if self.weight is not None else None
        label = (panel.sales[a:b][take].astype(np.float32) if self.units
                 else self.target[a:b][take])
        return X, label, weight

    def dmatrix(self, X: np.ndarray) -> xgb.DMatrix:
        """A chunk's features as the model saw them (names, and categorical types)."""
        return xgb.DMatrix(X, feature_names=list(self.features.names),
                           feature_types=list(self.features.types), enable_categorical=True)


class _PanelChunks(xgb.DataIter):
    """``FeatureChunks`` fed to a ``QuantileDMatrix``.

    ``next`` runs as a callback from XGBoost's C code, where an exception that is not an
    ``Exception`` (a SIGTERM handler's ``Stopped``, ``KeyboardInterrupt``) would be printed and
    ignored, and training would go on: it is kept in ``interrupted`` and raised by ``_matrix``."""

    def __init__(self, chunks: FeatureChunks):
        super().__init__(release_data=True)
        self.chunks = chunks
        self.chunk = 0
        self.interrupted: BaseException | None = None

    def next(self, input_data) -> bool:
        if self.interrupted is not None or self.chunk >= len(self.chunks):
            return False
        try:
            X, label, weight = self.chunks[self.chunk]
            self.chunk += 1
            input_data(data=X, label=label, weight=weight,
                       feature_names=list(self.chunks.features.names),
                       feature_types=list(self.chunks.features.types))
            return True
        except Exception:
            raise                       # XGBoost defers it and raises it after the pass
        except BaseException as exc:    # noqa: BLE001 - kept for _matrix to raise
            self.interrupted = exc
            return False

    def reset(self) -> None:
        self.chunk = 0


class _Progress(xgb.callback.TrainingCallback):
    """Reports boosting progress as ``progress`` lines (fit spans 25% to 80%)."""

    def __init__(self, data: TrainingData, rounds: int):
        self.data, self.rounds = data, max(rounds, 1)
        self.every = max(1, rounds // 20)

    def after_iteration(self, model, epoch: int, evals_log) -> bool:
        if epoch % self.every == 0:
            _report_fit(self.data, epoch + 1, self.rounds)
        return False


def _report_fit(data: TrainingData, done: int, total: int) -> None:
    """A ``fit`` progress line for ``done`` of ``total`` trees (the fit spans 25% to 80%)."""
    data.progress("fit", 0.25 + 0.55 * done / max(total, 1))
