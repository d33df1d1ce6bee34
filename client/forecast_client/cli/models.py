"""Model versions: `forecast metrics`, `models`, `promote`, `approve` and `reject`."""

from __future__ import annotations

import argparse
from typing import TextIO

from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_client.cli.messages import EXIT_OK
from forecast_client.cli.output import score, table, timestamp, to_json, write_list
from forecast_client.cli.parsing import Commands, add_json, add_model_version
from forecast_client.client import ForecastClient


def cmd_metrics(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """The test-window metrics of each member and the baseline, and interval coverage."""
    m = client.get_metrics(args.retailer, model_version=args.model_version)
    if args.json:
        out.write(to_json(m) + "\n")
        return EXIT_OK
    out.write(f"model {m.model.version} (job {m.model.job_id or '-'}, dataset "
              f"{m.model.dataset_id or '-'}, data {m.model.data_start_date} .. "
              f"{m.model.data_end_date})\n")
    out.write(f"test window {m.test_start_date} .. {m.test_end_date} "
              f"({m.horizon} days after {m.origin_date})\n")
    rows = [[e.name + (" (final)" if e.final else "") + (" (baseline)" if e.baseline else ""),
             score(e.overall.rmsle), score(e.overall.rmse, 3), score(e.overall.mae, 3),
             score(e.overall.wape), f"{e.overall.bias:+.4f}", score(e.overall.mase, 3)]
            for e in m.evaluations]
    table(rows, ["MODEL", "RMSLE", "RMSE", "MAE", "WAPE", "BIAS", "MASE"], out)
    if m.coverage:
        out.write("\nprediction intervals on the test window:\n")

        def third(c: pb.IntervalCoverage, name: str) -> str:
            value = c.coverage_per_third.get(name)
            return "-" if value is None else f"{value * 100:.1f}%"

        table([[f"{c.level:g}%", f"{c.coverage * 100:.1f}%",
                f"{(c.coverage * 100 - c.level):+.1f}", third(c, "low"), third(c, "mid"),
                third(c, "high"), f"{c.mean_width:.3f}", score(c.mean_interval_score, 3)]
               for c in m.coverage],
              ["LEVEL", "COVERAGE", "VS NOMINAL", "LOW THIRD", "MID THIRD", "HIGH THIRD",
               "MEAN WIDTH", "INTERVAL SCORE"], out)
    if args.per_family:
        for e in m.evaluations:
            out.write(f"\n{e.name} per family:\n")
            table([[f, score(s.rmsle), score(s.rmse, 3), score(s.wape)]
                   for f, s in sorted(e.per_family.items())],
                  ["FAMILY", "RMSLE", "RMSE", "WAPE"], out)
    return EXIT_OK


def cmd_models(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """List model versions; * marks the live one."""
    write_list(client.list_models(args.retailer), args.json, out,
               ["LIVE", "VERSION", "KIND", "FINAL", "DATA", "JOB", "CREATED"], _model_row)
    return EXIT_OK


def _model_row(m: pb.ModelVersion) -> list[str]:
    return ["*" if m.live else ("shadow" if m.shadow else ""), m.version, m.model_kind or "-", m.final_model or "-",
            f"{m.data_start_date} .. {m.data_end_date}", m.job_id or "-",
            timestamp(m.create_time)]


def cmd_promote(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Make a version live, whatever the promotion gate decided."""
    model = client.set_live_model(args.retailer, args.version)
    out.write(f"model {model.version} is live for {model.retailer}\n")
    return EXIT_OK


def cmd_approve(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Approve or reject a version in the backend's model registry (no live switch)."""
    change = client.approve_model if args.command == "approve" else client.reject_model
    answer = change(args.retailer, args.version, description=args.description)
    word = "approved" if answer.approval == pb.MODEL_APPROVAL_APPROVED else "rejected"
    out.write(f"model {answer.model.version} of {answer.model.retailer} is {word}"
              + (f" ({answer.registry_entry})" if answer.registry_entry else "") + "\n")
    return EXIT_OK


def register(commands: Commands) -> None:
    """Add `metrics`, `models`, `promote`, `approve` and `reject`."""
    p = commands.add("metrics", "show the live model's test metrics next to the baseline",
                     "The live model's (or --model-version's) error on its test window, each "
                     "member next to the seasonal-naive baseline, and how often the actual sales "
                     "fell inside each prediction interval (when the model has intervals).",
                     cmd_metrics)
    add_model_version(p)
    p.add_argument("--per-family", action="store_true", help="also show metrics per family")
    add_json(p, "print the full evaluation as JSON")

    p = commands.add("models", "list model versions (the live one is marked *)",
                     handler=cmd_models)
    add_json(p)

    p = commands.add("promote", "make a model version live (forced promotion or rollback)",
                     "Make VERSION the live model now, whatever the promotion gate decided when "
                     "it was trained; also a rollback to an older version.", cmd_promote)
    p.add_argument("version", metavar="VERSION", help="the model version, e.g. v2")

    for name, verb in (("approve", "Approve"), ("reject", "Reject")):
        p = commands.add(name, f"{name} a model version in the backend's model registry",
                         f"{verb} VERSION in the backend's model registry (the SageMaker "
                         "backend: the version's model package in the retailer's model package "
                         "group). This is a label for the release process: it does not change "
                         "the live model (forecast promote does). Backends without a model "
                         "registry (local, docker) refuse it.", cmd_approve)
        p.add_argument("version", metavar="VERSION", help="the model version, e.g. v2")
        p.add_argument("--description", default="", help="why, kept with the approval "
                       "(at most 1000 characters)")
