"""Retailer ids become directory names: the whole id must match, a trailing newline included."""

from __future__ import annotations

import pytest
from forecast_gateway.errors import InvalidArgument
from forecast_gateway.store.storage import check_retailer


@pytest.mark.parametrize("retailer", ["acme", "a", "acme-2_b", "0" * 63])
def test_valid_ids_pass(retailer: str) -> None:
    assert check_retailer(retailer) == retailer


@pytest.mark.parametrize("retailer", ["acme\n", "acme\r\n", "\nacme", "acme ", "Acme", "-acme",
                                      "a/b", "..", "0" * 64, "acme\x00", "ácme"])
def test_invalid_ids_are_refused(retailer: str) -> None:
    with pytest.raises(InvalidArgument, match="not a valid retailer id"):
        check_retailer(retailer)
