import pytest

from forecasting.errors import HyperparameterError
from forecasting.hyperparameters import SPECS, parse


def test_defaults_and_string_conversion():
    hp = parse({"num_round": "300", "eta": "0.05", "log_target": "False", "model_kind": "lstm"})
    assert hp.num_round == 300 and hp.eta == 0.05 and hp.log_target is False
    assert hp.model_kind == "lstm" and hp.horizon == 16 and hp.max_depth == 8
    assert parse(None).model_kind == "xgboost"
    assert parse({"num_round": "1e3"}).num_round == 1000
    assert set(parse({}).as_strings()) == set(SPECS)
    assert parse({}).as_strings()["log_target"] == "true"


@pytest.mark.parametrize("raw, message", [
    ({"num_rounds": "10"}, "hyperparameter 'num_rounds': unknown hyperparameter"),
    ({"num_round": "abc"}, "hyperparameter 'num_round': must be an integer, got 'abc'"),
    ({"num_round": "2.5"}, "must be an integer"),
    ({"eta": "fast"}, "hyperparameter 'eta': must be a number"),
    ({"eta": "2"}, "must be between 0.0001 and 1"),
    ({"horizon": "0"}, "hyperparameter 'horizon': must be between 1 and 366"),
    ({"log_target": "maybe"}, "must be true or false"),
    ({"model_kind": "prophet"}, "must be one of xgboost, lstm, hybrid"),
    ({"eta": "nan"}, "must be a number"),
])
def test_bad_values_name_the_key(raw, message):
    with pytest.raises(HyperparameterError) as err:
        parse(raw)
    assert message in str(err.value)
