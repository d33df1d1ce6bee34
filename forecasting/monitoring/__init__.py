"""Watching a model after it goes live: new actuals roll its history forward (`actuals`), served
forecasts are scored against what then sold (`live_accuracy`), and recent data is compared with
the training window (`drift`). Pure functions over DataFrames and arrays; the gateway stores and
serves the results."""
