"""The promotion gate: the decision under each policy, and the champion's score on the
challenger's window (its own evaluation, a fresh forecast, or no fair score)."""

import math

import pytest

from forecasting import promotion, training
from forecasting.promotion import ChampionScore, Decision

FAST_HP = {"num_round": "40", "early_stopping_rounds": "10", "max_depth": "6"}


def _evaluation(score, start="2017-07-31", end="2017-08-15"):
    return {"final_model": "xgboost", "test_start": start, "test_end": end,
            "models": {"xgboost": {"overall": {"rmsle": score}}}}


@pytest.mark.parametrize("policy, challenger, champion, promoted, reason", [
    ("if_better", 0.96, 0.92, False, ("0.9600 on 2017-07-31..2017-08-15 is worse than the live "
                                     "model v1's 0.9200")),
    ("if_better", 0.92, 0.92, True, "is at least as good as the live model v1's 0.9200"),
    ("if_better", 0.50, 0.92, True, "at least as good"),
    ("always", 0.96, 0.92, True, "promote=always"),
    ("never", 0.50, 0.92, False, "promote=never: make it live with SetLiveModel"),
    ("if_better", 0.96, math.nan, True, "could not be scored fairly"),
])
def test_decision_per_policy(policy, challenger, champion, promoted, reason):
    decision = promotion.decide(policy, _evaluation(challenger),
                                ChampionScore("v1", champion, "its own evaluation"))
    assert decision.promoted is promoted and reason in decision.reason
    assert decision.challenger_score == challenger and decision.champion_version == "v1"
    assert (decision.window_start, decision.window_end) == ("2017-07-31", "2017-08-15")
    again = Decision.from_dict(decision.to_dict())
    assert again.promoted == decision.promoted and again.reason == decision.reason


def test_first_model_goes_live_and_bad_policies_are_refused():
    decision = promotion.decide("if_better", _evaluation(0.7), None)
    assert decision.promoted and decision.reason == "no live model to compare against"
    assert math.isnan(decision.champion_score) and decision.to_dict()["champion_score"] is None
    with pytest.raises(ValueError, match="promote must be one of if_better, always, never"):
        promotion.decide("sometimes", _evaluation(0.7), None)


@pytest.mark.parametrize("policy, promoted, reason", [
    ("if_better", False, ("the new model's history ends on 2017-08-15, before the live model "
                         "v1's (2017-08-22): its forecasts would start again on days already "
                         "observed; kept registered")),
    ("always", True, "promote=always; the new model's history ends on 2017-08-15"),
    ("never", False, "promote=never"),
])
def test_a_challenger_whose_history_ends_first_never_goes_live_on_its_score(policy, promoted,
                                                                            reason):
    """The live model was moved forward by actuals to 2017-08-22; a retrain on the original
    file (history to 08-15) ties it on the window, and would have gone live."""
    champion = ChampionScore("v1", 0.92, "its own evaluation", history_end="2017-08-22")
    decision = promotion.decide(policy, _evaluation(0.50), champion)
    assert decision.promoted is promoted and reason in decision.reason
    same_end = ChampionScore("v1", 0.92, "its own evaluation", history_end="2017-08-15")
    assert promotion.decide("if_better", _evaluation(0.50), same_end).promoted


def test_the_gate_compares_on_the_chosen_metric():
    challenger = _evaluation(0.50)
    challenger["models"]["xgboost"]["overall"]["wape"] = 0.40
    decision = promotion.decide("if_better", challenger,
                                ChampionScore("v1", 0.35, "its own evaluation"), "wape")
    assert not decision.promoted and decision.metric == "wape"
    assert decision.reason.startswith("wape 0.4000 on 2017-07-31..2017-08-15 is worse")
    with pytest.raises(ValueError, match="promote_metric must be one of rmsle, rmse, mae"):
        promotion.decide("if_better", challenger, None, "bias")
    assert promotion.promote_metric({"promote_metric": "mase"}) == "mase"
    assert promotion.promote_metric({}) == "rmsle"


def test_a_champion_on_the_same_days_is_scored_by_its_own_evaluation(trained, model_dir):
    got = promotion.champion_score("v1", model_dir, trained.evaluation, data_source=None)
    assert got.score == promotion.test_score(trained.evaluation)[0]
    assert got.how == "its own evaluation on the same days"


def test_a_champion_that_has_seen_the_window_is_not_scored(model_dir):
    later = _evaluation(0.5, "2017-08-01", "2017-08-16")
    got = promotion.champion_score("v1", model_dir, later, data_source=None)
    assert math.isnan(got.score) and "has seen days up to 2017-08-15" in got.how


def test_an_older_champion_is_scored_on_the_new_window_as_training_scores_it(small_frame,
                                                                          tmp_path):
    # A champion without the refit, scored on its own test window from the same data, must
    # reproduce its evaluation exactly: the same members, origin, promotions and metric.
    older = small_frame[small_frame["date"] <= "2017-06-30"]
    champion = training.train(older, {**FAST_HP, "refit": "false"}, log=lambda _: None)
    model_dir = champion.save(tmp_path / "champion")
    score, start, end = promotion.test_score(champion.evaluation)
    from forecasting.predictor import Predictor

    value, series, known = promotion.score_on_window(Predictor.load(model_dir), older, start, end)
    assert value == pytest.approx(score, abs=1e-6) and series == known == 12
    # On newer data's window it is forecast afresh (it was fit before that window).
    got = promotion.champion_score("v1", model_dir, _evaluation(0.5), small_frame)
    assert 0 < got.score < 2 and got.how.endswith("on 12 of 12 series")


def test_shadow_registers_beside_the_live_model_or_goes_live_alone():
    live = promotion.ChampionScore("v1", math.nan, "promote=shadow", "2017-08-15")
    held = promotion.decide("shadow", _evaluation(0.5), live)
    assert not held.promoted and held.champion_version == "v1"
    assert "served in shadow beside the live model v1" in held.reason
    alone = promotion.decide("shadow", _evaluation(0.5), None)
    assert alone.promoted and alone.reason == "no live model to serve in shadow beside"
    trial = {"state": "running", "cells": 3, "champion_score": None}
    stored = promotion.Decision.from_dict({**held.to_dict(), "trial": trial})
    assert stored.trial == trial
    assert promotion.Decision.from_dict({k: v for k, v in held.to_dict().items()
                                         if k != "trial"}).trial is None   # older rows
