"""Crash consistency of model versions (docs/security.md, "Crash consistency").

A publish cut off by kill -9 never leads to a wrong model being served: start-up quarantines
the version directory the registry does not know, and the next job serves its own model. A
version whose files changed after it was published is refused (FAILED_PRECONDITION), not
served. Killing the gateway during training fails the job with a reason and leaves the live
model as it was. The kill -9 tests use the test-only crash point hook (crashpoints.py).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest
from forecast_client import ForecastClient, ForecastClientError, pb
from forecast_gateway.dataplane import Tenant
from forecast_gateway.store.registry import Registry
from forecast_gateway.testing.crashpoints import ENV as CRASH_AT
from store_engine import open_database

from forecasting.predictor import Predictor

SLOW_HP = {"num_round": "5000", "early_stopping_rounds": "5000", "eta": "0.001"}


def _models(data_dir: Path, retailer: str) -> Path:
    return data_dir / "retailers" / retailer / "models"


def test_start_up_quarantines_what_the_registry_does_not_know(
        tmp_path, make_artifact, restartable_gateway) -> None:
    data_dir = tmp_path / "data"
    gw = restartable_gateway(data_dir)
    gw.server.service.models.import_model(Tenant("shop"), make_artifact("first"))
    gw.stop()
    models = _models(data_dir, "shop")
    # What a kill after the rename, before the registry, leaves; and a kill while staging.
    shutil.copytree(make_artifact("orphan"), models / "v2")
    (models / ".staging" / "cut-off").mkdir(parents=True)
    gw = restartable_gateway(data_dir)
    assert sorted(p.name for p in models.iterdir()) == ["v1"]
    quarantined = list((data_dir / "quarantine" / "shop").iterdir())
    assert [p.name.split("-")[0] for p in quarantined] == ["v2"]
    assert (quarantined[0] / "artifact.json").is_file()  # kept for an operator
    again = gw.server.service.models.import_model(Tenant("shop"), make_artifact("second"))
    assert again.version == "v2"
    files = ["artifact.json", "evaluation.json", "history.json", "zero_series.json"]
    assert sorted(os.listdir(models / "v2")) == files  # not nested
    assert set(again.manifest) == set(files)


def test_a_version_whose_files_changed_is_refused_not_served(
        tmp_path, make_artifact, restartable_gateway) -> None:
    data_dir = tmp_path / "data"
    gw = restartable_gateway(data_dir)
    gw.server.service.models.import_model(Tenant("shop"), make_artifact("v1"))
    key = gw.api_key("shop")
    gw.stop()
    (_models(data_dir, "shop") / "v1" / "evaluation.json").write_text("{}")
    gw = restartable_gateway(data_dir)
    with ForecastClient(target=gw.target, api_key=key) as client:
        for call in (lambda: client.predict("shop", date=["2017-08-16"], store_nbr=[1],
                                            family=["BREAD/BAKERY"]),
                     lambda: client.get_metrics("shop"),
                     lambda: client.set_live_model("shop", "v1")):
            with pytest.raises(ForecastClientError) as info:
                call()
            assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
            assert "'evaluation.json' does not match its recorded sha256" in info.value.details
    assert gw.backend.calls == 0  # nothing was forecast with it


def _registered(data_dir: Path, retailer: str) -> list[str]:
    db = open_database(data_dir)
    try:
        return [m.version for m in Registry(db, data_dir).list_models(retailer)]
    finally:
        db.close()


@pytest.mark.slow
def test_kill_inside_the_publish_window_then_the_next_job_serves_its_own_model(
        tmp_path, sample_csv, fast_hp, gateway_factory) -> None:
    data_dir = tmp_path / "data"
    gw = gateway_factory(data_dir, env={CRASH_AT: "publish.installed"}).start()
    key = gw.api_key("acme")
    with ForecastClient(target=gw.target, api_key=key) as client:
        cut = client.train("acme", dataset_id=client.upload_dataset("acme", sample_csv).dataset_id,
                           hyperparameters=fast_hp)
    assert gw.proc.wait(180) == -9  # died after the rename, before the registry recorded v1
    assert (_models(data_dir, "acme") / "v1" / "artifact.json").is_file()
    assert _registered(data_dir, "acme") == []

    # The next job trains on sales 1,000 times larger: its forecasts cannot pass for the first's.
    bigger = pd.read_csv(sample_csv)
    bigger["sales"] *= 1000
    gw = gateway_factory(data_dir).start()
    with ForecastClient(target=gw.target, api_key=key) as client:
        failed = client.get_job("acme", cut.job_id)
        assert failed.state == pb.JOB_STATE_FAILED and "gateway stopped" in failed.failure_reason
        assert [p.name[:3] for p in (data_dir / "quarantine" / "acme").iterdir()] == ["v1-"]
        dataset = client.upload_dataset("acme", bigger.to_csv(index=False).encode(),
                                        filename="bigger.csv")
        done = client.wait_for_job("acme", client.train("acme", dataset_id=dataset.dataset_id,
                                                        hyperparameters=fast_hp).job_id)
        assert done.state == pb.JOB_STATE_SUCCEEDED and done.model_version == "v1"
        live = [m for m in client.list_models("acme") if m.live]
        assert [(m.version, m.dataset_id) for m in live] == [("v1", dataset.dataset_id)]
        served = Predictor.load(_models(data_dir, "acme") / "v1")
        rows = served.future_rows(3)
        values = client.predict("acme", date=rows["date"].tolist(),
                                store_nbr=rows["store_nbr"].tolist(), family=rows["family"].tolist())
    np.testing.assert_allclose(values, served.predict(rows), rtol=1e-6)
    assert values.mean() > 50 * pd.read_csv(sample_csv)["sales"].mean()


@pytest.mark.slow
def test_kill_during_training_fails_the_job_and_keeps_the_live_model(
        tmp_path, sample_csv, fast_hp, gateway_factory) -> None:
    data_dir = tmp_path / "data"
    gw = gateway_factory(data_dir).start()
    key = gw.api_key("acme")
    rows = {"date": ["2017-08-16", "2017-08-17"], "store_nbr": [1, 1],
            "family": ["BREAD/BAKERY", "BREAD/BAKERY"]}
    with ForecastClient(target=gw.target, api_key=key) as client:
        dataset = client.upload_dataset("acme", sample_csv)
        client.wait_for_job("acme", client.train("acme", dataset_id=dataset.dataset_id,
                                                 hyperparameters=fast_hp).job_id)
        before = client.predict("acme", **rows)
        running = client.train("acme", dataset_id=dataset.dataset_id, hyperparameters=SLOW_HP)
        deadline = time.monotonic() + 60
        while client.get_job("acme", running.job_id).stage != "fit":
            assert time.monotonic() < deadline, "the job never reached the fit stage"
            time.sleep(0.1)
    gw.kill()

    gw = gateway_factory(data_dir).start()
    with ForecastClient(target=gw.target, api_key=key) as client:
        failed = client.get_job("acme", running.job_id)
        assert failed.state == pb.JOB_STATE_FAILED
        assert "gateway stopped while this job was running" in failed.failure_reason
        assert [(m.version, m.live) for m in client.list_models("acme")] == [("v1", True)]
        np.testing.assert_array_equal(client.predict("acme", **rows), before)
    assert sorted(p.name for p in _models(data_dir, "acme").iterdir()) == ["v1"]


def test_a_publish_that_fails_frees_the_version_name(
        tmp_path, make_artifact, restartable_gateway) -> None:
    from forecasting.errors import ArtifactError

    def refuse(model) -> None:
        raise ArtifactError(f"cannot load {model.version}")

    data_dir = tmp_path / "data"
    gw = restartable_gateway(data_dir)
    gw.backend.load_model = refuse  # every new version fails to load
    with pytest.raises(ArtifactError, match="cannot load v1"):
        gw.server.service.models.import_model(Tenant("shop"), make_artifact("bad"))
    assert list(_models(data_dir, "shop").iterdir()) == [_models(data_dir, "shop") / ".staging"]
    assert _registered(data_dir, "shop") == []
    gw.stop()
    gw = restartable_gateway(data_dir)
    assert gw.server.service.models.import_model(Tenant("shop"), make_artifact("good")).version == "v1"
