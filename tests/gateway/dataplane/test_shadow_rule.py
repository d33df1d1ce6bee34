"""The shadow trial's rule on hand-made evidence: pairing on shared cells, waiting for enough
days and cells, the margin, and the field each bad value names."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from forecast_gateway.dataplane import shadow_rule
from forecast_gateway.dataplane.shadow_rule import PromoteAfter
from forecast_gateway.errors import InvalidArgument

from forecasting.metrics import scores


def _served(days: int, champion: float, challenger: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    cells = pd.DataFrame([(s, "A", d) for s in (1, 2) for d in range(100, 100 + days)],
                         columns=["store_nbr", "family", "day"])
    served = pd.concat([cells.assign(version="v1", forecast=champion),
                        cells.assign(version="v2", forecast=challenger),
                        # a cell only the champion forecast is not evidence
                        pd.DataFrame([{"store_nbr": 3, "family": "A", "day": 100,
                                       "version": "v1", "forecast": 9.0}])], ignore_index=True)
    served["step"] = served["day"] - 99
    # ...nor one both forecast, the champion from an earlier origin (a longer lead)
    early = pd.DataFrame([{"store_nbr": 4, "family": "A", "day": 100, "version": v,
                           "forecast": 10.0, "step": step} for v, step in (("v1", 5), ("v2", 1))])
    served = pd.concat([served, early], ignore_index=True)
    actuals = pd.concat([cells, pd.DataFrame([{"store_nbr": s, "family": "A", "day": 100}
                                              for s in (3, 4)])]).assign(sales=10.0)
    return served, actuals


def test_pairs_are_the_cells_both_forecast_with_an_actual():
    served, actuals = _served(4, 8.0, 9.5)
    pairs = shadow_rule.paired(served, actuals, "v1", "v2")
    assert len(pairs) == 8 and set(pairs["store_nbr"]) == {1, 2}
    steps = shadow_rule.by_step(pairs, {"champion": {0: 9}, "challenger": {0: 8}})
    assert [s["step"] for s in steps] == [0, 1, 2, 3, 4]
    assert steps[0]["cells"] == 8 and steps[0]["champion_cells"] == 9
    assert steps[0]["challenger"]["rmsle"] == scores(np.full(8, 9.5), np.full(8, 10.0))["rmsle"]


@pytest.mark.parametrize("days, champion, challenger, margin, state", [
    (2, 8.0, 9.5, 0.0, "running"),      # 2 of 3 days
    (3, 8.0, 9.5, 0.0, "promoted"),
    (3, 9.5, 8.0, 0.0, "rejected"),
    (3, 9.0, 9.0, 0.0, "promoted"),     # at least as good
    (3, 9.0, 9.0, 0.1, "rejected"),     # not better by the margin
])
def test_the_rule_waits_then_decides(days, champion, challenger, margin, state):
    served, actuals = _served(days, champion, challenger)
    pairs = shadow_rule.paired(served, actuals, "v1", "v2")
    verdict = shadow_rule.evaluate(PromoteAfter(3, 4, margin), "rmsle", pairs)
    assert verdict["state"] == state, verdict["reason"]
    assert verdict["days"] == days and verdict["cells"] == 2 * days
    if state == "running":
        assert verdict["reason"] == "waiting for evidence: 2 of 3 days of actuals"


def test_no_evidence_keeps_running():
    empty = pd.DataFrame(columns=["version", "store_nbr", "family", "day", "step", "forecast"])
    pairs = shadow_rule.paired(empty, pd.DataFrame(), "v1", "v2")
    verdict = shadow_rule.evaluate(PromoteAfter(), "rmsle", pairs)
    assert verdict["state"] == "running" and verdict["champion_score"] is None


@pytest.mark.parametrize("fields, name", [
    ((-1, 0, 0.0), "promote_after.days"), ((367, 0, 0.0), "promote_after.days"),
    ((0, -1, 0.0), "promote_after.min_cells"), ((0, 0, -0.1), "promote_after.margin"),
    ((0, 0, 0.6), "promote_after.margin"), ((0, 0, math.inf), "promote_after.margin"),
])
def test_bad_values_name_their_field(fields, name):
    with pytest.raises(InvalidArgument) as info:
        PromoteAfter.checked(*fields)
    assert info.value.field == name


def test_defaults_and_policies():
    assert PromoteAfter.checked(0, 0, 0.0) == PromoteAfter(7, 100, 0.0)
    assert shadow_rule.for_train("if_better", None, {}) is None
    with pytest.raises(InvalidArgument) as info:
        shadow_rule.for_train("always", (3, 0, 0.0), {})
    assert info.value.field == "promote_after"
    assert shadow_rule.for_train("shadow", None, {}) == {"days": 7, "min_cells": 100,
                                                         "margin": 0.0}


def test_two_replicas_end_one_trial_once_on_both_engines(database_url, tmp_path) -> None:
    """Two gateways on one database that both judge a trial (both got actuals): the pointer is
    cleared by one of them only, which alone stores its decision and switches the live
    version; the other is told it was overtaken."""
    import time

    from forecast_gateway.domain import ModelVersion
    from forecast_gateway.store.database import Database
    from forecast_gateway.store.registry import Registry

    from forecasting.promotion import Decision

    dbs = [Database.open(database_url), Database.open(database_url)]
    a, b = (Registry(db, tmp_path) for db in dbs)
    a.ensure_retailer("acme")
    for number, live, shadow in ((1, True, False), (2, False, True)):
        a.add_model(ModelVersion("acme", f"v{number}", tmp_path / f"v{number}", "", "", "xgboost",
                                 "xgboost", "", "", 16, time.time()), number, make_live=live,
                    shadow=shadow)
    assert b.shadow_versions() == {"acme": "v2"} and b.live_version("acme") == "v1"
    before = b.live_counter()
    promoted = {"state": "promoted", "cells": 10}
    rejected = {"state": "rejected", "cells": 10}
    won = a.end_shadow("acme", "v2", promoted, ["v1", "v2"], "v2",
                       Decision("shadow", True, reason="promoted"), make_live="v2")
    lost = b.end_shadow("acme", "v2", rejected, ["v1", "v2"], "v2",
                        Decision("shadow", False, reason="rejected"))
    assert (won, lost) == (True, False)
    assert b.shadow_versions() == {} and b.live_version("acme") == "v2"
    assert b.live_counter() > before                       # the other replicas follow
    models = {m.version: m for m in b.list_models("acme")}
    assert models["v1"].trial == promoted and models["v2"].trial == promoted
    assert models["v2"].promotion.promoted and not models["v2"].shadow
    for db in dbs:
        db.close()
