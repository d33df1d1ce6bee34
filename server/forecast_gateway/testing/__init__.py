"""TEST-ONLY helpers that ship with the gateway so tests, benchmarks and scripts share them:
`process.GatewayProcess` (the gateway as a child process on 127.0.0.1) and `crashpoints` (the
FORECAST_GATEWAY_TEST_CRASH_AT hook that kills the gateway at a named point of a publish).
Nothing in the product imports `process`; `crashpoints.crash_point` is a no-op unless that
variable is set."""
