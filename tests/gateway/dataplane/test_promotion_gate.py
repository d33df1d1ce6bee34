"""The promotion gate through a gateway process: each promote mode, both scores on the job and
the version, SetLiveModel still forcing a switch, and a bad policy's status."""

from __future__ import annotations

import math

import grpc
import pytest
from forecast_client import ForecastClient, ForecastClientError, pb

pytestmark = pytest.mark.slow

#: Far too few boosting rounds at a tiny learning rate: a model that cannot beat a good one.
#: No refit anywhere: the gate compares the evaluated fits, and the jobs stay quick.
POOR_HP = {"num_round": "3", "early_stopping_rounds": "3", "eta": "0.01", "refit": "false"}


def _live(client, retailer):
    return [m.version for m in client.list_models(retailer) if m.live]


def test_promote_modes_keep_the_better_model_live(gateway, sample_csv, fast_hp):
    with ForecastClient(target=gateway.target, api_key=gateway.api_key("gate")) as client:
        dataset = client.upload_dataset("gate", sample_csv).dataset_id

        def train(hp, promote):
            job = client.train("gate", dataset_id=dataset, hyperparameters=hp, promote=promote)
            assert job.promote == {"if_better": pb.PROMOTION_POLICY_IF_BETTER,
                                   "always": pb.PROMOTION_POLICY_ALWAYS,
                                   "never": pb.PROMOTION_POLICY_NEVER}[promote]
            done = client.wait_for_job("gate", job.job_id, timeout_s=300)
            assert done.state == pb.JOB_STATE_SUCCEEDED, done.failure_reason
            return done

        first = train(POOR_HP, "if_better")                       # v1: nothing to beat
        assert first.promotion.promoted and first.promotion.reason == (
            "no live model to compare against")
        assert math.isnan(first.promotion.champion_score) and _live(client, "gate") == ["v1"]

        better = train({**fast_hp, "refit": "false"}, "if_better")  # v2 beats v1 on its days
        p = better.promotion
        assert p.promoted and p.champion_version == "v1" and p.metric == "rmsle"
        assert p.challenger_score < p.champion_score
        assert (p.window_start_date, p.window_end_date) == ("2017-07-31", "2017-08-15")
        assert p.champion_score == pytest.approx(first.promotion.challenger_score)
        assert "its own evaluation on the same days" in p.reason
        assert _live(client, "gate") == ["v2"]

        worse = train(POOR_HP, "if_better")                       # v3 is worse: v2 stays
        p = worse.promotion
        assert not p.promoted and p.champion_version == "v2"
        assert p.challenger_score > p.champion_score and "is worse than the live model v2" in p.reason
        assert worse.model_version == "v3" and _live(client, "gate") == ["v2"]

        forced = train(POOR_HP, "always")                         # v4 goes live regardless
        assert forced.promotion.promoted and forced.promotion.reason == "promote=always"
        assert _live(client, "gate") == ["v4"]

        held = train(POOR_HP, "never")                            # v5 waits for SetLiveModel
        assert not held.promotion.promoted and "promote=never" in held.promotion.reason
        assert _live(client, "gate") == ["v4"]

        versions = {m.version: m for m in client.list_models("gate")}
        assert versions["v3"].promotion.challenger_score == worse.promotion.challenger_score
        assert not versions["v3"].promotion.promoted and versions["v2"].promotion.promoted
        assert client.get_job("gate", worse.job_id).promotion.reason == worse.promotion.reason

        assert client.set_live_model("gate", "v5").live                # a forced switch
        assert _live(client, "gate") == ["v5"]


def test_an_unknown_policy_is_refused(gateway, trained):
    with ForecastClient(target=gateway.target) as client:
        request = pb.TrainRequest(retailer="acme", dataset_id=trained["dataset"].dataset_id,
                                  promote=9)
        with pytest.raises(ForecastClientError) as info:
            client._unary(client._stub.Train, request, 10)
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "promote: 'PromotionPolicy 9' is not one of if_better, always, never, shadow" in str(
            info.value)
        with pytest.raises(ValueError, match="promote must be one of if_better, always, never"):
            client.train("acme", dataset_id="x", promote="sometimes")  # type: ignore[arg-type]


def test_a_model_whose_history_ends_first_stays_registered_not_live(gateway, sample_csv,
                                                                    fast_hp, tmp_path):
    """The live model knows days up to 2017-08-15; a new model trained on an older file (to
    08-08) scores on other days, but going live would forecast observed days again: it stays
    registered, the reason names both end dates, and SetLiveModel can still force it."""
    import pandas as pd

    frame = pd.read_csv(sample_csv)
    older = tmp_path / "older.csv"
    frame[frame["date"] <= "2017-08-08"].to_csv(older, index=False)
    hp = {**fast_hp, "refit": "false"}
    with ForecastClient(target=gateway.target, api_key=gateway.api_key("behind")) as client:
        for path in (sample_csv, older):
            dataset = client.upload_dataset("behind", path).dataset_id
            job = client.train("behind", dataset_id=dataset, hyperparameters=hp)
            done = client.wait_for_job("behind", job.job_id, timeout_s=300)
            assert done.state == pb.JOB_STATE_SUCCEEDED, done.failure_reason
        p = done.promotion
        assert not p.promoted and done.model_version == "v2" and _live(client, "behind") == ["v1"]
        assert p.reason.startswith("the new model's history ends on 2017-08-08, before the live "
                                   "model v1's (2017-08-15)")
        assert client.set_live_model("behind", "v2").live
