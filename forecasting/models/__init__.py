"""Model members by kind. A kind's module is imported only when it is used, so XGBoost-only
training and serving never pay TensorFlow's import time or memory."""

from __future__ import annotations

import importlib

MEMBER_CLASSES = {
    "xgboost": ("forecasting.models.xgboost_member", "XGBoostMember"),
    "lstm": ("forecasting.models.lstm_member", "LSTMMember"),
    "hybrid": ("forecasting.models.hybrid", "HybridMember"),
}


def member_class(kind: str):
    """The class that implements ``kind``."""
    module, name = MEMBER_CLASSES[kind]
    return getattr(importlib.import_module(module), name)
