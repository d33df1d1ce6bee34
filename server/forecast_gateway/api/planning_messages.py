"""Translation between forecastapi.v1 messages and the data plane for prediction intervals,
the promotion gate, Forecast and Turnover. Translation only; the servicer calls these."""

from __future__ import annotations

import numpy as np
from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb

from forecast_gateway.api.shadow_messages import trial_to_pb
from forecast_gateway.dataplane.planning import HorizonForecast, Inventory, Receipts, TurnoverReport
from forecast_gateway.domain import Coverage, RowColumns
from forecasting.promotion import Decision

_PROMOTE_TO_PB = {"if_better": pb.PROMOTION_POLICY_IF_BETTER,
                  "always": pb.PROMOTION_POLICY_ALWAYS, "never": pb.PROMOTION_POLICY_NEVER,
                  "shadow": pb.PROMOTION_POLICY_SHADOW}
_PROMOTE_FROM_PB = {v: k for k, v in _PROMOTE_TO_PB.items()}
_PROMOTE_FROM_PB[pb.PROMOTION_POLICY_UNSPECIFIED] = "if_better"


def promote_from_pb(value: int) -> str:
    """PromotionPolicy -> "if_better" | "always" | "never" | "shadow" (an unknown number stays visible,
    so the data plane can name it)."""
    return _PROMOTE_FROM_PB.get(value, f"PromotionPolicy {value}")


def promote_to_pb(policy: str) -> int:
    """"if_better" | "always" | "never" | "shadow" -> PromotionPolicy."""
    return _PROMOTE_TO_PB.get(policy, pb.PROMOTION_POLICY_UNSPECIFIED)


def decision_to_pb(decision: Decision | None) -> pb.PromotionDecision | None:
    """The data plane's promotion decision -> pb.PromotionDecision (None stays unset)."""
    if decision is None:
        return None
    return pb.PromotionDecision(
        policy=promote_to_pb(decision.policy), promoted=decision.promoted, metric=decision.metric,
        challenger_score=decision.challenger_score, champion_score=decision.champion_score,
        champion_version=decision.champion_version, window_start_date=decision.window_start,
        window_end_date=decision.window_end, reason=decision.reason,
        trial=trial_to_pb(decision.trial))


def intervals_to_pb(bounds: dict[float, tuple[np.ndarray, np.ndarray]],
                    ) -> list[pb.PredictionInterval]:
    """{level: (lower, upper)} -> one PredictionInterval per level, in the order given."""
    return [pb.PredictionInterval(level=level, lower=lower.tolist(), upper=upper.tolist())
            for level, (lower, upper) in bounds.items()]


def coverage_to_pb(coverage: list[Coverage]) -> list[pb.IntervalCoverage]:
    """The test-window coverage per level -> IntervalCoverage messages."""
    return [pb.IntervalCoverage(level=c.level, coverage=c.coverage, mean_width=c.mean_width,
                                mean_interval_score=c.mean_interval_score,
                                coverage_per_third=c.coverage_per_third)
            for c in coverage]


def promotions_from_pb(batch: pb.RowBatch) -> RowColumns | None:
    """Promotion rows (day, store_nbr, family, onpromotion); None when empty."""
    if not len(batch.day) and not len(batch.onpromotion):
        return None
    return RowColumns(
        day=np.fromiter(batch.day, dtype=np.int32, count=len(batch.day)),
        store_nbr=np.fromiter(batch.store_nbr, dtype=np.int32, count=len(batch.store_nbr)),
        family=np.asarray(list(batch.family), dtype=str) if len(batch.family)
        else np.zeros(0, dtype=str),
        onpromotion=np.fromiter(batch.onpromotion, dtype=np.int32, count=len(batch.onpromotion)))


def forecast_to_pb(answer: HorizonForecast) -> pb.ForecastResponse:
    """HorizonForecast -> ForecastResponse."""
    rows = answer.rows
    batch = pb.RowBatch(day=rows.day.tolist(), store_nbr=rows.store_nbr.tolist(),
                        family=rows.family.tolist(),
                        onpromotion=[] if rows.onpromotion is None else rows.onpromotion.tolist())
    return pb.ForecastResponse(rows=batch, forecast=answer.values.tolist(),
                               intervals=intervals_to_pb(answer.bounds),
                               model_version=answer.model_version, warnings=answer.warnings)


def inventory_from_pb(batch: pb.InventoryBatch) -> Inventory:
    """InventoryBatch -> Inventory (numpy columns; lengths are checked by the library)."""
    return Inventory(
        store_nbr=np.fromiter(batch.store_nbr, dtype=np.int64, count=len(batch.store_nbr)),
        family=np.asarray(list(batch.family), dtype=str) if len(batch.family)
        else np.zeros(0, dtype=str),
        on_hand=np.fromiter(batch.on_hand, dtype=np.float64, count=len(batch.on_hand)))


def receipts_from_pb(batch: pb.ReceiptBatch) -> Receipts:
    """ReceiptBatch -> Receipts."""
    return Receipts(
        day=np.fromiter(batch.day, dtype=np.int64, count=len(batch.day)),
        store_nbr=np.fromiter(batch.store_nbr, dtype=np.int64, count=len(batch.store_nbr)),
        family=np.asarray(list(batch.family), dtype=str) if len(batch.family)
        else np.zeros(0, dtype=str),
        quantity=np.fromiter(batch.quantity, dtype=np.float64, count=len(batch.quantity)))


def turnover_to_pb(report: TurnoverReport) -> pb.TurnoverResponse:
    """TurnoverReport -> TurnoverResponse."""
    t = report.table
    return pb.TurnoverResponse(
        store_nbr=report.store_nbr.tolist(), family=[str(f) for f in report.family],
        on_hand=t.on_hand.tolist(), receipts=t.receipts.tolist(), demand=t.demand.tolist(),
        days_of_supply=t.days_of_supply.tolist(), beyond_horizon=t.beyond_horizon.tolist(),
        turnover=t.turnover.tolist(),
        stockout_probability=t.stockout_probability.tolist(), days=report.days,
        lead_time_days=report.lead_time_days, first_date=report.first_date,
        model_version=report.model_version)
