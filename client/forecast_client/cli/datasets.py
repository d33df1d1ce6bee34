"""`forecast upload`: send a sales history to the gateway."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TextIO

from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_client.cli.messages import EXIT_OK, UsageError
from forecast_client.cli.output import to_json
from forecast_client.cli.parsing import Commands, add_json, add_quiet
from forecast_client.client import ForecastClient
from forecast_client.progress import ProgressLine

#: Uploads larger than this show a progress bar.
PROGRESS_MIN_BYTES = 8 * 1024 * 1024


def dataset_line(ds: pb.Dataset) -> str:
    """One line describing an uploaded dataset."""
    return (f"dataset {ds.dataset_id}: {ds.rows:,} rows, {ds.series} series, "
            f"{ds.start_date} .. {ds.end_date}, {ds.size_bytes:,} bytes ({ds.filename})")


def upload_file(client: ForecastClient, retailer: str, flag: str, name: str,
                progress: ProgressLine) -> pb.Dataset:
    """Upload a local file, with a progress bar when it is large."""
    file = Path(name)
    if not file.is_file():
        raise UsageError(f"{flag}{' ' if flag else ''}{name}: no such file")
    size = file.stat().st_size
    started = time.monotonic()

    def report(sent: int, total: int | None) -> None:
        if total and total > PROGRESS_MIN_BYTES:
            progress.show(f"uploading {file.name}", sent / total,
                          elapsed_s=time.monotonic() - started)

    ds = client.upload_dataset(retailer, file, on_progress=report)
    if size > PROGRESS_MIN_BYTES:
        progress.done()
    return ds


def cmd_upload(client: ForecastClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Upload FILE; print the dataset."""
    ds = upload_file(client, args.retailer, "", args.file, ProgressLine(err, not args.quiet))
    out.write((to_json(ds) if args.json else dataset_line(ds)) + "\n")
    return EXIT_OK


def register(commands: Commands) -> None:
    """Add `upload`."""
    p = commands.add("upload", "upload a CSV/Parquet sales history; prints the dataset id",
                     "Upload a sales history (id, date, store_nbr, family, sales, onpromotion) as "
                     "CSV or Parquet. The gateway validates it and answers with a dataset id.",
                     cmd_upload)
    p.add_argument("file", help="the .csv or .parquet file")
    add_json(p, "print the dataset as JSON")
    add_quiet(p)
