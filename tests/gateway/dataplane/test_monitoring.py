"""Monitoring through a real gateway: actuals move the live model forward, live accuracy equals
a hand computation, bad uploads change nothing, drift is checked, and Prometheus counters move
over HTTP."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import grpc
import numpy as np
import pandas as pd
import pytest
from cli_helpers import assert_one_line_error, run_forecast
from forecast_client import ForecastClient, ForecastClientError
from forecast_gateway.testing.process import GatewayProcess

from forecasting import forecast
from forecasting.metrics import scores

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "data" / "sample" / "train.csv"
FAST_HP = {"num_round": "30", "early_stopping_rounds": "5"}
CUT = pd.Timestamp("2017-08-01")   # trained on days up to CUT; later days arrive as actuals


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory):
    """A gateway with metrics on; retailer `watch` trained up to CUT, with 14 days of
    forecasts served after it (the gateway, client, history, later days and served frame)."""
    tmp = tmp_path_factory.mktemp("monitoring")
    frame = pd.read_csv(SAMPLE, parse_dates=["date"])
    history, later = frame[frame["date"] <= CUT], frame[frame["date"] > CUT]
    history.to_csv(tmp / "history.csv", index=False)
    with GatewayProcess(tmp / "data", metrics=True) as gw, \
            ForecastClient(target=gw.target, api_key=gw.api_key("watch")) as client:
        client.wait_until_ready(10)
        dataset = client.upload_dataset("watch", tmp / "history.csv")
        job = client.train("watch", dataset_id=dataset.dataset_id, hyperparameters=FAST_HP)
        done = client.wait_for_job("watch", job.job_id)
        assert done.model_version == "v1", done.failure_reason
        rows = forecast.future_rows(history, 14)
        served = client.predict_frame("watch", rows)
        yield SimpleNamespace(gw=gw, client=client, history=history, later=later, served=served,
                              tmp=tmp, dataset_id=dataset.dataset_id)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    return path


def test_actuals_move_the_live_model_forward(watched) -> None:
    client = watched.client
    history = watched.history
    later = watched.later
    served = watched.served
    tmp = watched.tmp
    week = later[later["date"] <= CUT + pd.Timedelta(days=7)]
    answer = client.append_actuals("watch", _write(week, tmp / "week1.csv"))
    assert answer.model_version == "v2"
    assert answer.report.history_end_date == "2017-08-08"
    assert answer.report.new_days == 7 and answer.report.rows == len(week)
    assert answer.dataset_id, "history + actuals is registered for the next Train"
    live = [m for m in client.list_models("watch") if m.live]
    assert [m.version for m in live] == ["v2"]
    # v2 forecasts start after the latest actual day: a day inside the new history is refused.
    inside = pd.DataFrame({"date": ["2017-08-05"], "store_nbr": [served["store_nbr"].iloc[0]],
                           "family": [served["family"].iloc[0]], "onpromotion": [0]})
    with pytest.raises(ForecastClientError, match="on or before the end of the model's history"):
        client.predict_frame("watch", inside)
    after = inside.assign(date=["2017-08-09"])
    assert client.predict_frame("watch", after)["sales"].notna().all()

    # Live accuracy of v1 equals the hand computation over the 7 settled days.
    report = client.monitoring("watch")
    v1 = next(v for v in report.versions if v.model_version == "v1")
    keys = ["date", "store_nbr", "family"]
    got = served.assign(date=pd.to_datetime(served["date"])).merge(week, on=keys)
    expected = scores(got["sales_x"].to_numpy(), got["sales_y"].to_numpy())
    assert v1.live_overall.count == len(got)
    assert v1.live_overall.model.rmsle == pytest.approx(expected["rmsle"], abs=1e-6)
    assert v1.live_overall.model.wape == pytest.approx(expected["wape"], abs=1e-6)
    # The baseline: the last week of the training history, repeated.
    last_week = history[history["date"] > CUT - pd.Timedelta(days=7)]
    naive = got.assign(date=got["date"] - pd.Timedelta(days=7)).merge(last_week, on=keys)
    assert v1.live_overall.baseline.rmsle == pytest.approx(
        scores(naive["sales"].to_numpy(), naive["sales_y"].to_numpy())["rmsle"], abs=1e-6)
    assert [s.step for s in v1.live_per_step] == list(range(1, 8))
    assert v1.test.rmsle > 0 and report.served_records == len(served)
    assert report.history_end_date == "2017-08-08" and report.last_actuals.new_days == 7
    assert report.drift.recent_end_date == "2017-08-08"


def test_bad_uploads_change_nothing(watched) -> None:
    client = watched.client
    later = watched.later
    tmp = watched.tmp
    before = (client.monitoring("watch"), [m.version for m in client.list_models("watch")])
    stored = next((tmp / "data").rglob("actuals.parquet"))
    stored_bytes = stored.read_bytes()
    again = later[later["date"] <= CUT + pd.Timedelta(days=2)]
    with pytest.raises(ForecastClientError) as err:
        client.append_actuals("watch", _write(again, tmp / "again.csv"))
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert re.search(r"2017-08-02 store \d+ '.*'.*correct", str(err.value))
    with pytest.raises(ForecastClientError) as err:
        client.append_actuals("watch", b"date,store_nbr\n2017-08-09,1\n", filename="x.csv")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and "family" in str(err.value)
    with pytest.raises(ForecastClientError) as err:
        client.append_actuals("nobody", _write(again, tmp / "again.csv"))
    assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
    after = (client.monitoring("watch"), [m.version for m in client.list_models("watch")])
    assert after[1] == before[1]
    assert after[0].last_actuals == before[0].last_actuals
    assert stored.read_bytes() == stored_bytes


def test_gaps_are_filled_and_unknown_series_reported(watched) -> None:
    client = watched.client
    later = watched.later
    tmp = watched.tmp
    # Days 08-09 .. 08-11 without 08-10, plus a series the model never saw.
    days = later[later["date"].isin(pd.to_datetime(["2017-08-09", "2017-08-11"]))]
    stranger = days.head(1).assign(store_nbr=999)
    answer = client.append_actuals("watch", _write(pd.concat([days, stranger]), tmp / "gap.csv"))
    report = answer.report
    assert report.history_end_date == "2017-08-11" and report.new_days == 3
    assert list(report.dates_missing_in_every_series) == ["2017-08-10"]
    # Every series with a history gets 08-10 filled; never-selling ones stay out of the tail.
    sold = watched.history.groupby(["store_nbr", "family"])["sales"].sum()
    assert report.filled_cells == int((sold > 0).sum())
    assert report.unknown_series_count == 1 and report.unknown_series[0].startswith("999/")
    # A correction replaces known days instead of failing.
    fixed = days.head(3).assign(sales=1.0)
    corrected = client.append_actuals("watch", _write(fixed, tmp / "fix.csv"), correct=True)
    assert corrected.report.corrected_rows == 3 and corrected.report.new_days == 0


def test_drift_on_demand(watched) -> None:
    client = watched.client
    drift = client.check_drift("watch", window_days=7)
    assert drift is not None and drift.reference_end_date == "2017-08-01"
    assert {f.feature for f in drift.features} == {"sales_level", "zero_rate", "promo_rate",
                                                   "dow_profile"}
    assert drift.score == pytest.approx(max(f.psi for f in drift.features))
    with pytest.raises(ForecastClientError) as err:
        client.check_drift("watch", window_days=400)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT


def _scrape(gw: GatewayProcess) -> str:
    with urllib.request.urlopen(gw.metrics_url, timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


def _value(text: str, name: str, default: float | None = None, **labels: str) -> float:
    """The sample of `name` with `labels` (`default` when the series does not exist yet)."""
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    if default is not None:
        return default
    raise AssertionError(f"{name} {labels} not in the scrape")


def test_prometheus_counters_move(watched) -> None:
    gw = watched.gw
    client = watched.client
    later = watched.later
    served = watched.served
    tmp = watched.tmp
    predict = "/forecastapi.v1.ForecastService/Predict"
    first = _scrape(gw)
    calls = _value(first, "forecast_gateway_rpcs_total", 0.0, method=predict, code="OK")
    rows = _value(first, "forecast_gateway_rows_predicted_total", retailer="watch")
    one = pd.DataFrame({"date": ["2017-08-20"], "store_nbr": [served["store_nbr"].iloc[0]],
                        "family": [served["family"].iloc[0]]})
    client.predict("watch", **one.to_dict("list"))
    with pytest.raises(ForecastClientError):
        client.predict("watch", **one.assign(date=["2001-01-01"]).to_dict("list"))
    second = _scrape(gw)
    assert _value(second, "forecast_gateway_rpcs_total", method=predict, code="OK") == calls + 1
    assert _value(second, "forecast_gateway_rpcs_total", method=predict,
                  code="INVALID_ARGUMENT") >= 1
    assert _value(second, "forecast_gateway_rows_predicted_total", retailer="watch") == rows + 1
    assert _value(second, "forecast_gateway_rpc_duration_seconds_count", method=predict) >= 2
    assert _value(second, "forecast_gateway_jobs", state="SUCCEEDED") >= 1
    assert _value(second, "forecast_gateway_training_duration_seconds_count",
                  state="SUCCEEDED") >= 1
    assert _value(second, "forecast_gateway_model_load_seconds_count") >= 2
    live = next(m.version for m in client.list_models("watch") if m.live)
    assert _value(second, "forecast_gateway_live_model_info", retailer="watch", version=live) == 1
    assert _value(second, "forecast_gateway_actuals_age_seconds", retailer="watch") >= 0
    assert _value(second, "forecast_gateway_drift_score", retailer="watch") >= 0
    # The live version's live accuracy appears once a forecast it served has its actual.
    served_day = one.assign(date=["2017-08-12"])
    client.predict("watch", **served_day.to_dict("list"))
    settled = later[(later["date"] == "2017-08-12")]
    answer = client.append_actuals("watch", _write(settled, tmp / "settle.csv"))
    third = _scrape(gw)
    # Every version since v1 is v1 moved forward by actuals: the scores count for v1.
    assert answer.model_version != live
    rmsle = _value(third, "forecast_gateway_live_rmsle", retailer="watch", version="v1")
    report = client.monitoring("watch")
    assert [v.model_version for v in report.versions] == ["v1"] and report.versions[0].live
    assert rmsle == pytest.approx(report.versions[0].live_overall.model.rmsle)
    assert np.isfinite(rmsle)


def test_the_cli_feeds_actuals_and_shows_the_live_error(watched, tmp_path: Path) -> None:
    env = {"FORECAST_API_KEY": watched.gw.api_key("watch")}
    target = watched.gw.target
    day = watched.later[watched.later["date"] == "2017-08-13"]
    r = run_forecast("actuals", "--retailer", "watch", str(_write(day, tmp_path / "d.csv")),
                     target=target, env=env)
    assert r.returncode == 0, r.stderr
    assert "history now ends on 2017-08-13" in r.stdout and "is live" in r.stdout
    again = run_forecast("actuals", "--retailer", "watch", str(tmp_path / "d.csv"),
                         target=target, env=env)
    assert_one_line_error(again, 1, "2017-08-13", "--correct")
    shown = run_forecast("monitor", "--retailer", "watch", "--per-step", target=target, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "v1 *" in shown.stdout and "step 1" in shown.stdout and "baseline rmsle" in shown.stdout
    as_json = run_forecast("monitor", "--retailer", "watch", "--json", target=target, env=env)
    assert '"live_per_day"' in as_json.stdout

    # The live error over time: the SDK's daily frame, the figure's data and the CLI's PNG.
    from forecast_client import plots

    daily = watched.client.monitoring_frame("watch", by="date")
    first = daily[daily["date"] == "2017-08-02"].iloc[0]
    keys = ["date", "store_nbr", "family"]
    cells = watched.served.assign(date=pd.to_datetime(watched.served["date"])).merge(
        watched.later, on=keys)
    cells = cells[cells["date"] == "2017-08-02"]
    assert first["count"] == len(cells)
    assert first["rmsle"] == pytest.approx(
        scores(cells["sales_x"].to_numpy(), cells["sales_y"].to_numpy())["rmsle"], abs=1e-6)
    fig = plots.live_error_figure(daily)
    model_line = next(x for x in fig.axes[0].get_lines()
                      if x.get_label().startswith("model v1: "))
    assert model_line.get_label() == f"model v1: {daily['count'].sum():,} cells over {len(daily)} days"
    np.testing.assert_allclose(model_line.get_ydata(), daily.sort_values("date")["rmsle"])
    png = tmp_path / "live.png"
    drawn = run_forecast("plot", "--retailer", "watch", "--live", "--output", str(png),
                         target=target, env=env)
    assert drawn.returncode == 0, drawn.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_train_on_data_that_lacks_the_stored_actuals_merges_them(watched) -> None:
    """Tried as a new user would: after actuals moved the live model forward, a retrain on the
    original upload (history to CUT) would have forecast days already observed. The gateway
    merges the stored actuals into a new dataset, says so on the job, and the new model's
    history ends where the live one's does."""
    client = watched.client
    live_end = client.monitoring("watch").history_end_date
    assert live_end > f"{CUT:%Y-%m-%d}"
    job = client.train("watch", dataset_id=watched.dataset_id, hyperparameters=FAST_HP)
    assert job.dataset_id != watched.dataset_id
    assert job.data_note.startswith(f"dataset {watched.dataset_id} ends on {CUT:%Y-%m-%d}; ")
    assert f"(to {live_end}) were merged into dataset {job.dataset_id}" in job.data_note
    done = client.wait_for_job("watch", job.job_id)
    assert done.data_note == job.data_note and done.promotion.reason
    assert "before the live model" not in done.promotion.reason
    version = next(m for m in client.list_models("watch") if m.version == done.model_version)
    assert version.data_end_date == live_end
