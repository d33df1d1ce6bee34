"""`forecast actuals` and `forecast monitor`: feed new sales, then see how the live model does."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from forecast_client._gen.forecastapi.v1 import monitoring_service_pb2 as mpb
from forecast_client.cli.messages import EXIT_OK, UsageError
from forecast_client.cli.output import score, table, timestamp, to_json
from forecast_client.cli.parsing import Commands, add_json, positive_int
from forecast_client.cli.shadow import trial_line, write_comparison
from forecast_client.client import ForecastClient


def actuals_lines(report: mpb.ActualsReport) -> list[str]:
    """What an upload changed, in words."""
    lines = [(f"{report.rows:,} rows, {report.first_date} .. {report.last_date}: "
              f"history now ends on {report.history_end_date} ({report.new_days} new days)")]
    if report.corrected_rows:
        lines.append(f"{report.corrected_rows:,} rows corrected known days")
    if report.filled_cells:
        missing = ", ".join(report.dates_missing_in_every_series) or "none"
        lines.append(f"{report.filled_cells:,} missing (series, day) cells filled with zero sales "
                     f"(days missing in every series: {missing})")
    if report.unknown_series_count:
        lines.append(f"{report.unknown_series_count} series the model does not know (kept for "
                     f"the next training): {', '.join(report.unknown_series)}")
    return lines


def drift_lines(drift: mpb.DriftReport) -> list[str]:
    """A drift report, in words."""
    head = (f"drift: recent {drift.recent_start_date} .. {drift.recent_end_date} vs training "
            f"{drift.reference_start_date} .. {drift.reference_end_date}: largest PSI "
            f"{drift.score:.3f}")
    if not drift.alert:
        return [head + " (no drift)"]
    lines = [head + " (DRIFT)"]
    lines += [f"  {d.family}: {d.feature} PSI {d.psi:.3f}" for d in drift.drifted[:10]]
    lines += [f"  moved: store {s.store_nbr} {s.family}: mean {s.reference_mean:.2f} -> "
              f"{s.recent_mean:.2f}" for s in drift.moved_series[:5]]
    return lines


def cmd_actuals(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Append FILE to the retailer's history; print what changed."""
    if not Path(args.file).is_file():
        raise UsageError(f"{args.file}: no such file")
    answer = client.append_actuals(args.retailer, args.file, correct=args.correct)
    if args.json:
        out.write(to_json(answer) + "\n")
        return EXIT_OK
    out.writelines(line + "\n" for line in actuals_lines(answer.report))
    out.write(f"model {answer.model_version} is live (same model, history moved forward)\n")
    if answer.dataset_id:
        out.write(f"training data + actuals: dataset {answer.dataset_id} "
                  f"(forecast train --dataset {answer.dataset_id})\n")
    if answer.HasField("shadow"):
        out.write(trial_line(answer.shadow) + "\n")
        out.write(f"  {answer.shadow.reason}\n")
    if answer.HasField("drift"):
        out.writelines(line + "\n" for line in drift_lines(answer.drift))
    _advice(answer.retrain_recommended, answer.evidence, out)
    return EXIT_OK


def _advice(recommended: bool, evidence: Sequence[str], out: TextIO) -> None:
    if recommended:
        out.write("retrain recommended:\n")
        out.writelines(f"  {reason}\n" for reason in evidence)


def cmd_monitor(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """The monitoring report (or a drift check with --drift)."""
    if args.drift:
        drift = client.check_drift(args.retailer, window_days=args.window_days or 0)
        if args.json:
            out.write((to_json(drift) if drift is not None else "null") + "\n")
        elif drift is None:
            out.write("no actuals yet: send some with `forecast actuals`\n")
        else:
            out.writelines(line + "\n" for line in drift_lines(drift))
        return EXIT_OK
    report = client.monitoring(args.retailer)
    if args.json:
        out.write(to_json(report) + "\n")
        return EXIT_OK
    out.write(f"live model {report.live_model_version or '-'}, history ends "
              f"{report.history_end_date or '-'}; {report.served_records:,} served forecasts "
              "recorded\n")
    if report.HasField("last_actuals"):
        out.write(f"last actuals {timestamp(report.last_actuals_time)}: "
                  f"{actuals_lines(report.last_actuals)[0]}\n")
    rows = []
    for v in report.versions:
        name = v.model_version + (" *" if v.live else "")
        rows.append([name, "test", "-", score(v.test.rmsle), score(v.test_baseline.rmsle),
                     score(v.test.wape), score(v.test.bias, 2)])
        for block in ([v.live_overall] if v.HasField("live_overall") else []) + list(
                v.live_per_step if args.per_step else []):
            rows.append([name, "live" if not block.step else f"step {block.step}",
                         f"{block.count:,}", score(block.model.rmsle), score(block.baseline.rmsle),
                         score(block.model.wape), score(block.model.bias, 2)])
    table(rows, ["version", "window", "forecasts", "rmsle", "baseline rmsle", "wape", "bias"], out)
    if report.HasField("shadow"):
        write_comparison(report.shadow, out)
    if report.HasField("drift"):
        out.writelines(line + "\n" for line in drift_lines(report.drift))
    _advice(report.retrain_recommended, list(report.evidence), out)
    return EXIT_OK


def register(commands: Commands) -> None:
    """Add `actuals` and `monitor`."""
    p = commands.add("actuals", "append new days of sales to the live model's history",
                     "Append new days of sales (CSV or Parquet of the upload schema). The live "
                     "model moves forward to the latest day without a retrain, the forecasts "
                     "served for those days are scored and drift is checked. Days already known "
                     "are refused unless --correct.", cmd_actuals)
    p.add_argument("file", help="the .csv or .parquet file of new days")
    p.add_argument("--correct", action="store_true",
                   help="replace days the history already holds instead of refusing them")
    add_json(p, "print the answer as JSON")

    p = commands.add("monitor", "show live accuracy, the last actuals and drift",
                     "Live accuracy of the live model (served forecasts against actuals) next "
                     "to the seasonal-naive baseline and its own test-window scores; the last "
                     "actuals; the last drift check; whether a retrain is recommended; and "
                     "a shadow trial's live model vs the version in shadow per horizon step, "
                     "on the cells both forecast.",
                     cmd_monitor)
    p.add_argument("--per-step", action="store_true", help="also show each horizon step")
    p.add_argument("--drift", action="store_true", help="run a drift check now and show it")
    p.add_argument("--window-days", type=positive_int, metavar="DAYS",
                   help="with --drift: days of recent actuals to compare (default 28)")
    add_json(p, "print the report as JSON")
