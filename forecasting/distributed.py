"""Training across instances on XGBoost's own collective (Rabit), as SageMaker's XGBoost
container does: the hosts come from ``resourceconfig.json``, the first host in sorted order runs
``xgboost.tracker.RabitTracker`` (port 9099), every host joins with ``xgboost.collective``.

Each host holds whole series (its shard). XGBoost itself merges the quantile sketches, the
histograms, the base score and the validation metric, so the trees and early stopping are
global. What the pipeline computes outside XGBoost goes through the helpers here, which are the
identity on one host (the single-instance path is unchanged):

- ``date_span``, ``union``, ``total``, ``merged_report``: the cleaning's date range, the
  encoders, the counts and the cleaning report, the same everywhere;
- ``concat``: per-series arrays gathered from every host in rank order (the evaluation, the
  interval calibration's residuals, the history tail saved with the model);
- ``allreduce_sum``: the leaf refresh's gradient and hessian sums.

No layer of our own: gathering is ``collective.broadcast`` from each rank in turn, sums are
``collective.allreduce``. A host that dies closes its sockets and the others fail at their next
collective call; one that hangs is cut off by ``dmlc_timeout`` (``collective_timeout_s``).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forecasting.errors import PlatformError, UserError

TRACKER_PORT = 9099                        # SageMaker's XGBoost container uses the same
TRACKER_PORT_VAR = "FORECAST_TRACKER_PORT"  # ours: moves the port for tests on one machine
SHARDED = "ShardedByS3Key"
# XGBoost's messages when a peer is gone or silent (its sockets, rings and timeouts).
_COLLECTIVE_FAILURE = re.compile(r"collective|socket|allreduce|allgather|broadcast|tracker|"
                                 r"[Tt]imeout|[Cc]onnection|[Pp]oll error", re.IGNORECASE)


@dataclass(frozen=True)
class Cluster:
    """The training job's hosts (sorted) and which one this process is."""

    hosts: tuple[str, ...] = ("algo-1",)
    current: str = "algo-1"

    @classmethod
    def from_resource_config(cls, config: dict) -> Cluster:
        """``resourceconfig.json`` as SageMaker writes it ({} or no hosts: one host)."""
        hosts = tuple(sorted(str(h) for h in (config.get("hosts") or [])))
        current = str(config.get("current_host") or (hosts[0] if hosts else "algo-1"))
        if not hosts:
            return cls((current,), current)
        if current not in hosts:
            raise PlatformError(f"resourceconfig.json: current_host {current!r} is not one of "
                                f"its hosts {list(hosts)}")
        return cls(hosts, current)

    @property
    def size(self) -> int:
        return len(self.hosts)

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current)

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def primary(self) -> str:
        return self.hosts[0]

    @property
    def is_primary(self) -> bool:
        """The host that runs the tracker and writes the artifact."""
        return self.rank == 0

    def files_for(self, files: Sequence[Path], distribution: str | None) -> list[Path]:
        """This host's share of a channel's files: all of them when SageMaker already sharded
        the channel (``ShardedByS3Key``) or on one host; else every ``size``-th file from
        ``rank`` (FullyReplicated, e.g. local mode, which shards nothing): with shards named
        ``part-00000``.. that is shard ``rank``, the same series in every channel."""
        files = sorted(files)
        if not self.distributed or distribution == SHARDED:
            return list(files)
        return list(files[self.rank::self.size])


def _address(host: str) -> str:
    try:
        return socket.gethostbyname(host)
    except OSError as exc:
        raise PlatformError(f"cannot resolve training host {host!r}: {exc}") from None


def tracker_port() -> int:
    raw = os.environ.get(TRACKER_PORT_VAR, "").strip()
    try:
        return int(raw) if raw else TRACKER_PORT
    except ValueError:
        raise PlatformError(f"{TRACKER_PORT_VAR} must be an integer, got {raw!r}") from None


@contextmanager
def collective(cluster: Cluster, timeout_s: int, log=print) -> Iterator[None]:
    """Join the hosts' collective for the block (nothing on one host). The primary starts the
    tracker first; every host waits at most ``timeout_s`` for the others to join and for any
    collective call. Leaving the block normally finalizes it (call ``barrier`` first when the
    others must wait for something, e.g. the primary's artifact); an error leaves at once."""
    if not cluster.distributed:
        yield
        return
    from xgboost import collective as coll
    from xgboost.core import XGBoostError
    from xgboost.tracker import RabitTracker

    port, tracker = tracker_port(), None
    primary = _address(cluster.primary)
    try:
        if cluster.is_primary:
            tracker = RabitTracker(n_workers=cluster.size, host_ip=primary, port=port,
                                   sortby="task", timeout=timeout_s)
            tracker.start()
        coll.init(dmlc_communicator="rabit", dmlc_tracker_uri=primary,
                  dmlc_tracker_port=port, dmlc_task_id=f"{cluster.rank:06d}",
                  dmlc_timeout=timeout_s, dmlc_retry=max(3, timeout_s // 2))
    except XGBoostError as exc:
        raise PlatformError(f"host {cluster.current} could not join the collective of "
                            f"{list(cluster.hosts)} at {cluster.primary}:{port} within "
                            f"{timeout_s} s: {_reason(exc)}") from None
    if coll.get_rank() != cluster.rank or coll.get_world_size() != cluster.size:
        raise PlatformError(f"the collective made host {cluster.current} rank "
                            f"{coll.get_rank()} of {coll.get_world_size()}, expected "
                            f"{cluster.rank} of {cluster.size}")
    log(f"distributed: host {cluster.current} is rank {cluster.rank} of {cluster.size} "
        f"(tracker {cluster.primary}:{port}, timeout {timeout_s} s)")
    sent, received = network_bytes()
    try:
        yield
    except XGBoostError as exc:
        if not _COLLECTIVE_FAILURE.search(str(exc)):
            raise                         # XGBoost's own error, not the network's
        raise PlatformError(f"host {cluster.current}: the collective of {list(cluster.hosts)} "
                            f"broke (a host failed, was lost, or did not answer within "
                            f"{timeout_s} s): {_reason(exc)}") from None
    now = network_bytes()
    log(f"distributed: host {cluster.current} sent {now[0] - sent} and received "
        f"{now[1] - received} bytes on its network interfaces while in the collective")
    coll.finalize()
    if tracker is not None:
        try:
            tracker.wait_for(timeout_s)
        except XGBoostError as exc:   # the work is done; a late host only costs a line
            log(f"distributed: the tracker did not shut down cleanly: {_reason(exc)}")


def network_bytes() -> tuple[int, int]:
    """(sent, received) bytes on every interface but loopback (/proc/net/dev; (0, 0) where
    there is none). In a training container that is the collective's traffic once the data
    is on disk (docs/scaling.md measures bytes per round with it)."""
    try:
        lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    except OSError:
        return 0, 0
    sent = received = 0
    for line in lines:
        name, _, fields = line.partition(":")
        if name.strip() != "lo" and fields.split():
            values = fields.split()
            received += int(values[0])
            sent += int(values[8])
    return sent, received


def _reason(exc: BaseException) -> str:
    """XGBoost's error without its stack trace: the ``- [file:line|time]: what`` lines."""
    text = str(exc).split("Stack trace:")[0]
    parts = [line.split("]:", 1)[-1].strip() for line in text.splitlines()
             if line.startswith("- [")]
    return ("; ".join(p for p in parts if p) or text.strip().splitlines()[0]
            if text.strip() else type(exc).__name__)[:400]


def active() -> bool:
    """True inside ``collective`` with more than one host."""
    from xgboost import collective as coll

    return coll.is_distributed() and coll.get_world_size() > 1


def rank() -> int:
    from xgboost import collective as coll

    return coll.get_rank() if active() else 0


def barrier() -> None:
    """Every host reaches this point before any goes on."""
    if active():
        allreduce_sum(np.zeros(1))


def allreduce_sum(values: np.ndarray) -> np.ndarray:
    """The element-wise sum over hosts (``values`` itself on one host)."""
    if not active():
        return values
    from xgboost import collective as coll

    arr = np.ascontiguousarray(values)
    return coll.allreduce(arr, coll.Op.SUM).reshape(arr.shape)


def allgather(value) -> list:
    """Every host's ``value`` (any picklable), in rank order."""
    if not active():
        return [value]
    from xgboost import collective as coll

    return [coll.broadcast(value if r == coll.get_rank() else None, r)
            for r in range(coll.get_world_size())]


def concat(values: np.ndarray) -> np.ndarray:
    """Per-series rows of every host, stacked in rank order (``values`` on one host)."""
    if not active():
        return values
    return np.concatenate(allgather(np.asarray(values)), axis=0)


def total(value: int) -> int:
    """The sum of an integer count over hosts."""
    if not active():
        return value
    return int(allreduce_sum(np.array([value], dtype=np.int64))[0])


def union(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values seen by any host (``values`` on one host)."""
    if not active():
        return values
    return np.unique(np.concatenate(allgather(np.asarray(values))))


def date_span(dates: np.ndarray) -> tuple[np.datetime64, np.datetime64] | None:
    """The first and last date over every host's rows (None on one host: cleaning reads its
    own). Every host's panel then counts days from the same origin to the same end."""
    if not active():
        return None
    days = np.asarray(dates).astype("datetime64[D]").astype(np.int64)
    lo = allgather(int(days.min()) if len(days) else None)
    known = [d for d in lo if d is not None]
    hi = [d for d in allgather(int(days.max()) if len(days) else None) if d is not None]
    return np.datetime64(min(known), "D"), np.datetime64(max(hi), "D")


def combined_hash(digest: str) -> str:
    """One content hash of every host's rows (the digest itself on one host)."""
    if not active():
        return digest
    return hashlib.sha256("".join(allgather(digest)).encode()).hexdigest()


def merged_report(report: dict) -> dict:
    """Cleaning reports of every host as one: counts summed, lists (the dates missing in
    every series) intersected, the rest as the primary's (``report`` on one host)."""
    if not active():
        return report
    reports = allgather(report)
    merged = dict(reports[0])
    for key, value in merged.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            merged[key] = sum(int(r.get(key, 0)) for r in reports)
        elif isinstance(value, list):   # dates missing in every series: on every host
            merged[key] = sorted(set.intersection(*({str(v) for v in r.get(key, [])}
                                                    for r in reports)))
    return merged


def check_disjoint(store_nbr: np.ndarray, family: np.ndarray) -> None:
    """Every series on exactly one host: a series cut across shards would be cleaned and
    featurized apart on each, silently wrong, so it is refused."""
    if not active():
        return
    keys = [set(zip(*k)) for k in allgather((np.asarray(store_nbr).tolist(),
                                              np.asarray(family).astype(str).tolist()))]
    seen: set = set()
    for host, mine in enumerate(keys):
        shared = seen & mine
        if shared:
            store, fam = min(shared)
            raise UserError(f"series (store_nbr {store}, family {fam!r}) is in the shards of "
                            f"more than one host (rank {host} and an earlier one, "
                            f"{len(shared)} series in all): shard the data by series, "
                            "whole series per file")
        seen |= mine
