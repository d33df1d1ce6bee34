"""Translation between forecastapi.v1's export messages and the data plane's export jobs.
Translation only; the servicer calls these."""

from __future__ import annotations

from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb

from forecast_gateway.api.edge import STATE_TO_PB, timestamp
from forecast_gateway.dataplane.export_jobs import ExportJob

_FORMAT_TO_PB = {"csv": pb.DATASET_FORMAT_CSV, "parquet": pb.DATASET_FORMAT_PARQUET}
_FORMAT_FROM_PB = {pb.DATASET_FORMAT_UNSPECIFIED: "", pb.DATASET_FORMAT_CSV: "csv",
                   pb.DATASET_FORMAT_PARQUET: "parquet"}


def format_from_pb(value: int) -> str:
    """DatasetFormat -> "" | "csv" | "parquet" (an unknown number stays visible, so the data
    plane can name it)."""
    return _FORMAT_FROM_PB.get(value, f"DatasetFormat {value}")


def export_to_pb(job: ExportJob) -> pb.ExportJob:
    """ExportJob -> pb.ExportJob."""
    return pb.ExportJob(
        export_id=job.export_id, retailer=job.retailer, model_version=job.model_version,
        destination=job.destination, format=_FORMAT_TO_PB[job.format], days=job.days,
        levels=job.levels, state=STATE_TO_PB[job.state], create_time=timestamp(job.created_at),
        start_time=timestamp(job.started_at), end_time=timestamp(job.ended_at),
        failure_reason=job.failure_reason, progress=job.progress,
        series_total=job.series_total, series_done=job.series_done, rows=job.rows,
        result_uri=job.result_uri, size_bytes=job.size_bytes, warnings=job.warnings)
