"""The local backend's model cache: bounded by `model_cache_size`, with nothing left behind for
the models it dropped (their load locks included)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from forecast_client.rows import make_batch
from forecast_gateway.api.servicer import rows_from_pb
from forecast_gateway.backends.local import LocalBackend
from forecast_gateway.domain import ModelRef

GOLDEN = Path(__file__).resolve().parents[2] / "forecasting" / "fixtures"


def test_cache_is_bounded_and_forgets_dropped_models(tmp_path: Path) -> None:
    request = json.loads((GOLDEN / "artifact_v1_expected.json").read_text())["request"]
    rows = rows_from_pb(make_batch(request["date"], request["store_nbr"], request["family"],
                                   request["onpromotion"]))
    refs = []
    for version in ("v1", "v2", "v3"):
        shutil.copytree(GOLDEN / "artifact_v1", tmp_path / version)
        refs.append(ModelRef("shop", version, tmp_path / version))

    backend = LocalBackend(model_cache_size=2)
    try:
        forecasts = [backend.predict(ref, rows) for ref in refs]
        for got in forecasts[1:]:
            np.testing.assert_array_equal(got, forecasts[0])
        assert list(backend._cache) == [refs[1].path, refs[2].path], "least recently used out"
        assert set(backend._load_locks) <= set(backend._cache)

        backend.unload_model(refs[2])
        assert list(backend._cache) == [refs[1].path]
        assert set(backend._load_locks) <= {refs[1].path}
        np.testing.assert_array_equal(backend.predict(refs[2], rows), forecasts[0])  # reloads
    finally:
        backend.close("test over")


def test_a_large_forecast_split_across_helper_threads_gives_the_recorded_numbers() -> None:
    """`--wide-predict-threads` / `--wide-predict-series`: a request of every series x 40 days
    of the version-3 golden artifact, split across 3 threads, with and without levels."""
    import pandas as pd

    expected = json.loads((GOLDEN / "bulk_forecast_expected.json").read_text())["3"]
    ref = ModelRef("shop", "v3", GOLDEN / "artifact_v3")
    from forecasting.predictor import Predictor

    rows = Predictor.load(ref.path).future_rows(expected["days"])
    i = np.arange(len(rows))
    promo = (i * 7 % 5 == 0) * (i % 4)   # make_golden_artifact.bulk_request's promotions
    columns = rows_from_pb(make_batch(pd.to_datetime(rows["date"]), rows["store_nbr"].to_numpy(),
                                      rows["family"], promo))
    backend = LocalBackend(wide_predict_threads=3, wide_predict_series=2)
    try:
        np.testing.assert_allclose(backend.predict(ref, columns), expected["forecasts"],
                                   rtol=1e-6)
        values, bounds = backend.predict_intervals(ref, columns, [80.0])
        np.testing.assert_allclose(values, expected["forecasts"], rtol=1e-6)
        np.testing.assert_allclose(bounds[80.0][0], expected["bounds_80"][0], rtol=1e-6)
    finally:
        backend.close("test over")
