"""Charts a planner reads: one series' recent history, forecast and interval band; each family's
error, model against baseline; days of supply of a store's families.

Each function takes what the SDK returns (DataFrames, a `GetMetricsResponse`) and returns a
matplotlib `Figure`, drawn with the Agg backend and without pyplot, so nothing opens a window
and nothing global changes; `save_png` writes it. Needs the `plot` extra
(`pip install 'forecast-client[plot]'`, which brings matplotlib and pandas).

The artists carry labels (`history`, `forecast`, `80% interval`, `model`, `baseline`, ...) so a
caller can read the plotted data back, e.g. `fig.axes[0].get_lines()`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_client.extras import require

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

#: What to install when matplotlib is missing.
#: The metrics `metrics_figure` can draw (lower is better for each).
METRICS = ("rmsle", "rmse", "mae", "wape")
#: Figure size in inches; at the default dpi of 100 a PNG is 1000 x 500 pixels.
FIGSIZE = (10.0, 5.0)
DPI = 100
_COLORS = {"history": "#4d4d4d", "forecast": "#1f77b4", "model": "#1f77b4",
           "baseline": "#bbbbbb", "short": "#d62728", "enough": "#2ca02c", "beyond": "#98df8a"}


def require_matplotlib() -> None:
    """ImportError with the install hint when matplotlib is missing."""
    require("matplotlib", "plotting")


def _figure(height: float = FIGSIZE[1]) -> Figure:
    require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(FIGSIZE[0], height), dpi=DPI, layout="constrained")


def save_png(fig: Figure, dest: str | Path | BinaryIO, *, dpi: int = DPI) -> None:
    """Write `fig` as a PNG to a path or a binary file object (Agg backend)."""
    fig.savefig(dest, format="png", dpi=dpi)


def _series(frame: pd.DataFrame, store_nbr: int, family: str) -> pd.DataFrame:
    pd = require("pandas", "plotting")

    missing = [c for c in ("date", "store_nbr", "family", "sales") if c not in frame.columns]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)}")
    rows = frame[(frame["store_nbr"] == store_nbr) & (frame["family"].astype(str) == family)]
    rows = rows.assign(date=pd.to_datetime(rows["date"]))
    return rows.sort_values("date")


def _levels(frame: pd.DataFrame) -> list[float]:
    """The levels of the frame's lo-<level>/hi-<level> columns, widest first."""
    levels = []
    for column in frame.columns:
        if str(column).startswith("lo-") and f"hi-{str(column)[3:]}" in frame.columns:
            levels.append(float(str(column)[3:]))
    return sorted(levels, reverse=True)


def forecast_figure(forecast: pd.DataFrame, *, store_nbr: int, family: str,
                    history: pd.DataFrame | None = None, history_days: int = 56) -> Figure:
    """One series: its last `history_days` days of sales (from `history`, a frame in the data
    schema, when given), the forecast (`sales`) and a band per interval level (`lo-80`/`hi-80`
    columns, as `ForecastClient.forecast` and `predict_frame` return them with `levels`).

    Raises ValueError when the series has no forecast rows."""
    pd = require("pandas", "plotting")

    ahead = _series(forecast, store_nbr, family)
    if ahead.empty:
        raise ValueError(f"no forecast for store {store_nbr}, family {family!r}")
    fig = _figure()
    ax = fig.add_subplot()
    if history is not None:
        past = _series(history, store_nbr, family)
        past = past[past["date"] < ahead["date"].min()]
        if history_days > 0 and not past.empty:
            past = past[past["date"] > past["date"].max() - pd.Timedelta(days=history_days)]
        ax.plot(past["date"], past["sales"], color=_COLORS["history"], linewidth=1.2,
                label="history")
    levels = _levels(ahead)
    for i, lv in enumerate(levels):
        name = f"{lv:g}"
        ax.fill_between(ahead["date"], ahead[f"lo-{name}"], ahead[f"hi-{name}"],
                        color=_COLORS["forecast"], alpha=0.15 + 0.15 * i, linewidth=0,
                        label=f"{name}% interval")
    ax.plot(ahead["date"], ahead["sales"], color=_COLORS["forecast"], linewidth=2,
            marker="o", markersize=3, label="forecast")
    ax.axvline(ahead["date"].min(), color="#999999", linestyle=":", linewidth=1)
    ax.set_title(f"store {store_nbr} · {family}: {len(ahead)} days of forecast")
    ax.set_ylabel("daily unit sales")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    return fig


def metrics_figure(metrics: pb.GetMetricsResponse, *, metric: str = "rmsle") -> Figure:
    """Each family's test-window error: the final model's bar next to the baseline's (lower is
    better), from `ForecastClient.get_metrics`. Raises ValueError for an unknown metric or an
    evaluation without per-family scores."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    final = next((e for e in metrics.evaluations if e.final), None)
    baseline = next((e for e in metrics.evaluations if e.baseline), None)
    if final is None or baseline is None or not final.per_family:
        raise ValueError(f"model {metrics.model.version} has no per-family evaluation to plot")
    families = sorted(final.per_family)
    model_values = [getattr(final.per_family[f], metric) for f in families]
    base_values = [getattr(baseline.per_family[f], metric) if f in baseline.per_family
                   else math.nan for f in families]
    fig = _figure(max(3.0, 0.32 * len(families) + 1.5))
    ax = fig.add_subplot()
    y = list(range(len(families)))
    ax.barh([v - 0.2 for v in y], model_values, height=0.4, color=_COLORS["model"],
            label=f"model {metrics.model.version} ({final.name})")
    ax.barh([v + 0.2 for v in y], base_values, height=0.4, color=_COLORS["baseline"],
            label=f"baseline ({baseline.name})")
    ax.set_yticks(y, families)
    ax.invert_yaxis()
    ax.set_xlabel(f"{metric.upper()} on {metrics.test_start_date} .. {metrics.test_end_date} "
                  "(lower is better)")
    ax.set_title(f"error per family: model {metrics.model.version} vs baseline")
    ax.grid(True, axis="x", alpha=0.3)
    fig.legend(loc="outside lower center", ncols=2)
    return fig


def supply_figure(turnover: pd.DataFrame, *, store_nbr: int, lead_time_days: float | None = None,
                  horizon_days: float | None = None) -> Figure:
    """Days of supply of each family of one store (from `ForecastClient.turnover`): red where
    the stock runs out within the lead time, light green where it lasts past the horizon
    ("more than N days"), green otherwise; a dotted line marks the lead time.

    Raises ValueError when the store has no rows."""
    rows = turnover[turnover["store_nbr"] == store_nbr].sort_values("days_of_supply")
    if rows.empty:
        raise ValueError(f"no days of supply for store {store_nbr}")
    families: Sequence[str] = rows["family"].astype(str).tolist()
    supply = rows["days_of_supply"].astype(float).tolist()
    beyond = (rows["beyond_horizon"].astype(bool).tolist() if "beyond_horizon" in rows
              else [False] * len(rows))
    colors = [_COLORS["beyond"] if b else
              _COLORS["short"] if lead_time_days is not None and d < lead_time_days else
              _COLORS["enough"] for d, b in zip(supply, beyond)]
    fig = _figure(max(3.0, 0.32 * len(families) + 2.0))
    ax = fig.add_subplot()
    bars = ax.barh(range(len(families)), supply, color=colors, gid="days of supply")
    ax.bar_label(bars, labels=[f"> {d:g}" if b else f"{d:.1f}" for d, b in zip(supply, beyond)],
                 padding=3, fontsize=8)
    ax.set_yticks(range(len(families)), families)
    ax.invert_yaxis()
    from matplotlib.artist import Artist
    from matplotlib.patches import Patch

    handles: list[Artist] = [Patch(color=_COLORS["enough"], label="lasts past the lead time"),
               Patch(color=_COLORS["beyond"], label="lasts past the horizon")]
    if lead_time_days is not None:
        handles.insert(0, Patch(color=_COLORS["short"], label="runs out within the lead time"))
        handles.append(ax.axvline(lead_time_days, color=_COLORS["short"], linestyle=":",
                                  label=f"lead time ({lead_time_days:g} days)"))
    ax.set_xlim(0, max([*supply, horizon_days or 0, lead_time_days or 0]) * 1.15)
    ax.set_xlabel("days until the forecast demand uses up the stock on hand (and receipts)")
    ax.set_title(f"store {store_nbr}: days of supply per family")
    ax.grid(True, axis="x", alpha=0.3)
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    return fig


def live_error_figure(live: pd.DataFrame, *, metric: str = "rmsle") -> Figure:
    """The live error over time: each trained version's daily `metric` on the days its served
    forecasts were settled by actuals, next to the seasonal-naive baseline's on the same cells,
    from `ForecastClient.monitoring_frame(retailer, by="date")`. Raises ValueError for an
    unknown metric or a frame without scored days."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if live.empty:
        raise ValueError("no served forecast has been scored yet: send actuals for the days "
                         "that were forecast")
    fig = _figure()
    ax = fig.add_subplot()
    # Versions that served the same forecasts (a retrain that changed nothing) score the same
    # on every day: one line for them, not lines drawn exactly over each other.
    lines: dict[tuple, list[str]] = {}
    frames: dict[tuple, pd.DataFrame] = {}
    for version, rows in live.sort_values("date").groupby("model_version", sort=True):
        key = tuple(zip(rows["date"].astype(str), rows[metric].round(12), strict=True))
        lines.setdefault(key, []).append(str(version))
        frames.setdefault(key, rows)
    for key, versions in lines.items():
        rows = frames[key]
        cells = int(rows["count"].sum())
        name = (f"model {versions[0]}" if len(versions) == 1 else
                f"models {', '.join(versions)} (the same forecasts)")
        ax.plot(rows["date"], rows[metric], marker="o", markersize=3, linewidth=1.6,
                label=f"{name}: {cells:,} cells over {len(rows)} days")
        ax.plot(rows["date"], rows[f"baseline_{metric}"], linestyle="--", linewidth=1.2,
                color=_COLORS["baseline"], label=f"seasonal naive, on {name}'s cells")
    ax.set_ylabel(f"daily {metric.upper()} (lower is better)")
    ax.set_title("live error: served forecasts against actual sales")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    fig.legend(loc="outside lower center", ncols=min(2, 2 * len(lines)))   # off the data
    fig.autofmt_xdate()
    return fig
