"""The SDK's charts (forecast_client.plots): what each figure draws, read back from its artists,
and the PNG it writes."""

from __future__ import annotations

import io
import struct

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import pytest
from forecast_client import pb, plots
from matplotlib.colors import to_rgba

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; fails unless `data` is a PNG."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def color_share(data: bytes, color: str, tolerance: float = 0.02) -> float:
    """The share of the PNG's pixels that are `color` (decoded with matplotlib/Pillow)."""
    import matplotlib.image as mimage

    pixels = mimage.imread(io.BytesIO(data), format="png")[..., :3]
    return float((np.abs(pixels - np.array(to_rgba(color)[:3])).max(axis=-1) < tolerance).mean())


def by_label(artists, label: str):
    found = [a for a in artists if a.get_label() == label]
    assert len(found) == 1, [a.get_label() for a in artists]
    return found[0]


@pytest.fixture()
def history() -> pd.DataFrame:
    days = pd.date_range("2017-06-01", "2017-08-15")
    rows = [(d.strftime("%Y-%m-%d"), s, f, float(i % 7 + s)) for s in (1, 2) for f in ("A", "B")
            for i, d in enumerate(days)]
    return pd.DataFrame(rows, columns=["date", "store_nbr", "family", "sales"])


@pytest.fixture()
def forecast() -> pd.DataFrame:
    days = pd.date_range("2017-08-16", periods=16).strftime("%Y-%m-%d")
    frame = pd.DataFrame({"date": np.tile(days, 2), "store_nbr": 1,
                          "family": np.repeat(["A", "B"], 16),
                          "sales": np.arange(32, dtype=float)})
    frame["lo-80"], frame["hi-80"] = frame["sales"] - 1, frame["sales"] + 1
    frame["lo-95"], frame["hi-95"] = frame["sales"] - 2, frame["sales"] + 3
    return frame


def test_forecast_figure_draws_history_forecast_and_bands(history, forecast) -> None:
    fig = plots.forecast_figure(forecast, store_nbr=1, family="B", history=history,
                                history_days=28)
    ax = fig.axes[0]
    past = by_label(ax.get_lines(), "history").get_xydata()
    ahead = by_label(ax.get_lines(), "forecast").get_xydata()
    expected_past = history[(history.store_nbr == 1) & (history.family == "B")].tail(28)
    assert np.allclose(past[:, 1], expected_past["sales"])
    assert mdates.num2date(past[0, 0]).date().isoformat() == "2017-07-19"
    assert mdates.num2date(past[-1, 0]).date().isoformat() == "2017-08-15"
    assert np.allclose(ahead[:, 1], np.arange(16, 32))
    assert mdates.num2date(ahead[0, 0]).date().isoformat() == "2017-08-16"
    for level, lo, hi in (("80", -1, 1), ("95", -2, 3)):
        band = by_label(ax.collections, f"{level}% interval").get_paths()[0].vertices
        assert band[:, 1].min() == pytest.approx(16 + lo) and band[:, 1].max() == pytest.approx(31 + hi)
    assert "store 1" in ax.get_title() and "B" in ax.get_title()
    assert tuple(fig.get_size_inches() * fig.dpi) == (1000, 500)

    buf = io.BytesIO()
    plots.save_png(fig, buf)
    assert png_size(buf.getvalue()) == (1000, 500)
    assert color_share(buf.getvalue(), "#1f77b4") > 0.001  # the forecast line is in the picture


def test_forecast_figure_without_history_or_intervals(forecast) -> None:
    fig = plots.forecast_figure(forecast[["date", "store_nbr", "family", "sales"]],
                                store_nbr=1, family="A")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")] \
        == ["forecast"]
    assert len(ax.collections) == 0
    with pytest.raises(ValueError, match="no forecast for store 9"):
        plots.forecast_figure(forecast, store_nbr=9, family="A")


def _metrics() -> pb.GetMetricsResponse:
    m = pb.GetMetricsResponse(test_start_date="2017-07-31", test_end_date="2017-08-15")
    m.model.version = "v3"
    model = m.evaluations.add(name="xgboost", final=True)
    base = m.evaluations.add(name="seasonal_naive_7", baseline=True)
    for i, family in enumerate(["GROCERY I", "BREAD/BAKERY", "AUTOMOTIVE"]):
        model.per_family[family].rmsle = 0.3 + i / 10
        model.per_family[family].wape = 0.2 + i / 10
        base.per_family[family].rmsle = 0.5 + i / 10
        base.per_family[family].wape = 0.4
    return m


def test_metrics_figure_model_next_to_baseline_per_family() -> None:
    fig = plots.metrics_figure(_metrics())
    ax = fig.axes[0]
    families = [t.get_text() for t in ax.get_yticklabels()]
    assert families == ["AUTOMOTIVE", "BREAD/BAKERY", "GROCERY I"]  # sorted
    model, base = ax.containers
    assert model.get_label() == "model v3 (xgboost)" and base.get_label().startswith("baseline")
    assert [round(b.get_width(), 6) for b in model] == [0.5, 0.4, 0.3]
    assert [round(b.get_width(), 6) for b in base] == [0.7, 0.6, 0.5]
    assert "RMSLE" in ax.get_xlabel()
    wape = plots.metrics_figure(_metrics(), metric="wape").axes[0]
    assert [round(b.get_width(), 6) for b in wape.containers[1]] == [0.4, 0.4, 0.4]
    with pytest.raises(ValueError, match="metric must be one of"):
        plots.metrics_figure(_metrics(), metric="r2")
    empty = pb.GetMetricsResponse()
    empty.evaluations.add(name="xgboost", final=True)
    with pytest.raises(ValueError, match="no per-family evaluation"):
        plots.metrics_figure(empty)


def test_supply_figure_bars_colours_and_labels() -> None:
    turnover = pd.DataFrame({
        "store_nbr": [1, 1, 1, 2], "family": ["A", "B", "C", "A"],
        "days_of_supply": [3.5, 16.0, 9.25, 1.0], "beyond_horizon": [False, True, False, False],
        "stockout_probability": [0.9, 0.0, 0.2, 1.0]})
    fig = plots.supply_figure(turnover, store_nbr=1, lead_time_days=7, horizon_days=16)
    ax = fig.axes[0]
    (bars,) = ax.containers
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A", "C", "B"]  # shortest first
    assert [b.get_width() for b in bars] == [3.5, 9.25, 16.0]
    assert [b.get_facecolor() for b in bars] == [to_rgba("#d62728"), to_rgba("#2ca02c"),
                                                 to_rgba("#98df8a")]
    assert [t.get_text() for t in ax.texts] == ["3.5", "9.2", "> 16"]
    lead = [line for line in ax.get_lines() if line.get_label() == "lead time (7 days)"]
    assert lead and lead[0].get_xdata()[0] == 7
    buf = io.BytesIO()
    plots.save_png(fig, buf)
    width, height = png_size(buf.getvalue())
    assert width == 1000 and height == round(fig.get_size_inches()[1] * fig.dpi)
    assert color_share(buf.getvalue(), "#d62728") > 0.001
    with pytest.raises(ValueError, match="no days of supply for store 5"):
        plots.supply_figure(turnover, store_nbr=5)


def test_live_error_figure_merges_identical_versions_counts_cells_and_keeps_the_legend_off() -> None:
    days = pd.to_datetime(["2017-08-16", "2017-08-17", "2017-08-18"])

    def version(name: str, errors: list[float], count: int) -> pd.DataFrame:
        return pd.DataFrame({"model_version": name, "live": name == "v3", "date": days,
                             "count": count, "rmsle": errors, "baseline_rmsle": [0.9] * 3})

    live = pd.concat([version("v1", [0.5, 0.4, 0.45], 100), version("v2", [0.5, 0.4, 0.45], 100),
                      version("v3", [0.3, 0.35, 0.3], 50)])
    fig = plots.live_error_figure(live)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["models v1, v2 (the same forecasts): 300 cells over 3 days",
                      "seasonal naive, on models v1, v2 (the same forecasts)'s cells",
                      "model v3: 150 cells over 3 days", "seasonal naive, on model v3's cells"]
    assert ax.get_legend() is None and len(fig.legends) == 1   # below the axes, not on the data
    fig.canvas.draw()
    legend_box = fig.legends[0].get_window_extent()
    assert legend_box.y1 <= ax.get_window_extent().y0 + 1
