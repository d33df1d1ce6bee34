"""`forecast`: the command-line client of the forecast gateway.

    forecast --target 127.0.0.1:50051 upload --retailer acme data/sample/train.csv
    forecast train --retailer acme --data data/sample/train.csv --wait [--promote if_better]
    forecast wait --retailer acme JOB_ID
    forecast predict --retailer acme --days 16 [--levels 80 95] --output forecasts.csv
    forecast predict --retailer acme --input future.csv --output -
    forecast turnover --retailer acme --inventory inv.csv [--lead-time 7]
    forecast plot --retailer acme --store 1 --family "GROCERY I" --output plot.png
    forecast metrics --retailer acme [--json]
    forecast models --retailer acme
    forecast promote --retailer acme v2
    forecast approve --retailer acme v2 [--description "checked by planning"]

One module per group of commands (`datasets`, `jobs`, `forecasts`, `models`, `monitor`,
`plot`); `app` builds the parser and turns every failure into one line on stderr (`messages`,
the one place where errors become the user's words).
"""

from forecast_client.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
