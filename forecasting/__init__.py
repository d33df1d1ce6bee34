"""The shared forecasting library: schema, cleaning, splits, features, models, metrics, artifacts.

It has no gRPC or gateway dependency; the SageMaker containers and the gateway's local backend
both run this code.
"""

__version__ = "0.1.0"
