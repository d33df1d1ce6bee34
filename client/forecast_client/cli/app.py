"""`forecast`: the command-line client of the forecast gateway.

    forecast --target 127.0.0.1:50051 upload --retailer acme data/sample/train.csv
    forecast train --retailer acme --data data/sample/train.csv --wait
    forecast jobs --retailer acme
    forecast predict --retailer acme --input future.csv --output forecasts.csv
    forecast metrics --retailer acme [--json]
    forecast models --retailer acme

Exit codes: 0 success, 1 the gateway answered with an error (or a job failed), 2 usage error
(bad flags, unreadable local file, missing optional dependency), 130 interrupted.
Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import grpc

from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_client.client import DEFAULT_CHUNK_ROWS, DEFAULT_MAX_IN_FLIGHT, ForecastClient
from forecast_client.config import DEFAULT_TARGET, ClientConfig, Timeouts
from forecast_client.errors import ForecastClientError
from forecast_client.progress import ProgressLine

PROG = "forecast"
#: Uploads larger than this show a progress bar.
PROGRESS_MIN_BYTES = 8 * 1024 * 1024
EXIT_OK, EXIT_SERVER, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A problem on the caller's side: exit code 2."""


def _state_name(state: int) -> str:
    return pb.JobState.Name(state).removeprefix("JOB_STATE_")


def _ts(ts: Any) -> str:
    if not ts.seconds and not ts.nanos:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts.seconds))


def _table(rows: list[list[str]], header: list[str], out: TextIO) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    out.writelines("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() + "\n" for line in [header, *rows])


# -- commands ------------------------------------------------------------------------------------

def _dataset_line(ds: pb.Dataset) -> str:
    return (f"dataset {ds.dataset_id}: {ds.rows:,} rows, {ds.series} series, "
            f"{ds.start_date} .. {ds.end_date}, {ds.size_bytes:,} bytes ({ds.filename})")


def _upload(client: ForecastClient, retailer: str, path: str, progress: ProgressLine) -> pb.Dataset:
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"{path}: no such file")
    size = file.stat().st_size

    def report(sent: int, total: int | None) -> None:
        if total and total > PROGRESS_MIN_BYTES:
            progress.show(f"uploading {file.name}", sent / total)

    ds = client.upload_dataset(retailer, file, on_progress=report)
    if size > PROGRESS_MIN_BYTES:
        progress.done()
    return ds


def cmd_upload(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    ds = _upload(client, args.retailer, args.file, ProgressLine(err, not args.quiet))
    if args.json:
        out.write(_to_json(ds) + "\n")
    else:
        out.write(_dataset_line(ds) + "\n")
    return EXIT_OK


def _parse_hp(items: Sequence[str]) -> dict[str, str]:
    hp: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--hp {item!r}: expected KEY=VALUE")
        hp[key.strip()] = value.strip()
    return hp


def cmd_train(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    progress = ProgressLine(err, not args.quiet)
    hp = _parse_hp(args.hp or [])
    dataset_id, data_uri = args.dataset_id, args.data_uri
    if args.data:
        ds = _upload(client, args.retailer, args.data, progress)
        err.write(f"uploaded {_dataset_line(ds)}\n")
        dataset_id = ds.dataset_id
    job = client.train(args.retailer, dataset_id=dataset_id, data_uri=data_uri,
                       model_kind=args.model_kind, hyperparameters=hp, horizon=args.horizon)
    if not args.wait:
        out.write(f"{job.job_id}\t{_state_name(job.state)}\n")
        return EXIT_OK
    err.write(f"job {job.job_id} {_state_name(job.state).lower()}; waiting (Ctrl-C stops waiting, "
              "not the job)\n")

    def update(j: pb.TrainingJob) -> None:
        stage = j.stage or _state_name(j.state).lower()
        progress.show(f"{_state_name(j.state).lower():<9} {stage}", j.progress)

    final = client.wait_for_job(args.retailer, job.job_id, on_update=update, timeout_s=args.timeout_wait)
    progress.done()
    state = _state_name(final.state)
    if final.state == pb.JOB_STATE_SUCCEEDED:
        out.write(f"{final.job_id}\t{state}\tmodel {final.model_version} is live\n")
        for name in sorted(final.metrics):
            if name.endswith(".rmsle"):
                err.write(f"  {name} = {final.metrics[name]:.4f}\n")
        return EXIT_OK
    out.write(f"{final.job_id}\t{state}\n")
    err.write(f"{PROG}: job {final.job_id} {state.lower()}: {final.failure_reason}\n")
    return EXIT_SERVER


def cmd_jobs(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.job_id:
        jobs = [client.get_job(args.retailer, args.job_id)]
    else:
        state = pb.JobState.Value("JOB_STATE_" + args.state.upper()) if args.state else 0
        jobs = client.list_jobs(args.retailer, state=state, limit=args.limit)
    return _write_list(jobs, args.json, out,
                       ["JOB", "STATE", "KIND", "DATASET", "CREATED", "PROGRESS", "MODEL", "REASON"],
                       _job_row)


def _job_row(j: pb.TrainingJob) -> list[str]:
    reason = (j.failure_reason[:60] + ("..." if len(j.failure_reason) > 60 else "")) or "-"
    return [j.job_id, _state_name(j.state), j.model_kind, j.dataset_id, _ts(j.create_time),
            f"{j.progress * 100:.0f}%", j.model_version or "-", reason]


def cmd_cancel(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    job = client.cancel_job(args.retailer, args.job_id)
    out.write(f"{job.job_id}\t{_state_name(job.state)}\tcancellation requested\n")
    return EXIT_OK


def _read_frame(path: Path) -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise UsageError("predict needs pandas: pip install 'forecast-client[pandas]'") from None
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype={"family": str})
    except ImportError as exc:
        raise UsageError(f"{path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - pandas raises many kinds
        raise UsageError(f"{path}: cannot read it as {path.suffix or 'CSV'}: {exc}") from None


def cmd_predict(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    src, dst = Path(args.input), Path(args.output)
    if dst.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise UsageError(f"--output {dst}: name a .csv or .parquet file")
    frame = _read_frame(src)
    progress = ProgressLine(err, not args.quiet and len(frame) > args.chunk_rows)
    started = time.monotonic()

    def report(done: int, total: int) -> None:
        rate = done / max(time.monotonic() - started, 1e-9)
        progress.show(f"{done:,}/{total:,} rows ({rate:,.0f} rows/s)", done / total)

    try:
        result = client.predict_frame(args.retailer, frame, model_version=args.model_version,
                                      chunk_rows=args.chunk_rows, max_in_flight=args.max_in_flight,
                                      on_progress=report)
    except ValueError as exc:  # the input frame cannot be turned into rows
        raise UsageError(f"{src}: {exc}") from None
    progress.done()
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.suffix.lower() in (".parquet", ".pq"):
        result.to_parquet(dst, index=False)
    else:
        result.to_csv(dst, index=False)
    err.write(f"wrote {len(result):,} forecasts to {dst} in {time.monotonic() - started:.1f} s\n")
    return EXIT_OK


def cmd_metrics(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    m = client.get_metrics(args.retailer, model_version=args.model_version)
    if args.json:
        out.write(_to_json(m) + "\n")
        return EXIT_OK
    out.write(f"model {m.model.version} (job {m.model.job_id or '-'}, dataset "
              f"{m.model.dataset_id or '-'}, data {m.model.data_start_date} .. "
              f"{m.model.data_end_date})\n")
    out.write(f"test window {m.test_start_date} .. {m.test_end_date} "
              f"({m.horizon} days after {m.origin_date})\n")
    rows = [[e.name + (" (final)" if e.final else "") + (" (baseline)" if e.baseline else ""),
             f"{e.overall.rmsle:.4f}", f"{e.overall.rmse:.3f}", f"{e.overall.mae:.3f}",
             f"{e.overall.wape:.4f}", f"{e.overall.bias:+.4f}"] for e in m.evaluations]
    _table(rows, ["MODEL", "RMSLE", "RMSE", "MAE", "WAPE", "BIAS"], out)
    if args.per_family:
        for e in m.evaluations:
            out.write(f"\n{e.name} per family:\n")
            _table([[f, f"{s.rmsle:.4f}", f"{s.rmse:.3f}", f"{s.wape:.4f}"]
                    for f, s in sorted(e.per_family.items())],
                   ["FAMILY", "RMSLE", "RMSE", "WAPE"], out)
    return EXIT_OK


def cmd_models(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    models = client.list_models(args.retailer)
    return _write_list(models, args.json, out,
                       ["LIVE", "VERSION", "KIND", "FINAL", "DATA", "JOB", "CREATED"], _model_row)


def _model_row(m: pb.ModelVersion) -> list[str]:
    return ["*" if m.live else "", m.version, m.model_kind or "-", m.final_model or "-",
            f"{m.data_start_date} .. {m.data_end_date}", m.job_id or "-", _ts(m.create_time)]


def cmd_promote(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    model = client.set_live_model(args.retailer, args.version)
    out.write(f"model {model.version} is live for {model.retailer}\n")
    return EXIT_OK


def _write_list(messages: Sequence[Any], as_json: bool, out: TextIO, header: list[str],
                row: Callable[[Any], list[str]]) -> int:
    """A listing command's output: a JSON array (--json) or a table with one row per message."""
    if as_json:
        out.write(json.dumps([json.loads(_to_json(m)) for m in messages], indent=2) + "\n")
    else:
        _table([row(m) for m in messages], header, out)
    return EXIT_OK


def _to_json(message: Any) -> str:
    from google.protobuf import json_format

    return json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True), indent=2)


# -- parser --------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The `forecast` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train per-retailer forecasting models and get forecasts from a forecast "
                    "gateway over gRPC.",
        epilog="Exit codes: 0 ok, 1 the gateway reported an error (or the job failed), "
               "2 usage error. Environment: FORECAST_TARGET (gateway address), FORECAST_RETAILER.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--target", default=os.environ.get("FORECAST_TARGET", DEFAULT_TARGET),
                        metavar="HOST:PORT",
                        help="gateway address (env FORECAST_TARGET; default %(default)s)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="deadline of each small call (default %(default)s)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_: str, description: str | None = None) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=description or help_)
        p.add_argument("--retailer", default=os.environ.get("FORECAST_RETAILER"),
                       required=not os.environ.get("FORECAST_RETAILER"),
                       help="retailer (tenant) id (env FORECAST_RETAILER)")
        return p

    p = command("upload", "upload a CSV/Parquet sales history; prints the dataset id",
                "Upload a sales history (id, date, store_nbr, family, sales, onpromotion) as CSV "
                "or Parquet. The gateway validates it and answers with a dataset id.")
    p.add_argument("file", help="the .csv or .parquet file")
    p.add_argument("--json", action="store_true", help="print the dataset as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_upload)

    p = command("train", "start a training job (optionally uploading the data first)",
                "Start training a model. --data uploads a file first; --wait follows the job "
                "with a live progress display and exits 1 when it fails.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", metavar="FILE", help="upload FILE and train on it")
    src.add_argument("--dataset-id", help="train on an already uploaded dataset")
    src.add_argument("--data-uri", help="train on a file:// URI the gateway can read")
    p.add_argument("--model-kind", default="xgboost", choices=("xgboost", "lstm", "hybrid"),
                   help="model kind (default %(default)s)")
    p.add_argument("--horizon", type=int, default=0, help="forecast horizon in days (default 16)")
    p.add_argument("--hp", action="append", metavar="KEY=VALUE",
                   help="a hyperparameter, e.g. --hp num_round=300 (repeatable)")
    p.add_argument("--wait", action="store_true", help="wait for the job, showing progress")
    p.add_argument("--timeout-wait", type=float, default=None, metavar="SECONDS",
                   help="with --wait: give up waiting after this long")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_train)

    p = command("jobs", "list training jobs (newest first)")
    p.add_argument("--job-id", help="show only this job")
    p.add_argument("--state", choices=("queued", "running", "succeeded", "failed", "cancelled"),
                   help="only jobs in this state")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_jobs)

    p = command("cancel", "cancel a queued or running job")
    p.add_argument("job_id", help="the job id")
    p.set_defaults(func=cmd_cancel)

    p = command("predict", "forecast every row of a file (streamed in chunks)",
                "Forecast future rows (date, store_nbr, family[, onpromotion]) read from a CSV "
                "or Parquet file, streamed to the gateway in chunks. Writes the input columns "
                "plus `sales` to --output (.csv or .parquet), in the input's row order.")
    p.add_argument("--input", required=True, metavar="FILE", help="future rows (.csv or .parquet)")
    p.add_argument("--output", required=True, metavar="FILE", help="where to write the forecasts")
    p.add_argument("--model-version", default="", help="model version (default: the live one)")
    p.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS,
                   help="rows per streamed chunk (default %(default)s)")
    p.add_argument("--max-in-flight", type=int, default=DEFAULT_MAX_IN_FLIGHT,
                   help="chunks sent ahead of answers (default %(default)s)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_predict)

    p = command("metrics", "show the live model's test metrics next to the baseline")
    p.add_argument("--model-version", default="", help="model version (default: the live one)")
    p.add_argument("--per-family", action="store_true", help="also show metrics per family")
    p.add_argument("--json", action="store_true", help="print the full evaluation as JSON")
    p.set_defaults(func=cmd_metrics)

    p = command("models", "list model versions (the live one is marked *)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_models)

    p = command("promote", "make a model version live (promotion or rollback)")
    p.add_argument("version", help="the model version, e.g. v2")
    p.set_defaults(func=cmd_promote)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the CLI; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "predict" and args.chunk_rows <= 0:
        parser.error("--chunk-rows must be positive")
    try:
        config = ClientConfig(target=args.target, timeouts=Timeouts(unary_s=args.timeout))
    except ValueError as exc:
        parser.error(str(exc))
    try:
        with ForecastClient(config) as client:
            return int(args.func(client, args, out, err))
    except ForecastClientError as exc:
        details = exc.details
        if exc.code == grpc.StatusCode.UNAVAILABLE and ("connect" in details or "Connection" in details):
            details = f"cannot reach the gateway at {args.target} ({details})"
        err.write(f"{PROG}: error: {exc.code.name}: {details}\n")
        return EXIT_SERVER
    except UsageError as exc:
        err.write(f"{PROG}: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.write(f"\n{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        err.write(f"{PROG}: error: unexpected {type(exc).__name__}: {exc}\n")
        return EXIT_SERVER


if __name__ == "__main__":
    sys.exit(main())
