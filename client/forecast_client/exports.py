"""The SDK's forecast exports: every series x N days, with intervals, written by the gateway as
one Parquet or CSV file to `s3://...` or `file://...`, followed as a job.

`ForecastClient` inherits `ExportMethods`, `AsyncForecastClient` inherits `AsyncExportMethods`;
both build the same requests here. An export is not sent again by the SDK when the gateway went
away (a second one would write the file again): start it again, or look it up by id.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_client.waiting import await_terminal, wait_terminal

if TYPE_CHECKING:
    from forecast_client._gen.forecastapi.v1 import forecast_service_pb2_grpc as pb_grpc
    from forecast_client.config import ClientConfig

T = TypeVar("T")
_FORMATS = {None: pb.DATASET_FORMAT_UNSPECIFIED, "": pb.DATASET_FORMAT_UNSPECIFIED,
            "csv": pb.DATASET_FORMAT_CSV, "parquet": pb.DATASET_FORMAT_PARQUET}


def export_request(retailer: str, destination: str, *, days: int, stores: Iterable[int] = (),
                   families: Iterable[str] = (), levels: Iterable[float] = (),
                   model_version: str = "", format: str | None = None,
                   ) -> pb.ExportForecastsRequest:
    """The ExportForecastsRequest of `export_forecasts` (ValueError for an unknown format)."""
    if format not in _FORMATS:
        raise ValueError(f"format must be 'parquet', 'csv' or None (from the destination's "
                         f"extension), got {format!r}")
    return pb.ExportForecastsRequest(
        retailer=retailer, model_version=model_version, days=days,
        store_nbr=[int(s) for s in stores], family=[str(f) for f in families],
        levels=[float(v) for v in levels], destination=destination, format=_FORMATS[format])


class ExportMethods:
    """Exports on `ForecastClient` (blocking calls)."""

    if TYPE_CHECKING:
        config: ClientConfig
        _stub: pb_grpc.ForecastServiceStub

        def _unary(self, method: Callable[..., T], request: Any, timeout: float | None, *,
                   repeatable: bool = True) -> T: ...

        def _metadata(self) -> tuple[tuple[str, str], ...]: ...

        def _watch(self, method: Callable[..., Any], request: Any) -> Iterator[Any]: ...

    def export_forecasts(self, retailer: str, destination: str, *, days: int,
                         stores: Iterable[int] = (), families: Iterable[str] = (),
                         levels: Iterable[float] = (), model_version: str = "",
                         format: str | None = None, wait: bool = False,
                         timeout_s: float | None = None,
                         on_update: Callable[[pb.ExportJob], None] | None = None,
                         ) -> pb.ExportJob:
        """Start an export of every series (or `stores` / `families`) x the next `days` days,
        with `levels` intervals, to `destination` ("s3://bucket/.../name.parquet" under the
        gateway's export store, or "file:///..." where the gateway allows file URIs); the
        format comes from the extension unless `format` is "parquet" or "csv".

        Returns the queued job; with `wait=True`, the finished one (`wait_for_export`). The
        file's columns: date, store_nbr, family, onpromotion, sales, lo-<level>, hi-<level>.
        """
        request = export_request(retailer, destination, days=days, stores=stores,
                                 families=families, levels=levels, model_version=model_version,
                                 format=format)
        job = self._unary(self._stub.ExportForecasts, request, self.config.timeouts.unary_s,
                          repeatable=False).job
        if not wait:
            return job
        return self.wait_for_export(retailer, job.export_id, on_update=on_update,
                                    timeout_s=timeout_s)

    def get_export(self, retailer: str, export_id: str) -> pb.ExportJob:
        """Return one export job."""
        request = pb.GetExportJobRequest(retailer=retailer, export_id=export_id)
        return self._unary(self._stub.GetExportJob, request, self.config.timeouts.unary_s).job

    def watch_export(self, retailer: str, export_id: str) -> Iterator[pb.ExportJob]:
        """Yield the export job at each change, ending after its terminal state."""
        return self._watch(self._stub.WatchExportJob,
                           pb.WatchExportJobRequest(retailer=retailer, export_id=export_id))

    def wait_for_export(self, retailer: str, export_id: str, *,
                        on_update: Callable[[pb.ExportJob], None] | None = None,
                        timeout_s: float | None = None) -> pb.ExportJob:
        """Block until the export is terminal and return it; `on_update(job)` sees every event.
        Reconnects when the gateway went away; DEADLINE_EXCEEDED after `timeout_s`."""
        return wait_terminal(lambda: self.watch_export(retailer, export_id),
                             self.config.retry, export_id, timeout_s, on_update)

    def cancel_export(self, retailer: str, export_id: str) -> pb.ExportJob:
        """Stop a queued or running export (nothing is left at the destination);
        FAILED_PRECONDITION when it already finished."""
        request = pb.CancelExportJobRequest(retailer=retailer, export_id=export_id)
        return self._unary(self._stub.CancelExportJob, request, self.config.timeouts.unary_s,
                           repeatable=False).job


class AsyncExportMethods:
    """Exports on `AsyncForecastClient` (coroutines); the same calls as `ExportMethods`."""

    if TYPE_CHECKING:
        config: ClientConfig
        _stub: Any

        async def _unary(self, method: Callable[..., Any], request: Any,
                         timeout: float | None, *, repeatable: bool = True) -> Any: ...

        def _metadata(self) -> tuple[tuple[str, str], ...]: ...

        def _watch(self, method: Callable[..., Any],
                   request: Any) -> AsyncGenerator[Any, None]: ...

    async def export_forecasts(self, retailer: str, destination: str, *, days: int,
                               stores: Iterable[int] = (), families: Iterable[str] = (),
                               levels: Iterable[float] = (), model_version: str = "",
                               format: str | None = None, wait: bool = False,
                               timeout_s: float | None = None,
                               on_update: Callable[[pb.ExportJob], None] | None = None,
                               ) -> pb.ExportJob:
        """Start an export (see `ForecastClient.export_forecasts`); the queued job, or with
        `wait=True` the finished one."""
        request = export_request(retailer, destination, days=days, stores=stores,
                                 families=families, levels=levels, model_version=model_version,
                                 format=format)
        response: pb.ExportForecastsResponse = await self._unary(
            self._stub.ExportForecasts, request, self.config.timeouts.unary_s, repeatable=False)
        if not wait:
            return response.job
        return await self.wait_for_export(retailer, response.job.export_id,
                                          on_update=on_update, timeout_s=timeout_s)

    async def get_export(self, retailer: str, export_id: str) -> pb.ExportJob:
        """Return one export job."""
        request = pb.GetExportJobRequest(retailer=retailer, export_id=export_id)
        response: pb.GetExportJobResponse = await self._unary(
            self._stub.GetExportJob, request, self.config.timeouts.unary_s)
        return response.job

    async def watch_export(self, retailer: str,
                           export_id: str) -> AsyncGenerator[pb.ExportJob, None]:
        """Yield the export job at each change, ending after its terminal state."""
        async for job in self._watch(self._stub.WatchExportJob, pb.WatchExportJobRequest(
                retailer=retailer, export_id=export_id)):
            yield job

    async def wait_for_export(self, retailer: str, export_id: str, *,
                              on_update: Callable[[pb.ExportJob], None] | None = None,
                              timeout_s: float | None = None) -> pb.ExportJob:
        """Wait until the export is terminal and return it (see `wait_for_job`)."""
        return await await_terminal(lambda: self.watch_export(retailer, export_id),
                                    self.config.retry, export_id, timeout_s,
                                    on_update)

    async def cancel_export(self, retailer: str, export_id: str) -> pb.ExportJob:
        """Stop a queued or running export; FAILED_PRECONDITION when it already finished."""
        request = pb.CancelExportJobRequest(retailer=retailer, export_id=export_id)
        response: pb.CancelExportJobResponse = await self._unary(
            self._stub.CancelExportJob, request, self.config.timeouts.unary_s, repeatable=False)
        return response.job
