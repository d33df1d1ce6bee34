"""What the CLI says when something goes wrong: the one place where failures become words.

Every message is one line that says what is wrong and, when the user can act on it, what to
do, in the CLI's terms: flags and commands, not API method names, status code names or
exception class names.
"""

from __future__ import annotations

import re

import grpc

from forecast_client.errors import ForecastClientError

PROG = "forecast"
EXIT_OK, EXIT_SERVER, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A problem on the caller's side (flags, local files, a missing optional package): exit 2."""


#: API names that the gateway's messages use, in the CLI's words.
_API_WORDS = [
    (re.compile(r"train one first \(Train\)"), "train one first (forecast train)"),
    (re.compile(r"upload the file with UploadDataset"),
     "upload the file (forecast upload, or forecast train --data FILE)"),
    (re.compile(r"its first UploadDataset"), "its first upload (forecast upload)"),
    (re.compile(r"a PredictStream chunk"), "a chunk of rows (lower --chunk-rows)"),
    (re.compile(r"a Predict request"), "one request"),
    (re.compile(r"SetLiveModel \(forecast promote\)"), "forecast promote"),
    (re.compile(r"\(use SetLiveModel\)|SetLiveModel"), "forecast promote"),
    (re.compile(r"\brows\.day\b"), "date"),
    (re.compile(r"\b(?:rows|inventory|receipts|promotions)\.(store_nbr|family|onpromotion|on_hand"
                r"|quantity)\b"), r"\1"),
    (re.compile(r"ClientConfig\.target must be HOST:PORT"), "--target must be HOST:PORT"),
    (re.compile(r"ClientConfig\.api_key"), "the API key (--api-key or FORECAST_API_KEY)"),
    (re.compile(r"\bheader\.filename\b"), "the file name"),
    (re.compile(r"\bheader\.format\b"), "the file's format"),
    (re.compile(r"\bdata_uri\b"), "--data-uri"),
    (re.compile(r"\bmodel_version\b"), "--model-version"),
    (re.compile(r"\blead_time_days\b"), "--lead-time"),
    (re.compile(r"or ask to correct them"), "or replace them with forecast actuals --correct"),
]


def in_cli_words(details: str) -> str:
    """The gateway's message with API names replaced by the CLI's commands and flags."""
    for pattern, words in _API_WORDS:
        details = pattern.sub(words, details)
    return " ".join(details.split())  # one line


def describe(error: ForecastClientError, target: str) -> str:
    """One line for a failed call: what went wrong and what to do about it."""
    code, details = error.code, in_cli_words(error.details)
    if code == grpc.StatusCode.UNAVAILABLE:
        if "connect" in details.lower() or "cannot reach" in details:
            return (f"cannot reach the gateway at {target}: start it (forecast-gateway) or give "
                    "its address with --target or FORECAST_TARGET")
        return f"the gateway is unavailable ({details}); try again in a moment"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"no answer in time ({details}); try again, or allow longer with --timeout"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return (f"the gateway did not accept the credentials ({details}); check --api-key or "
                "FORECAST_API_KEY")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return f"not allowed: {details}; check --retailer and the API key"
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
        where = f" under request id {error.request_id}" if error.request_id else ""
        return f"the gateway failed ({details}); its log has the details{where}"
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return (f"the gateway at {target} does not offer this yet ({details}); it runs an older "
                "version than this client")
    if code == grpc.StatusCode.CANCELLED:
        return f"the call was cancelled ({details})"
    return details
