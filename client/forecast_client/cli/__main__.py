"""`python -m forecast_client.cli`: the same as the `forecast` console script."""

import sys

from forecast_client.cli.app import main

sys.exit(main())
