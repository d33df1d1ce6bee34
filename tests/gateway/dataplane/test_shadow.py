"""Challengers on live actuals through a real gateway: a version trained under promote=shadow is
served in shadow (the live model answers, the challenger's forecasts of the same requests are
recorded), actuals score both on the same cells, and promote_after promotes a better challenger
or rejects a worse one, with the numbers stored on both versions and the job. Bad rules are
INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import grpc
import numpy as np
import pandas as pd
import pytest
from cli_helpers import assert_one_line_error, run_forecast
from forecast_client import ForecastClient, ForecastClientError, pb
from forecast_gateway.testing.process import GatewayProcess

from forecasting import forecast
from forecasting.metrics import scores
from forecasting.predictor import Predictor

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "data" / "sample" / "train.csv"
GOOD_HP = {"num_round": "30", "early_stopping_rounds": "5", "refit": "false"}
#: A model that cannot beat a good one (as in test_promotion_gate).
POOR_HP = {"num_round": "3", "early_stopping_rounds": "3", "eta": "0.01", "refit": "false"}
CUT = pd.Timestamp("2017-08-01")
KEYS = ["date", "store_nbr", "family"]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory):
    """A gateway (gRPC and HTTP) and the sample's history up to CUT."""
    tmp = tmp_path_factory.mktemp("shadow")
    frame = pd.read_csv(SAMPLE, parse_dates=["date"])
    history = frame[frame["date"] <= CUT]
    history.to_csv(tmp / "history.csv", index=False)
    with GatewayProcess(tmp / "data", http=True) as gateway:
        yield SimpleNamespace(gateway=gateway, tmp=tmp, history=history,
                              later=frame[frame["date"] > CUT])


def _client(gw, retailer: str) -> ForecastClient:
    return ForecastClient(target=gw.gateway.target, api_key=gw.gateway.api_key(retailer))


def _train(client, retailer, dataset, hp, promote, **kw):
    job = client.train(retailer, dataset_id=dataset, hyperparameters=hp, promote=promote, **kw)
    done = client.wait_for_job(retailer, job.job_id, timeout_s=300)
    assert done.state == pb.JOB_STATE_SUCCEEDED, done.failure_reason
    return done


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    return path


def _start(gw, retailer: str, champion_hp, challenger_hp, rule):
    """v1 live (champion_hp), v2 in shadow (challenger_hp, `rule`), 14 days served by v1; the
    served frame and v2's own forecasts of it (computed here from its artifact)."""
    client = _client(gw, retailer)
    dataset = client.upload_dataset(retailer, gw.tmp / "history.csv").dataset_id
    assert _train(client, retailer, dataset, champion_hp, "if_better").model_version == "v1"
    job = _train(client, retailer, dataset, challenger_hp, "shadow", promote_after=rule)
    p = job.promotion
    assert job.model_version == "v2" and job.promote == pb.PROMOTION_POLICY_SHADOW
    assert not p.promoted and p.policy == pb.PROMOTION_POLICY_SHADOW
    assert p.champion_version == "v1" and "served in shadow beside the live model v1" in p.reason
    assert p.trial.state == pb.SHADOW_STATE_RUNNING and p.trial.challenger_version == "v2"
    assert (p.trial.promote_after.days, p.trial.promote_after.min_cells) == (
        rule["days"], rule["min_cells"])
    models = {m.version: m for m in client.list_models(retailer)}
    assert models["v1"].live and not models["v1"].shadow
    assert models["v2"].shadow and not models["v2"].live
    rows = forecast.future_rows(gw.history, 14)
    served = client.predict_frame(retailer, rows)          # the live model answers
    v2_dir = gw.gateway.data_dir / "retailers" / retailer / "models" / "v2"
    mine = Predictor.load(v2_dir).predict_columns(
        date=pd.to_datetime(rows["date"]).to_numpy().astype("datetime64[D]"),
        store_nbr=rows["store_nbr"].to_numpy(), family=rows["family"].to_numpy(),
        onpromotion=rows["onpromotion"].to_numpy())
    frame = served.assign(date=pd.to_datetime(served["date"]), shadow=np.asarray(mine))
    assert not np.allclose(frame["sales"], frame["shadow"]), "two different models"
    return client, frame


def _expected(frame: pd.DataFrame, actuals: pd.DataFrame) -> tuple[int, float, float]:
    got = frame.merge(actuals, on=KEYS, suffixes=("", "_actual"))
    actual = got["sales_actual"].to_numpy()
    return (len(got), scores(got["sales"].to_numpy(), actual)["rmsle"],
            scores(got["shadow"].to_numpy(), actual)["rmsle"])


def test_a_better_challenger_is_promoted_on_live_actuals(gw) -> None:
    rule = {"days": 5, "min_cells": 20, "margin": 0.0}
    client, frame = _start(gw, "bright", POOR_HP, GOOD_HP, rule)
    week = gw.later[gw.later["date"] <= CUT + pd.Timedelta(days=7)]
    answer = client.append_actuals("bright", _csv(week, gw.tmp / "bright-week.csv"))
    cells, champion, challenger = _expected(frame, week)
    trial = answer.shadow
    assert trial.state == pb.SHADOW_STATE_PROMOTED, trial.reason
    assert (trial.days, trial.cells) == (7, cells) and trial.metric == "rmsle"
    assert trial.champion_score == pytest.approx(champion, abs=1e-5)
    assert trial.challenger_score == pytest.approx(challenger, abs=1e-5)
    assert challenger < champion and "is at most the live model's" in trial.reason
    # v1 moved forward to v3, v2 (in shadow) to v4; v4 went live on the evidence.
    models = {m.version: m for m in client.list_models("bright")}
    assert [v for v, m in models.items() if m.live] == ["v4"]
    assert not any(m.shadow for m in models.values())
    decided = models["v2"].promotion
    assert decided.promoted and decided.trial.state == pb.SHADOW_STATE_PROMOTED
    assert decided.challenger_score == trial.challenger_score
    assert decided.champion_score == trial.champion_score and decided.champion_version == "v1"
    assert (decided.window_start_date, decided.window_end_date) == ("2017-08-02", "2017-08-08")
    assert models["v1"].trial.state == pb.SHADOW_STATE_PROMOTED          # on both versions
    assert models["v1"].trial.cells == cells
    assert client.get_job("bright", models["v2"].job_id).promotion.promoted
    # The monitoring report: champion vs challenger per step on the same cells.
    report = client.monitoring("bright")
    steps = {s.step: s for s in report.shadow.steps}
    assert report.shadow.trial.state == pb.SHADOW_STATE_PROMOTED
    assert steps[0].cells == cells and sorted(steps)[1:] == list(range(1, 8))
    assert sum(steps[k].cells for k in range(1, 8)) == cells
    assert steps[0].champion.rmsle == pytest.approx(champion, abs=1e-5)
    assert steps[0].challenger.rmsle == pytest.approx(challenger, abs=1e-5)
    assert steps[0].champion_cells == steps[0].challenger_cells == cells
    out = run_forecast("monitor", "--retailer", "bright", target=gw.gateway.target,
                       env={"FORECAST_API_KEY": gw.gateway.api_key("bright")})
    assert out.returncode == 0, out.stderr
    assert "shadow trial v2 vs live v1: promoted; 7 days" in out.stdout
    assert "step 7" in out.stdout
    # A later upload: nothing is in shadow; the decided trial stays in the report.
    day = gw.later[gw.later["date"] == CUT + pd.Timedelta(days=8)]
    later = client.append_actuals("bright", _csv(day, gw.tmp / "bright-day.csv"))
    assert later.model_version == "v5" and not later.HasField("shadow")
    assert client.monitoring("bright").shadow.trial.state == pb.SHADOW_STATE_PROMOTED


def test_a_worse_challenger_is_rejected_once_the_evidence_is_enough(gw) -> None:
    rule = {"days": 3, "min_cells": 20, "margin": 0.05}
    client, frame = _start(gw, "dim", GOOD_HP, POOR_HP, rule)
    first = gw.later[gw.later["date"] <= CUT + pd.Timedelta(days=2)]
    answer = client.append_actuals("dim", _csv(first, gw.tmp / "dim-1.csv"))
    assert answer.shadow.state == pb.SHADOW_STATE_RUNNING
    assert "waiting for evidence: 2 of 3 days of actuals" in answer.shadow.reason
    models = {m.version: m for m in client.list_models("dim")}
    assert models["v3"].live and models["v4"].shadow      # both moved forward
    assert models["v2"].promotion.trial.days == 2         # the running numbers are stored
    second = gw.later[(gw.later["date"] > CUT + pd.Timedelta(days=2))
                      & (gw.later["date"] <= CUT + pd.Timedelta(days=4))]
    answer = client.append_actuals("dim", _csv(second, gw.tmp / "dim-2.csv"))
    both = pd.concat([first, second])
    cells, champion, challenger = _expected(frame, both)
    trial = answer.shadow
    assert trial.state == pb.SHADOW_STATE_REJECTED, trial.reason
    assert (trial.days, trial.cells) == (4, cells)
    assert trial.champion_score == pytest.approx(champion, abs=1e-5)
    assert trial.challenger_score == pytest.approx(challenger, abs=1e-5)
    assert challenger > champion * 0.95 and "x (1 - 0.05)" in trial.reason
    models = {m.version: m for m in client.list_models("dim")}
    assert [v for v, m in models.items() if m.live] == ["v5"]   # v1, moved forward twice
    assert not any(m.shadow for m in models.values())
    assert not models["v2"].promotion.promoted
    assert models["v2"].promotion.trial.state == pb.SHADOW_STATE_REJECTED
    assert models["v1"].trial.challenger_score == trial.challenger_score
    # Nothing is shadowed any more: new cells (08-16 .. 08-21) are recorded for the live
    # model only.
    before = client.monitoring("dim").served_records
    client.predict_frame("dim", forecast.future_rows(pd.concat([gw.history, both]), 16))
    expected = before + 6 * (len(frame) // 14)
    deadline = time.monotonic() + 20
    while client.monitoring("dim").served_records < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)                       # a shadow's records would have arrived by now too
    assert client.monitoring("dim").served_records == expected


@pytest.mark.parametrize("rule, promote, field", [
    ({"days": -1}, pb.PROMOTION_POLICY_SHADOW, "promote_after.days"),
    ({"days": 400}, pb.PROMOTION_POLICY_SHADOW, "promote_after.days"),
    ({"min_cells": -5}, pb.PROMOTION_POLICY_SHADOW, "promote_after.min_cells"),
    ({"margin": 0.9}, pb.PROMOTION_POLICY_SHADOW, "promote_after.margin"),
    ({"margin": math.nan}, pb.PROMOTION_POLICY_SHADOW, "promote_after.margin"),
    ({"days": 3}, pb.PROMOTION_POLICY_IF_BETTER, "promote_after"),
])
def test_bad_rules_are_invalid_argument_naming_the_field(gw, rule, promote, field) -> None:
    with _client(gw, "rules") as client:
        client.upload_dataset("rules", gw.tmp / "history.csv")
        request = pb.TrainRequest(retailer="rules", promote=promote,
                                  promote_after=pb.PromoteAfter(**rule))
        with pytest.raises(ForecastClientError) as info:
            client._unary(client._stub.Train, request, 10)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert str(info.value.details).startswith(f"{field}:"), info.value.details


def test_bad_rules_over_http_and_the_cli(gw) -> None:
    gateway = gw.gateway
    with _client(gw, "rules") as client:
        client.upload_dataset("rules", gw.tmp / "history.csv")
        with pytest.raises(ForecastClientError) as info:   # MASE needs the training data
            client._unary(client._stub.Train, pb.TrainRequest(
                retailer="rules", promote=pb.PROMOTION_POLICY_SHADOW,
                hyperparameters={"promote_metric": "mase"}), 10)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "hyperparameters['promote_metric']" in str(info.value.details)
    body = json.dumps({"promote": "PROMOTION_POLICY_SHADOW",
                       "promoteAfter": {"margin": 2}}).encode()
    request = urllib.request.Request(f"{gateway.http_url}/v1/retailers/rules:train", data=body,
                                     method="POST", headers={
                                         "Content-Type": "application/json",
                                         "Authorization": f"Bearer {gateway.api_key('rules')}"})
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(request, timeout=10)
    assert http.value.code == 400
    assert "promote_after.margin" in json.loads(http.value.read())["message"]
    env = {"FORECAST_API_KEY": gateway.api_key("rules")}
    out = run_forecast("train", "--retailer", "rules", "--dataset-id", "x", "--promote",
                       "shadow", "--promote-after", "days=x", target=gateway.target, env=env)
    assert_one_line_error(out, 2, "--promote-after 'days=x': days must be an integer")
    out = run_forecast("train", "--retailer", "rules", "--dataset-id", "x", "--promote-after",
                       "days=3", target=gateway.target, env=env)
    assert_one_line_error(out, 2, "--promote-after applies only with --promote shadow")


def test_the_backends_model_registry_learns_the_trials_decision(tmp_path, gw, gateway_over) -> None:
    """A trial's decision reaches the backend's model registry as the gate's does
    (`Backend.version_registered`; on SageMaker the trained version's package is Approved when
    the challenger is promoted): here a local backend that keeps what it was told."""
    from forecast_gateway.backends.local import LocalBackend

    class Registering(LocalBackend):
        def __init__(self) -> None:
            super().__init__(model_cache_size=8)
            self.told: list[tuple[str, str, bool]] = []

        def version_registered(self, model) -> None:
            self.told.append((model.version, model.promotion.policy, model.promotion.promoted))

    backend = Registering()
    gateway = gateway_over(backend)
    inproc = SimpleNamespace(gateway=SimpleNamespace(
        target=gateway.target, api_key=gateway.api_key,
        data_dir=gateway.server.config.data_dir), tmp=tmp_path, history=gw.history,
        later=gw.later)
    gw.history.to_csv(tmp_path / "history.csv", index=False)
    rule = {"days": 3, "min_cells": 20, "margin": 0.0}
    client, _ = _start(inproc, "told", POOR_HP, GOOD_HP, rule)
    assert backend.told == [("v1", "if_better", True), ("v2", "shadow", False)]
    week = gw.later[gw.later["date"] <= CUT + pd.Timedelta(days=4)]
    answer = client.append_actuals("told", _csv(week, tmp_path / "told.csv"))
    assert answer.shadow.state == pb.SHADOW_STATE_PROMOTED, answer.shadow.reason
    assert backend.told[-1] == ("v2", "shadow", True)
