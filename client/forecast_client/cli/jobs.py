"""Training jobs: `forecast train`, `wait`, `jobs` and `cancel`."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import TextIO

from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_client.cli.datasets import dataset_line, upload_file
from forecast_client.cli.following import report_unsuccessful, wait_to_end
from forecast_client.cli.messages import (
    EXIT_OK,
    EXIT_SERVER,
    UsageError,
    in_cli_words,
)
from forecast_client.cli.output import score, state_name, timestamp, write_list
from forecast_client.cli.parsing import Commands, add_json, add_quiet, positive_float
from forecast_client.cli.shadow import parse_promote_after, trial_line
from forecast_client.client import PROMOTE_POLICIES, ForecastClient
from forecast_client.progress import JobProgress, ProgressLine


def parse_hp(items: Sequence[str]) -> dict[str, str]:
    """--hp KEY=VALUE items as a dict; UsageError naming the bad item."""
    hp: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--hp {item!r}: expected KEY=VALUE, e.g. --hp num_round=300")
        hp[key.strip()] = value.strip()
    return hp


def cmd_train(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Start a job (uploading --data first); with --wait, follow it to the end."""
    progress = ProgressLine(err, not args.quiet)
    hp = parse_hp(args.hp or [])
    dataset_id, data_uri = args.dataset_id, args.data_uri
    if args.data:
        ds = upload_file(client, args.retailer, "--data", args.data, progress)
        err.write(f"uploaded {dataset_line(ds)}\n")
        dataset_id = ds.dataset_id
    rule = parse_promote_after(args.promote_after, args.promote)
    job = client.train(args.retailer, dataset_id=dataset_id, data_uri=data_uri,
                       model_kind=args.model_kind, hyperparameters=hp, horizon=args.horizon,
                       promote=args.promote, promote_after=rule)
    if job.data_note:
        err.write(f"note: {job.data_note}\n")
    if not args.wait:
        out.write(f"{job.job_id}\t{state_name(job.state)}\n")
        return EXIT_OK
    err.write(f"job {job.job_id} {state_name(job.state).lower()}; waiting (Ctrl-C stops "
              "waiting, not the job)\n")
    return follow(client, args.retailer, job.job_id, args.timeout_wait, progress, out, err)


def cmd_wait(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Re-attach to a job: the same display and exit code as `train --wait`."""
    return follow(client, args.retailer, args.job_id, args.timeout_wait,
                  ProgressLine(err, not args.quiet), out, err)


def follow(client: ForecastClient, retailer: str, job_id: str, timeout_s: float | None,
           progress: ProgressLine, out: TextIO, err: TextIO) -> int:
    """Show a job's progress until it ends; print the outcome; exit 1 unless it succeeded."""
    final = wait_to_end(
        lambda: client.wait_for_job(retailer, job_id, on_update=JobProgress(progress),
                                    timeout_s=timeout_s),
        f"job {job_id}", f"forecast wait --retailer {retailer} {job_id}", timeout_s, progress,
        err)
    if isinstance(final, int):
        return final
    if report_unsuccessful(final.state, f"job {final.job_id}", final.job_id,
                           final.failure_reason, out, err):
        return EXIT_SERVER
    out.write(f"{final.job_id}\t{state_name(final.state)}\t{outcome(final)}\n")
    err.writelines(f"  {line}\n" for line in promotion_lines(final, retailer))
    for name in sorted(final.metrics):
        if name.endswith(".rmsle"):
            err.write(f"  {name} = {final.metrics[name]:.4f}\n")
    return EXIT_OK


def outcome(job: pb.TrainingJob) -> str:
    """'model v2 is live', or 'model v2 kept; v1 stays live' when the promotion gate (or
    --promote never) kept it out."""
    decision = job.promotion
    if not job.HasField("promotion") or decision.promoted:
        return f"model {job.model_version} is live"
    if decision.policy == pb.PROMOTION_POLICY_SHADOW and \
            decision.trial.state == pb.SHADOW_STATE_RUNNING:
        return f"model {job.model_version} in shadow beside {decision.champion_version}"
    if decision.champion_version:
        return f"model {job.model_version} kept; {decision.champion_version} stays live"
    return f"model {job.model_version} kept; the live model is unchanged"


def promotion_lines(job: pb.TrainingJob, retailer: str) -> list[str]:
    """The promotion decision in words: both scores, the window and the reason."""
    if not job.HasField("promotion"):
        return []
    d = job.promotion
    lines = []
    if d.metric:
        live = (f", live {d.champion_version} {score(d.champion_score)}"
                if d.champion_version and not math.isnan(d.champion_score) else "")
        window = (f" on {d.window_start_date} .. {d.window_end_date}"
                  if d.window_start_date else "")
        lines.append(f"{d.metric}: new {job.model_version} {score(d.challenger_score)}"
                     f"{live}{window} (lower is better)")
    if d.reason:
        lines.append(in_cli_words(d.reason))
    if d.HasField("trial"):
        lines.append(trial_line(d.trial))
    if not d.promoted:
        lines.append(f"make it live anyway with: forecast promote --retailer {retailer} "
                     f"{job.model_version}")
    return lines


def cmd_jobs(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """List jobs (or show one)."""
    if args.job_id:
        jobs = [client.get_job(args.retailer, args.job_id)]
    else:
        state = (pb.JobState.Value("JOB_STATE_" + args.state.upper()) if args.state
                 else pb.JOB_STATE_UNSPECIFIED)
        jobs = client.list_jobs(args.retailer, state=state, limit=args.limit)
    write_list(jobs, args.json, out,
               ["JOB", "STATE", "KIND", "DATASET", "CREATED", "PROGRESS", "MODEL", "REASON"],
               _job_row)
    return EXIT_OK


def _job_row(j: pb.TrainingJob) -> list[str]:
    reason = (j.failure_reason[:60] + ("..." if len(j.failure_reason) > 60 else "")) or "-"
    model = j.model_version or "-"
    if j.model_version and j.HasField("promotion") and not j.promotion.promoted:
        model += (" (shadow)" if j.promotion.trial.state == pb.SHADOW_STATE_RUNNING
                  else " (kept)")
    return [j.job_id, state_name(j.state), j.model_kind, j.dataset_id, timestamp(j.create_time),
            f"{j.progress * 100:.0f}%", model, reason]


def cmd_cancel(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Ask a job to stop."""
    job = client.cancel_job(args.retailer, args.job_id)
    out.write(f"{job.job_id}\t{state_name(job.state)}\tcancellation requested\n")
    return EXIT_OK


def _add_wait_flags(p: argparse.ArgumentParser, prefix: str = "") -> None:
    p.add_argument("--timeout-wait", type=positive_float, default=None, metavar="SECONDS",
                   help=f"{prefix}give up waiting after this long (the job goes on)")
    add_quiet(p)


def register(commands: Commands) -> None:
    """Add `train`, `wait`, `jobs` and `cancel`."""
    p = commands.add("train", "start a training job (optionally uploading the data first)",
                     "Start training a model. --data uploads a file first; --wait follows the "
                     "job with a live progress display and exits 1 when it fails.\n\n"
                     "--promote decides whether the new model goes live: if_better (the "
                     "default) scores the live model on the new job's test window (the same "
                     "days, the same metric) and switches only when the new one is at least as "
                     "good; always; never (switch later with `forecast promote`); shadow "
                     "serves it beside the live model and lets live actuals decide "
                     "(--promote-after; `forecast monitor` shows both). With --wait both "
                     "scores are shown.", cmd_train)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", metavar="FILE", help="upload FILE and train on it")
    src.add_argument("--dataset-id", help="train on an already uploaded dataset")
    src.add_argument("--data-uri", help="train on a file:// URI the gateway can read")
    p.add_argument("--model-kind", default="xgboost", choices=("xgboost", "lstm", "hybrid"),
                   help="model kind (default %(default)s)")
    p.add_argument("--horizon", type=int, default=0, help="forecast horizon in days (default 16)")
    p.add_argument("--hp", action="append", metavar="KEY=VALUE",
                   help="a hyperparameter, e.g. --hp num_round=300 (repeatable)")
    p.add_argument("--promote", choices=tuple(PROMOTE_POLICIES), default="if_better",
                   help="when the new model goes live (default %(default)s)")
    p.add_argument("--promote-after", metavar="RULE",
                   help="with --promote shadow: days=N,min_cells=N,margin=F (defaults 7, 100, "
                        "0): promote or reject on that much live evidence")
    p.add_argument("--wait", action="store_true", help="wait for the job, showing progress")
    _add_wait_flags(p, "with --wait: ")

    p = commands.add("wait", "follow a job until it ends (re-attach after Ctrl-C)",
                     "Show a job's progress until it ends, as `train --wait` does; exits 1 when "
                     "it fails or is cancelled.", cmd_wait)
    p.add_argument("job_id", metavar="JOB_ID", help="the job id (forecast jobs lists them)")
    _add_wait_flags(p)

    p = commands.add("jobs", "list training jobs (newest first)", handler=cmd_jobs)
    p.add_argument("--job-id", help="show only this job")
    p.add_argument("--state", choices=("queued", "running", "succeeded", "failed", "cancelled"),
                   help="only jobs in this state")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default %(default)s)")
    add_json(p)

    p = commands.add("cancel", "cancel a queued or running job", handler=cmd_cancel)
    p.add_argument("job_id", metavar="JOB_ID", help="the job id")
