"""The docs' commands run as written by a real bash: docs/http_api.md's curl block and
docs/cli.md's pipes below, and the README's "Using it" commands, one line at a time, in a
fresh directory: the gateway it starts, the key it prints (exported as the README says, from
the line the keys command printed), training on the sample, forecasts, turnover, the plot,
actuals and the monitor. Two things differ from a person at a terminal: a free port instead of
50051 (CI may have it taken; FORECAST_TARGET moves the CLI's default with it), and waiting for the gateway's port after the line that starts it
in the background. Every command must exit 0."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def bash_blocks(doc: str, heading: str) -> list[str]:
    """The ```bash blocks of `doc` (a path under the repository) after `heading`, up to the
    next heading of the same level, in order."""
    text = (ROOT / doc).read_text()
    start = text.index(heading)
    level = heading.split(" ", 1)[0]
    end = text.find(f"\n{level} ", start + len(heading))
    return re.findall(r"```bash\n(.*?)```", text[start:end if end > 0 else None], re.DOTALL)


def readme_commands(section: str = "## Using it") -> list[str]:
    """The command lines of the bash blocks in `section` of the README, in order."""
    return [line for block in bash_blocks("README.md", section)
            for line in block.splitlines() if line.strip()]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(port: int, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the README's gateway exited"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"the README's gateway did not listen on {port}")


def test_the_readme_commands_run_as_written(tmp_path: Path) -> None:
    for name in (".venv", "data"):
        (tmp_path / name).symlink_to(ROOT / name)
    port = str(_free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORECAST_")}
    env["FORECAST_TARGET"] = f"127.0.0.1:{port}"   # the CLI's default address, moved with the port
    printed = ""
    background: list[subprocess.Popen] = []
    lines = readme_commands()
    assert any("forecast-gateway" in line for line in lines) and len(lines) >= 8
    try:
        for line in lines:
            line = line.replace("50051", port)
            if line.startswith("export "):   # the user copies what the command above printed
                name = line.split()[1].split("=")[0]
                [given] = re.findall(rf"export {name}=(\S+)", printed)
                env[name] = given
                continue
            if line.rstrip().split("#")[0].rstrip().endswith("&"):
                command = line.split("#")[0].rstrip()[:-1]
                background.append(subprocess.Popen(["bash", "-c", command], cwd=tmp_path,
                                                   env=env, start_new_session=True,
                                                   stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL))
                _wait_for(int(port), background[-1])
                continue
            run = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=600, check=False)
            assert run.returncode == 0, f"{line}\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
            printed = run.stdout + run.stderr
        assert (tmp_path / "forecasts.csv").stat().st_size > 0
        assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
        # docs/cli.md's pipes, against the same gateway (its `forecast` is the venv's).
        [pipes] = bash_blocks("docs/cli.md", "### Files")
        (tmp_path / "forecasts.csv").unlink()
        script = "set -euo pipefail\n" + re.sub(r"(^|\| )forecast ", r"\1.venv/bin/forecast ",
                                                pipes, flags=re.MULTILINE)
        run = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=600, check=False)
        assert run.returncode == 0, script + run.stderr[-2000:]
        assert len((tmp_path / "forecasts.csv").read_text().splitlines()) > 3
    finally:
        for proc in background:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)


def test_the_http_docs_curl_calls_run_as_written(tmp_path: Path) -> None:
    """docs/http_api.md's curl block, as one bash script with `set -e` (every curl has -f, so
    any 4xx or 5xx fails it): free ports instead of 50051 and 8080, and a wait for the HTTP
    port after the line that starts the gateway."""
    for name in (".venv", "data"):
        (tmp_path / name).symlink_to(ROOT / name)
    grpc_port, http_port = str(_free_port()), str(_free_port())
    [block] = bash_blocks("docs/http_api.md", "## The seeds' calls, with curl")
    script = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT"]
    for line in block.replace("50051", grpc_port).replace("8080", http_port).splitlines():
        script.append(line)
        if line.split("#")[0].rstrip().endswith("&"):
            script.append(f"for i in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/{http_port}) "
                          "2>/dev/null && break; sleep 0.2; done")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORECAST_")}
    run = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert any('"job_state": "JOB_STATE_SUCCEEDED"' in line or "SUCCEEDED" in line
               for line in lines), run.stdout[-2000:]
    assert '"forecast"' in run.stdout and '"chunk_id": "b"' in run.stdout
