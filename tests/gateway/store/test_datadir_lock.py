"""One gateway per data dir on the embedded SQLite database: a second `forecast-gateway` on the
same --data-dir exits at once with code 1 and one clear line, and the first keeps serving. The
lock dies with its process, even after kill -9. (On PostgreSQL replicas share a data dir under
the database's leases: tests/gateway/dataplane/test_fleet.py.)"""

from __future__ import annotations

import grpc
import pytest
from forecast_gateway.store.datadir_lock import DataDirInUse, DataDirLock
from forecast_gateway.testing.process import GatewayProcess
from grpc_health.v1 import health_pb2, health_pb2_grpc
from store_engine import ENGINE

pytestmark = pytest.mark.skipif(ENGINE == "postgresql", reason="the data-dir lock is the SQLite "
                                "default's; on PostgreSQL replicas share a data dir by design")


def _serving(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def test_a_second_gateway_on_the_same_data_dir_is_refused(tmp_path, gateway_factory) -> None:
    data_dir = tmp_path / "data"
    first = gateway_factory(data_dir).start()
    second = GatewayProcess(data_dir, log_path=tmp_path / "second.log")
    try:
        with pytest.raises(RuntimeError, match="exited with code 1"):
            second.start(timeout_s=30)
    finally:
        second.stop()
    refusal = [line for line in second.log().splitlines() if line.startswith("forecast-gateway:")]
    expected = (f"forecast-gateway: data dir {str(data_dir)!r} is in use by another "
                f"forecast-gateway (pid {first.proc.pid}); stop it or choose another --data-dir")
    assert refusal == [expected]
    assert second.log().strip().splitlines() == [expected]  # one line, nothing else
    assert _serving(first.target)

    first.kill()  # kill -9: the kernel drops the lock with the process
    third = gateway_factory(data_dir).start()
    assert _serving(third.target)


def test_the_lock_is_exclusive_until_released(tmp_path) -> None:
    held = DataDirLock(tmp_path).acquire()
    with pytest.raises(DataDirInUse, match="in use by another forecast-gateway"):
        DataDirLock(tmp_path).acquire()
    held.release()
    DataDirLock(tmp_path).acquire().release()
