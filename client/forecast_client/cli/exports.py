"""Forecast files for replenishment systems: `forecast export`, `export-status` and
`export-cancel`."""

from __future__ import annotations

import argparse
from typing import TextIO

from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_client.cli.following import report_unsuccessful, wait_to_end
from forecast_client.cli.messages import (
    EXIT_OK,
    EXIT_SERVER,
    UsageError,
    in_cli_words,
)
from forecast_client.cli.output import state_name, write_list
from forecast_client.cli.parsing import (
    Commands,
    add_json,
    add_levels,
    add_model_version,
    add_quiet,
    horizon_days,
    positive_float,
)
from forecast_client.client import ForecastClient
from forecast_client.progress import ProgressLine


def cmd_export(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Start an export; with --wait, follow it to the end."""
    try:
        job = client.export_forecasts(args.retailer, args.destination, days=args.days,
                                      stores=args.stores or (), families=args.families or (),
                                      levels=args.levels or (), model_version=args.model_version,
                                      format=args.format)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    err.writelines(f"note: {in_cli_words(w)}\n" for w in job.warnings)
    if not args.wait:
        out.write(f"{job.export_id}\t{state_name(job.state)}\t{job.series_total} series x "
                  f"{job.days} days\n")
        return EXIT_OK
    err.write(f"export {job.export_id} of {job.series_total:,} series x {job.days} days "
              f"{state_name(job.state).lower()}; waiting (Ctrl-C stops waiting, not the export)\n")
    return follow(client, args.retailer, job.export_id, args.timeout_wait,
                  ProgressLine(err, not args.quiet), out, err)


def follow(client: ForecastClient, retailer: str, export_id: str, timeout_s: float | None,
           progress: ProgressLine, out: TextIO, err: TextIO) -> int:
    """Show an export's progress until it ends; print the file; exit 1 unless it succeeded."""
    def show(job: pb.ExportJob) -> None:
        progress.show(f"{job.series_done:,}/{job.series_total:,} series, {job.rows:,} rows",
                      job.progress)

    final = wait_to_end(
        lambda: client.wait_for_export(retailer, export_id, on_update=show, timeout_s=timeout_s),
        f"export {export_id}",
        f"forecast export-status --retailer {retailer} {export_id} --wait", timeout_s, progress,
        err)
    if isinstance(final, int):
        return final
    if report_unsuccessful(final.state, f"export {final.export_id}", final.export_id,
                           final.failure_reason, out, err):
        return EXIT_SERVER
    out.write(f"{final.export_id}\t{state_name(final.state)}\t{final.rows} rows\t"
              f"{final.result_uri}\n")
    return EXIT_OK


def cmd_status(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Show one export (or follow it with --wait)."""
    if args.wait:
        return follow(client, args.retailer, args.export_id, args.timeout_wait,
                      ProgressLine(err, not args.quiet), out, err)
    job = client.get_export(args.retailer, args.export_id)
    write_list([job], args.json, out, ["EXPORT", "STATE", "PROGRESS", "ROWS", "FILE", "REASON"],
               lambda j: [j.export_id, state_name(j.state), f"{j.progress * 100:.0f}%",
                          str(j.rows), j.result_uri or "-", j.failure_reason[:60] or "-"])
    return EXIT_OK


def cmd_cancel(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Stop an export."""
    job = client.cancel_export(args.retailer, args.export_id)
    out.write(f"{job.export_id}\t{state_name(job.state)}\tcancellation requested\n")
    return EXIT_OK


def _wait_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout-wait", type=positive_float, default=None, metavar="SECONDS",
                   help="with --wait: give up waiting after this long (the export goes on)")
    add_quiet(p)


def register(commands: Commands) -> None:
    """Add `export`, `export-status` and `export-cancel`."""
    p = commands.add(
        "export", "write every series x N days, with intervals, to a file in a bucket",
        "The gateway forecasts every series of the retailer (or --stores/--families) for the "
        "--days days after the model's history, with --levels intervals, and writes them as "
        "one Parquet or CSV file (by the extension, or --format) to DESTINATION: "
        "s3://BUCKET/PREFIX/<retailer>/NAME.parquet under the gateway's export store, or "
        "file:///... where the gateway allows file URIs. Columns: date, store_nbr, family, "
        "onpromotion, sales, lo-<level>, hi-<level>. The file appears only when complete. "
        "--wait follows the export and exits 1 when it fails.", cmd_export)
    p.add_argument("destination", metavar="DESTINATION", help="s3://... or file://... URI of "
                                                              "the file to write")
    p.add_argument("--days", type=horizon_days, required=True, metavar="N",
                   help="the N days after the model's history (e.g. 16)")
    add_levels(p)
    p.add_argument("--stores", nargs="+", type=int, metavar="STORE", help="only these stores")
    p.add_argument("--families", nargs="+", metavar="FAMILY",
                   help="only these product families (quote names with spaces)")
    p.add_argument("--format", choices=("parquet", "csv"), default=None,
                   help="file format (default: from the destination's extension)")
    add_model_version(p)
    p.add_argument("--wait", action="store_true", help="wait for the export, showing progress")
    _wait_flags(p)

    p = commands.add("export-status", "show an export (or --wait for it)",
                     "Show an export's state, progress, rows and file; --wait follows it to "
                     "the end as `export --wait` does.", cmd_status)
    p.add_argument("export_id", metavar="EXPORT_ID")
    p.add_argument("--wait", action="store_true", help="follow it until it ends")
    add_json(p)
    _wait_flags(p)

    p = commands.add("export-cancel", "stop an export (nothing is written)",
                     "Stop a queued or running export; nothing is left at the destination.",
                     cmd_cancel)
    p.add_argument("export_id", metavar="EXPORT_ID")
