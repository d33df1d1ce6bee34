import numpy as np
import pandas as pd
import pytest

from forecasting.errors import DataValidationError
from forecasting.schema import load_history, read_table, validate_future, validate_history

GOOD = (b"date,store_nbr,family,sales,onpromotion\n"
        b"2017-01-01,1,BEVERAGES,10.5,0\n"
        b"2017-01-02,1,BEVERAGES,3,2\n"
        b'2017-01-01,2,"LIQUOR,WINE,BEER",0,0\n')


def test_good_csv_is_normalised():
    frame, report = load_history(GOOD)
    assert list(frame.columns) == ["date", "store_nbr", "family", "sales", "onpromotion"]
    assert frame["date"].dt.strftime("%Y-%m-%d").tolist() == ["2017-01-01", "2017-01-02",
                                                               "2017-01-01"]
    assert frame["family"].astype(str).tolist()[2] == "LIQUOR,WINE,BEER"
    assert frame["sales"].tolist() == [10.5, 3.0, 0.0]
    assert report["rows_read"] == 3 and report["ignored_columns"] == []


def test_parquet_is_read_by_content(tmp_path):
    frame = pd.read_csv(pd.io.common.BytesIO(GOOD))
    path = tmp_path / "data.csv"            # a misleading name: content decides
    frame.to_parquet(path)
    parsed, _ = load_history(path)
    assert len(parsed) == 3 and parsed["onpromotion"].tolist() == [0, 2, 0]


def test_missing_or_null_onpromotion_is_repaired_and_counted():
    frame, report = load_history(b"date,store_nbr,family,sales\n2017-01-01,1,A,1\n")
    assert frame["onpromotion"].tolist() == [0] and report["onpromotion_column_missing"]
    frame, report = load_history(b"date,store_nbr,family,sales,onpromotion\n"
                                 b"2017-01-01,1,A,1,\n2017-01-02,1,A,1,3\n")
    assert frame["onpromotion"].tolist() == [0, 3] and report["onpromotion_nulls_filled"] == 1


def test_extra_columns_are_ignored_and_reported():
    _, report = load_history(b"id,date,store_nbr,family,sales,city\n0,2017-01-01,1,A,1,Quito\n")
    assert report["ignored_columns"] == ["city"]


@pytest.mark.parametrize("data, column, words, rows", [
    (b"", None, "empty", []),
    (b"date,store_nbr,family,sales\n", None, "no data rows", []),
    (b"\xff\xfe\x00d\x00a", None, "not UTF-8", []),
    (b"date,store_nbr,sales\n2017-01-01,1,3\n", "family", "required column is missing", []),
    (b"date,store_nbr,family,sales\n2017-01-01,1,A,1\n2017-13-45,1,A,1\nyesterday,1,A,2\n",
     "date", "YYYY-MM-DD", [2, 3]),
    (b"date,store_nbr,family,sales\n2017-01-01,1,A,-4\n", "sales", ">= 0", [1]),
    (b"date,store_nbr,family,sales\n2017-01-01,1,A,1\n2017-01-02,1,A,lots\n", "sales",
     "number", [2]),
    (b"date,store_nbr,family,sales\n2017-01-01,1,A,\n", "sales", "number", [1]),
    (b"date,store_nbr,family,sales\n2017-01-01,1.5,A,1\n", "store_nbr", "whole number", [1]),
    (b"date,store_nbr,family,sales,onpromotion\n2017-01-01,1,A,1,-1\n", "onpromotion",
     "whole number", [1]),
    (b"date,store_nbr,family,sales\n2017-01-01,1,A,1\n2017-01-01,1,B,1\n2017-01-01,1,A,2\n",
     "date, store_nbr, family", "only once", [1, 3]),
])
def test_bad_input_is_rejected_naming_column_rule_and_rows(data, column, words, rows):
    with pytest.raises(DataValidationError) as err:
        load_history(data)
    assert err.value.column == column
    assert words in str(err.value)
    assert err.value.rows == rows


def test_many_bad_rows_show_a_few_and_the_count():
    body = b"date,store_nbr,family,sales\n" + b"".join(
        f"2017-01-{d:02d},1,A,-1\n".encode() for d in range(1, 21))
    with pytest.raises(DataValidationError) as err:
        load_history(body)
    assert err.value.rows == [1, 2, 3, 4, 5] and "20 rows in all" in str(err.value)


def test_missing_file_and_damaged_parquet(tmp_path):
    with pytest.raises(DataValidationError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    bad = tmp_path / "x.parquet"
    bad.write_bytes(b"PAR1garbage")
    with pytest.raises(DataValidationError, match="Parquet"):
        read_table(bad)


def test_future_rows_need_no_sales_and_keep_order():
    frame, _ = validate_future(pd.DataFrame({"date": ["2017-08-17", "2017-08-16"],
                                             "store_nbr": [2, 1], "family": ["B", "A"]}))
    assert frame["store_nbr"].tolist() == [2, 1]
    assert np.all(frame["onpromotion"] == 0)


def test_validate_history_accepts_datetime_columns():
    frame = pd.DataFrame({"date": pd.to_datetime(["2017-01-01"]), "store_nbr": [1],
                          "family": ["A"], "sales": [1.0]})
    out, _ = validate_history(frame)
    assert str(out["date"].iloc[0].date()) == "2017-01-01"


def test_parquet_reads_only_the_contract_columns_text_as_categories(tmp_path):
    frame = pd.read_csv(pd.io.common.BytesIO(GOOD))
    frame.insert(0, "id", range(3))
    frame["city"] = "Quito"
    path = tmp_path / "data.parquet"
    frame.to_parquet(path)
    raw = read_table(path)
    assert list(raw.columns) == ["date", "store_nbr", "family", "sales", "onpromotion"]
    assert isinstance(raw["date"].dtype, pd.CategoricalDtype)
    assert isinstance(raw["family"].dtype, pd.CategoricalDtype)
    parsed, report = validate_history(raw)
    assert report["ignored_columns"] == ["city"]        # the id is known, just not needed
    assert parsed["family"].astype(str).tolist()[2] == "LIQUOR,WINE,BEER"
    with pytest.raises(DataValidationError, match="found: date, store_nbr, family, onpromotion"):
        load_history(_parquet_without(frame, "sales", tmp_path))


def _parquet_without(frame: pd.DataFrame, column: str, tmp_path) -> str:
    path = tmp_path / f"without-{column}.parquet"
    frame.drop(columns=[column]).to_parquet(path)
    return str(path)


def test_family_codes_read_as_numbers_and_text_are_one_family():
    """A frame whose family column mixes numbers and strings (pandas reads SKU codes such as
    22423 and "22423A" so, and "22423" in another chunk as text) keeps each code one family."""
    frame = pd.DataFrame({"date": ["2017-01-01", "2017-01-02", "2017-01-01"],
                          "store_nbr": [1, 1, 1], "family": [22423, "22423", "22423A"],
                          "sales": [1.0, 2.0, 3.0]})
    out, _ = validate_history(frame)
    assert list(out["family"].astype(str)) == ["22423", "22423", "22423A"]
    assert out["family"].cat.categories.is_unique
