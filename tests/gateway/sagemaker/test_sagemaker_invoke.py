"""Payloads for InvokeEndpoint: under the limit, never splitting a series, rows back in order."""

from __future__ import annotations

import numpy as np
import pytest
from forecast_gateway.backends.sagemaker import invoke
from forecast_gateway.domain import RowColumns

from forecasting.errors import ForecastRequestError


def _rows(stores: int, families: list[str], days: int) -> RowColumns:
    grid = [(d, s, f) for d in range(days) for s in range(1, stores + 1) for f in families]
    day = np.array([17394 + d for d, _, _ in grid], dtype=np.int64)  # from 2017-08-16
    return RowColumns(day=day, store_nbr=np.array([s for _, s, _ in grid], dtype=np.int32),
                      family=np.array([f for _, _, f in grid], dtype=object),
                      onpromotion=np.arange(len(grid), dtype=np.int64) % 3)


def test_csv_lines_quote_families_with_commas() -> None:
    rows = _rows(1, ["LIQUOR,WINE,BEER", 'SAY "HI"'], 1)
    assert invoke.csv_lines(rows) == [b'2017-08-16,1,"LIQUOR,WINE,BEER",0',
                                      b'2017-08-16,1,"SAY ""HI""",1']


def test_payloads_stay_under_the_limit_and_keep_series_whole() -> None:
    rows = _rows(6, ["BEVERAGES", "BREAD/BAKERY", "LIQUOR,WINE,BEER"], 16)
    limit = 1500
    seen = np.zeros(len(rows), dtype=int)
    for idx, body in invoke.payloads(rows, limit):
        assert len(body) <= limit
        assert body.startswith(invoke.HEADER)
        assert list(idx) == sorted(idx)  # each payload keeps the rows' order
        series = {(rows.store_nbr[i], rows.family[i]) for i in idx}
        for s, f in series:  # every row of a series it holds
            whole = np.flatnonzero((rows.store_nbr == s) & (rows.family == f))
            assert set(whole) <= set(idx)
        seen[idx] += 1
    assert (seen == 1).all()


def test_one_series_over_the_limit_is_a_clear_error() -> None:
    rows = _rows(1, ["BEVERAGES"], 200)
    with pytest.raises(ForecastRequestError, match="store 1, family 'BEVERAGES' alone are"):
        list(invoke.payloads(rows, 1000))


def test_container_errors_map_to_the_taxonomy() -> None:
    """The body serve.py writes (forecasting.container.invocations) decodes to the same error,
    its field kept as a field; an older body without one is still a client error."""
    from forecasting.container.invocations import error_body
    from forecasting.errors import ArtifactError, UserError

    sent = ForecastRequestError("rows.family", "unknown family 'TOYS'")
    bad = invoke.container_error("forecast-acme", 400, error_body(str(sent), "ForecastRequestError",
                                                                   sent))
    assert isinstance(bad, ForecastRequestError) and bad.field == "rows.family"
    assert str(bad) == str(sent)
    old = invoke.container_error("forecast-acme", 400, '{"error": "rows.family: unknown", '
                                 '"type": "ForecastRequestError"}')
    assert type(old) is UserError and str(old) == "rows.family: unknown"
    no_intervals = invoke.container_error("forecast-acme", 400, error_body(
        "this model was saved without intervals", "ArtifactError"))
    assert isinstance(no_intervals, ArtifactError)
    proxy = invoke.container_error("forecast-acme", 404, "<html>not found</html>")
    assert type(proxy) is UserError and "not found" in str(proxy)
    broken = invoke.container_error("forecast-acme", 500, '{"error": "internal error", '
                                    '"type": "InternalError"}')
    assert "forecast-acme" in str(broken) and "answered 500: internal error" in str(broken)
