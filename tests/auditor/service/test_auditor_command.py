"""`provnet auditor init` then `provnet auditor run` as a real process on the scenario's
anvil: it writes its config and report key, indexes the chain, answers /v1/status and
stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from auditor.report import dsse
from auditor.service.config import AuditorConfig
from scripts.anvil import free_port
from scripts.cli import main
from tests.auditor.service_scenario import Scenario

ROOT = Path(__file__).resolve().parents[3]


def test_init_then_run_serves_status_indexes_and_stops_on_sigterm(
    service_scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = service_scenario
    directory = tmp_path / "auditor"
    listen = f"127.0.0.1:{free_port()}"
    argv = ["auditor", "init", "--node-config", str(s.regulator_config), "--dir", str(directory)]
    assert main([*argv, "--listen", listen, "--checkpoint-interval", "1"]) == 0
    out, err = capsys.readouterr()
    config_path = directory / "auditor.json"
    assert json.loads(out)["config"] == str(config_path)
    assert f"provnet auditor run --config {config_path}" in err
    config = AuditorConfig.load(config_path)
    assert config.chain_url == s.url and config.listen == listen
    assert config.manifest == s.manifest.resolve()
    # Each database gets its own AnchorLog log name: a second auditor run by the same
    # regulator key must not collide with this one's query log.
    assert config.query_log_name.startswith("auditor-query-log-")
    assert config.query_log_name != "auditor-query-log"
    assert (config.report_key.stat().st_mode & 0o777) == 0o600
    signer = dsse.load_signer(config.report_key)
    assert dsse.public_key_pem(signer) == config.report_public_key.read_bytes()
    # A second init into the same directory would replace the report key: refused.
    assert main([*argv, "--listen", listen]) == 2
    assert "already holds an auditor" in capsys.readouterr().err

    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.cli", "auditor", "run", "--config", str(config_path)],
        cwd=ROOT,
        env={**os.environ, "GRPC_VERBOSITY": "ERROR"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        assert started["url"] == f"http://{listen}"
        head = s.chain.head()
        deadline = time.monotonic() + 20
        while True:
            status = httpx.get(f"http://{listen}/v1/status", timeout=5)
            assert status.status_code == 200
            if status.json()["index"]["completeUpToBlock"] >= head:
                break
            assert time.monotonic() < deadline, status.json()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert proc.stderr is not None
        assert "auditor stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
