"""Forecast (the next N days without a file), prediction intervals and Turnover over a real
channel to a gateway process with the local backend; every bad input's status and message."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest
from forecast_client import ForecastClient, ForecastClientError, pb
from forecast_gateway.dataplane import Tenant

pytestmark = pytest.mark.slow

GOLDEN_V1 = Path(__file__).resolve().parents[2] / "forecasting" / "fixtures" / "artifact_v1"


@pytest.fixture(scope="module")
def client(gateway, trained):
    with ForecastClient(target=gateway.target) as c:
        yield c


@pytest.fixture(scope="module")
def horizon(client) -> pd.DataFrame:
    """acme's next 16 days with 80 % and 95 % intervals."""
    return client.forecast("acme", days=16, levels=(80, 95))


def test_forecast_answers_every_series_for_the_next_days_with_intervals(client, horizon,
                                                                        future_rows):
    assert len(horizon) == 24 * 16 and horizon.attrs["model_version"] == "v1"
    assert list(horizon.columns) == ["date", "store_nbr", "family", "onpromotion", "sales",
                                     "lo-80", "hi-80", "lo-95", "hi-95"]
    assert horizon["date"].min() == "2017-08-16" and horizon["date"].max() == "2017-08-31"
    # The same rows through a file-less Forecast and a streamed predict_frame agree.
    by_file = client.predict_frame("acme", future_rows.assign(onpromotion=0), levels=(80, 95))
    merged = horizon.merge(by_file, on=["date", "store_nbr", "family"], suffixes=("", "_file"))
    for column in ("sales", "lo-80", "hi-80", "lo-95", "hi-95"):
        np.testing.assert_allclose(merged[column], merged[f"{column}_file"], rtol=1e-9)
    selling = horizon[horizon["sales"] > 1]
    assert (selling["lo-95"] <= selling["lo-80"]).all()
    assert (selling["lo-80"] < selling["sales"]).all() and (selling["sales"] < selling["hi-80"]).all()
    assert (selling["hi-80"] <= selling["hi-95"]).all() and (horizon["lo-95"] >= 0).all()


def test_days_past_the_trained_horizon_are_answered_with_a_warning(client, horizon,
                                                                   future_rows):
    """The model was trained and its intervals calibrated for 16 days: inside them no warning;
    beyond, the answer still comes, with a warning on Forecast, Predict and PredictStream."""
    assert horizon.attrs["warnings"] == []
    longer = client.forecast("acme", days=20, levels=(80,))
    assert len(longer) == 24 * 20 and len(longer.attrs["warnings"]) == 1
    warning = longer.attrs["warnings"][0]
    assert warning.startswith("rows from 2017-09-01 are past the 16-day horizon the model was "
                              "trained and evaluated for (its history ends 2017-08-15)")
    assert "intervals reuse the band" in warning
    point = client.forecast("acme", days=20)
    assert point.attrs["warnings"] and "intervals" not in point.attrs["warnings"][0]
    late = future_rows.assign(onpromotion=0, date="2017-09-03").head(3)
    assert client.predict_frame("acme", late, levels=(80,)).attrs["warnings"] == [warning]
    from forecast_client import rows as _rows

    request = pb.PredictRequest(retailer="acme", levels=[80], rows=_rows.make_batch(
        late["date"], late["store_nbr"], late["family"], late["onpromotion"]))
    assert list(client._unary(client._stub.Predict, request, 30).warnings) == [warning]
    inside = late.assign(date="2017-08-20")
    assert client.predict_frame("acme", inside, levels=(80,)).attrs["warnings"] == []


def test_predict_and_forecast_filter_and_promotions(client, horizon):
    rows = horizon[horizon["store_nbr"] == 1].head(5)
    values = client.predict("acme", date=rows["date"], store_nbr=rows["store_nbr"],
                            family=rows["family"])
    np.testing.assert_allclose(values, rows["sales"], rtol=1e-9)
    some = client.forecast("acme", days=3, stores=[1], families=[rows["family"].iloc[0]])
    assert len(some) == 3 and set(some["store_nbr"]) == {1}
    assert "lo-80" not in some.columns
    promoted = client.forecast("acme", days=3, stores=[1], families=[rows["family"].iloc[0]],
                               promotions=some.head(1).assign(onpromotion=40))
    assert list(promoted["onpromotion"]) == [40, 0, 0]


def test_get_metrics_reports_the_interval_coverage(client):
    response = client.get_metrics("acme")
    levels = [c.level for c in response.coverage]
    assert levels == [50.0, 80.0, 95.0]
    assert all(0 <= c.coverage <= 1 and c.mean_width > 0 for c in response.coverage)
    frame = client.coverage_frame("acme")
    assert list(frame["level"]) == levels


def test_turnover_days_of_supply_from_the_forecast(client, horizon):
    series = horizon.groupby(["store_nbr", "family"], sort=False)["sales"].apply(np.asarray)
    busy = [k for k, v in series.items() if v[:3].min() > 1][:4]
    (a, da), (b, _), (c, _), (d, dd) = [(k, series[k]) for k in busy]
    inventory = pd.DataFrame({
        "store_nbr": [a[0], b[0], c[0], d[0]], "family": [a[1], b[1], c[1], d[1]],
        # a: out half-way through day 3; b: lasts past the horizon; c: nothing on hand;
        # d: day 1's demand, then a receipt on day 2 covering day 2 and half of day 3.
        "on_hand": [da[0] + da[1] + 0.5 * da[2], 1e9, 0.0, dd[0]]})
    receipts = pd.DataFrame({"date": ["2017-08-17"], "store_nbr": [d[0]], "family": [d[1]],
                             "quantity": [dd[1] + 0.5 * dd[2]]})
    out = client.turnover("acme", inventory, receipts=receipts, lead_time_days=5)
    assert out.attrs == {"model_version": "v1", "days": 16, "lead_time_days": 5,
                         "first_date": "2017-08-16"}
    np.testing.assert_allclose(out["days_of_supply"], [2.5, 16.0, 0.0, 2.5], rtol=1e-9)
    assert list(out["beyond_horizon"]) == [False, True, False, False]
    np.testing.assert_allclose(out["demand"], [series[k].sum() for k in busy], rtol=1e-9)
    np.testing.assert_allclose(out["receipts"], [0, 0, 0, dd[1] + 0.5 * dd[2]])
    assert out["turnover"][0] == pytest.approx(da.sum() / inventory["on_hand"][0])
    assert np.isnan(out["turnover"][2])
    risk = out["stockout_probability"]
    assert risk[1] == 0.0 and risk[2] == 1.0 and risk[0] > 0.5


def _status(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(ForecastClientError) as info:
        call()
    return info.value.code, str(info.value)


@pytest.mark.parametrize("kwargs, code, message", [
    ({"days": 0}, grpc.StatusCode.INVALID_ARGUMENT, "days: must be between 1 and 366, got 0"),
    ({"days": 400}, grpc.StatusCode.INVALID_ARGUMENT, "days: must be between 1 and 366"),
    ({"days": 3, "stores": [99]}, grpc.StatusCode.INVALID_ARGUMENT,
     "store_nbr: 99 is not in the model"),
    ({"days": 3, "families": ["TOYS"]}, grpc.StatusCode.INVALID_ARGUMENT,
     "family: 'TOYS' is not in the model"),
    ({"days": 300}, grpc.StatusCode.RESOURCE_EXHAUSTED,
     ("a Forecast answer (24 series x 300 days; ask fewer days or filter stores and families) "
     "is over the limit of 5,000 rows (got 7,200 rows)")),
    ({"days": 3, "promotions": pd.DataFrame({"date": ["2017-09-30"], "store_nbr": [1],
                                             "family": ["BEVERAGES"], "onpromotion": [1]})},
     grpc.StatusCode.INVALID_ARGUMENT, ("promotions: row 1 (day 2017-09-30, store_nbr 1, "
                                       "family 'BEVERAGES') is not a series and day")),
])
def test_bad_forecast_requests(client, kwargs, code, message):
    got_code, got = _status(lambda: client.forecast("acme", **kwargs))
    assert got_code == code and message in got


def test_bad_levels_are_refused_by_every_call(client, gateway):
    request = pb.ForecastRequest(retailer="acme", days=2, levels=[150])
    got_code, got = _status(lambda: client._unary(client._stub.Forecast, request, 10))
    assert got_code == grpc.StatusCode.INVALID_ARGUMENT
    assert "levels: 150 is not a level in percent from 1 to 99" in got
    predict = pb.PredictRequest(retailer="acme", levels=[80, 80],
                                rows=pb.RowBatch(day=[17394], store_nbr=[1], family=["BEVERAGES"]))
    got_code, got = _status(lambda: client._unary(client._stub.Predict, predict, 10))
    assert got_code == grpc.StatusCode.INVALID_ARGUMENT and "each level may be given once" in got


@pytest.mark.parametrize("inventory, receipts, extra, message", [
    ({"store_nbr": [1, 99], "family": ["BEVERAGES"] * 2, "on_hand": [1, 1]}, None, {},
     "unknown series (store_nbr=99, family='BEVERAGES') is not in the model (rows 2)"),
    ({"store_nbr": [1, 2], "family": ["BEVERAGES"] * 2, "on_hand": [5, -1]}, None, {},
     "column 'on_hand': must be >= 0 (rows 2)"),
    ({"store_nbr": [1, 1], "family": ["BEVERAGES"] * 2, "on_hand": [5, 1]}, None, {},
     "each series may appear only once (rows 1, 2)"),
    ({"store_nbr": [1], "family": ["BEVERAGES"], "on_hand": [5]},
     {"date": ["2017-08-10"], "store_nbr": [1], "family": ["BEVERAGES"], "quantity": [3]}, {},
     "a receipt must arrive on or after the first forecast day (2017-08-16) (rows 1)"),
    ({"store_nbr": [1], "family": ["BEVERAGES"], "on_hand": [5]}, None,
     {"days": 5, "lead_time_days": 9}, "lead_time_days: must be between 1 and days (5), got 9"),
])
def test_bad_inventory_is_named(client, inventory, receipts, extra, message):
    got_code, got = _status(lambda: client.turnover(
        "acme", pd.DataFrame(inventory),
        receipts=None if receipts is None else pd.DataFrame(receipts), **extra))
    assert got_code == grpc.StatusCode.INVALID_ARGUMENT and message in got


def test_a_model_without_intervals_says_so(local_gateway):
    gw = local_gateway
    gw.server.service.models.import_model(Tenant("old"), GOLDEN_V1)
    with ForecastClient(target=gw.target, api_key=gw.api_key("old")) as client:
        points = client.forecast("old", days=2)
        assert len(points) > 0 and (points["sales"] >= 0).all()
        code, message = _status(lambda: client.forecast("old", days=2, levels=(80,)))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert "saved without prediction intervals" in message and "retrain" in message
        first = points.head(1)
        out = client.turnover("old", first[["store_nbr", "family"]].assign(on_hand=10.0))
        assert out["days_of_supply"][0] > 0 and np.isnan(out["stockout_probability"][0])
        assert len(client.coverage_frame("old")) == 0
