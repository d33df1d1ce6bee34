"""The promotion gate (champion/challenger): does a newly trained model go live?

Policies: ``always``, ``never``, and ``if_better`` (the default): the live model (the champion)
is scored on the new model's (the challenger's) test window — the same days, the same metric
(the challenger's ``promote_metric`` hyperparameter, one of ``METRICS``, default rmsle; lower is
better) — and the challenger goes live only if its score is at least as good. The champion's
score on that window comes from, in order:

1. its own evaluation.json, when its test window is the same days (a retrain on the same data):
   both scores are then of fits that had not seen those days;
2. a fresh forecast of those days by the champion's served members from the new data's history
   up to the day before the window, when the champion was fit on days before the window only
   (newer data): scored on the series the champion knows;
3. otherwise (the champion's fit has seen some of the window's days, so its score would flatter
   it) there is no fair comparison: the challenger goes live and the decision says why.

With no live model the challenger goes live.

``shadow`` registers the challenger beside the live model instead: it is served in shadow and
promoted or rejected later on live actuals (the gateway's shadow trial, whose numbers the
decision then carries in ``trial``). Here it only records the test-window score; with no live
model the challenger goes live.

**Never backwards.** A challenger whose history ends before the live model's (the live model
was moved forward by actuals, or trained on newer data) would start forecasts again on days
already observed. Under ``if_better`` it does not go live, whatever its score, and the reason
names both end dates; it stays registered, and ``SetLiveModel`` (``forecast promote``) can
still make it live. Under ``always`` it goes live and the reason says so.

``decide`` is pure; ``champion_score`` reads the artifacts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

POLICIES = ("if_better", "always", "never", "shadow")
DEFAULT_POLICY = "if_better"
METRIC = "rmsle"
#: Metrics the gate can compare on (``forecasting.metrics``; lower is better for each).
METRICS = ("rmsle", "rmse", "mae", "wape", "mase")


@dataclass(frozen=True)
class Decision:
    """What was decided and on which numbers (stored with the job and the version)."""

    policy: str
    promoted: bool
    metric: str = METRIC
    challenger_score: float = math.nan
    champion_score: float = math.nan
    champion_version: str = ""
    window_start: str = ""
    window_end: str = ""
    reason: str = ""
    trial: dict | None = None
    """Under ``shadow``: the trial on live actuals (state, rule, days, cells, both scores)."""

    def to_dict(self) -> dict:
        out = asdict(self)
        for key in ("challenger_score", "champion_score"):   # JSON has no NaN
            out[key] = None if math.isnan(out[key]) else out[key]
        return out

    @classmethod
    def from_dict(cls, payload: dict) -> Decision:
        values = dict(payload)
        for key in ("challenger_score", "champion_score"):
            values[key] = math.nan if values.get(key) is None else float(values[key])
        return cls(**values)


@dataclass(frozen=True)
class ChampionScore:
    """The live model's score on the challenger's window, or why there is none."""

    version: str
    score: float                 # NaN when it could not be scored fairly
    how: str                     # how the score was obtained, or why it was not
    history_end: str = ""        # the last day of the live model's history (YYYY-MM-DD)


def test_score(evaluation: dict, metric: str = METRIC) -> tuple[float, str, str]:
    """(the final model's ``metric``, test_start, test_end) from an evaluation.json payload."""
    final = evaluation.get("final_model")
    block = (evaluation.get("models") or {}).get(final) or {}
    value = (block.get("overall") or {}).get(metric)
    return (math.nan if value is None else float(value),
            str(evaluation.get("test_start") or "")[:10], str(evaluation.get("test_end") or "")[:10])


def decide(policy: str, challenger: dict, champion: ChampionScore | None,
           metric: str = METRIC) -> Decision:
    """The decision for a challenger (its evaluation.json payload, whose ``test_end`` is the
    end of its history) under ``policy``, comparing on ``metric``."""
    if policy not in POLICIES:
        raise ValueError(f"promote must be one of {', '.join(POLICIES)}, got {policy!r}")
    if metric not in METRICS:
        raise ValueError(f"promote_metric must be one of {', '.join(METRICS)}, got {metric!r}")
    score, start, end = test_score(challenger, metric)
    base = {"policy": policy, "metric": metric, "challenger_score": score,
            "window_start": start, "window_end": end}
    behind = ""
    if champion is not None:
        base.update(champion_score=champion.score, champion_version=champion.version)
        if champion.history_end and end and end < champion.history_end:
            behind = (f"the new model's history ends on {end}, before the live model "
                      f"{champion.version}'s ({champion.history_end}): its forecasts would start "
                      f"again on days already observed")
    if policy == "always":
        return Decision(promoted=True, reason="promote=always" + (f"; {behind}" if behind
                                                                  else ""), **base)
    if policy == "never":
        return Decision(promoted=False, reason="promote=never: make it live with SetLiveModel "
                                               "(forecast promote)", **base)
    if policy == "shadow":
        if champion is None:
            return Decision(promoted=True, reason="no live model to serve in shadow beside",
                            **base)
        return Decision(promoted=False, reason=f"served in shadow beside the live model "
                                               f"{champion.version} until promote_after decides "
                                               f"on live actuals", **base)
    if champion is None:
        return Decision(promoted=True, reason="no live model to compare against", **base)
    if behind:
        return Decision(promoted=False, reason=f"{behind}; kept registered: train on data that "
                                               f"includes those days, or make it live with "
                                               f"SetLiveModel (forecast promote)", **base)
    if math.isnan(champion.score):
        return Decision(promoted=True, reason=f"the live model {champion.version} could not be "
                                              f"scored fairly on {start}..{end}: {champion.how}",
                        **base)
    if math.isnan(score):
        return Decision(promoted=False, reason=f"the new model has no {metric} on its test "
                                               "window", **base)
    verdict = "at least as good as" if score <= champion.score else "worse than"
    return Decision(promoted=score <= champion.score,
                    reason=f"{metric} {score:.4f} on {start}..{end} is {verdict} the live model "
                           f"{champion.version}'s {champion.score:.4f} ({champion.how})", **base)


def promote_metric(hyperparameters: dict) -> str:
    """The metric a job's gate compares on (its ``promote_metric`` hyperparameter)."""
    return str((hyperparameters or {}).get("promote_metric") or METRIC)


def _history_end(model_dir: Path) -> str:
    """The last day of an artifact's history (moved forward by actuals), YYYY-MM-DD."""
    from forecasting import artifact

    return str(artifact.read_json(Path(model_dir) / "history.json").get("last_date") or "")[:10]


def unscored(version: str, model_dir: Path, why: str) -> ChampionScore:
    """The live model without a score (``why``), with its history end."""
    return ChampionScore(version, math.nan, why, _history_end(model_dir))


def champion_score(version: str, model_dir: Path, challenger: dict, data_source,
                   metric: str = METRIC) -> ChampionScore:
    """Score the live model (artifact ``model_dir``) on the challenger's test window by
    ``metric``, per the module docstring. ``data_source`` is the challenger's training data (a
    path or frame); it is read only in case 2."""
    from forecasting import artifact

    _, start, end = test_score(challenger, metric)
    history_end = _history_end(model_dir)
    own = artifact.read_json(Path(model_dir) / "evaluation.json")
    own_score, own_start, own_end = test_score(own, metric)
    if (own_start, own_end) == (start, end) and not math.isnan(own_score):
        return ChampionScore(version, own_score, "its own evaluation on the same days",
                             history_end)
    meta = artifact.read_json(Path(model_dir) / "artifact.json")
    fit_end = str((meta.get("split") or {}).get("served_fit_end") or
                  (meta.get("data") or {}).get("end") or "")[:10]
    if not fit_end or not start or fit_end >= start:
        return ChampionScore(version, math.nan,
                             f"its fit has seen days up to {fit_end or 'an unknown day'}, "
                             f"inside the window", history_end)
    from forecasting.predictor import Predictor

    value, series, known = score_on_window(Predictor.load(model_dir), data_source, start, end,
                                           metric)
    return ChampionScore(version, value, f"forecast of those days from the new data, on "
                                         f"{known} of {series} series", history_end)


def score_on_window(predictor, data_source, start: str, end: str,
                    metric: str = METRIC) -> tuple[float, int, int]:
    """(``metric``, series in the data, series scored) of ``predictor``'s final member forecasting
    ``start..end`` of ``data_source`` from the day before ``start``, recursively, with the
    data's own promotions; as the training pipeline evaluates its test window."""
    from forecasting import metrics
    from forecasting.cleaning import clean
    from forecasting.history import ForecastInput, panel_window
    from forecasting.interval_calibration import final_forecast
    from forecasting.schema import read_table, validate_history

    frame, _ = validate_history(read_table(data_source))
    panel, _ = clean(frame)
    first = int((np.datetime64(start, "D") - panel.origin).astype(np.int64))
    last = int((np.datetime64(end, "D") - panel.origin).astype(np.int64))
    horizon = last - first + 1
    stores = np.asarray(predictor.encoders["store_nbr"], dtype=np.int64)
    families = np.asarray(predictor.encoders["family"], dtype=str)
    store_code = np.searchsorted(stores, panel.store_nbr).clip(0, len(stores) - 1)
    family = panel.family.astype(str)
    family_code = np.searchsorted(families, family).clip(0, len(families) - 1)
    known = (stores[store_code] == panel.store_nbr) & (families[family_code] == family)
    if not known.any() or horizon < 1:
        return math.nan, int(panel.n_series), 0
    lookback = max(m.lookback for m in predictor.members.values())
    sales, promo_hist = panel_window(panel, first - 1, lookback)
    actual, future_promo = panel_window(panel, last, horizon)
    inp = ForecastInput(sales[known], promo_hist[known], store_code[known].astype(np.int32),
                        family_code[known].astype(np.int32),
                        panel.dates(np.arange(first, last + 1)), future_promo[known])
    forecast = final_forecast(predictor.members, predictor.metadata["final_model"], inp)
    scale = metrics.seasonal_scale(panel.sales, panel.offsets, panel.day < first)[known]
    value = metrics.scores(forecast, np.nan_to_num(actual[known], nan=0.0), scale)[metric]
    return (math.nan if value is None else float(value)), int(panel.n_series), int(known.sum())
