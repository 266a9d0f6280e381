"""README's "Running a consortium by hand", run exactly as written.

The section's ```sh blocks are parsed from README.md (never copied here) and run in
order by one `bash` (``set -euo pipefail``), as a newcomer would paste them into one
terminal. Only these substitutions are made, each of which must match, so an edit of
the README that breaks one fails here instead of silently running something else:

* ``make setup`` becomes ``true``: the suite already runs from a set-up checkout, and a
  test must not reinstall the virtualenv it runs from.
* ``mkdir -p consortium && cd consortium`` writes under the test's temporary directory
  instead of the checkout.
* Every port the section names (anvil's 8545, the nodes' peer and API ports) becomes a
  free port, the same one everywhere it appears, so parallel tests cannot collide.

The script runs from the checkout with the ``PROVNET_*`` variables removed from the
environment (the section sets its own). Then: the task completed, its figures equal the
plaintext statistics over the CSV rows the section wrote, and `provnet audit verify`
printed ``"verified": true`` with every participant's evidence fetched, and the
auditor service's verification through its API agrees and serves the report it signed.
Whatever happens, the section's own stop block is run, then anything still alive in the
script's process group is terminated.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import signal
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from node.algorithms import output_policy, stats
from node.algorithms.identifiers import normalise
from tests.anvil import free_port

REPO = Path(__file__).resolve().parents[2]
SECTION = "## Running a consortium by hand"
SCRIPT_TIMEOUT = 900.0  # generous: a loaded 2-core machine; a healthy run takes ~2 minutes
MARKER = "@@readme-block"
PORT = re.compile(
    r"(?<=127\.0\.0\.1:)(\d{4,5})\b|(?<=--port )(\d{4,5})\b|(?<=/dev/tcp/127\.0\.0\.1/)(\d{4,5})\b"
)


def section_blocks(readme: str) -> list[str]:
    """The ```sh blocks of the section, in order."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start : end if end != -1 else len(readme)]
    return re.findall(r"^```sh\n(.*?)^```$", section, flags=re.S | re.M)


def substitute(script: str, work: Path) -> str:
    """The documented substitutions (see the module docstring); each must apply."""
    replacements = {
        "make setup ": "true ",
        "mkdir -p consortium && cd consortium": f"mkdir -p {work} && cd {work}",
    }
    for old, new in replacements.items():
        assert script.count(old) == 1, f"README no longer has {old!r} once"
        script = script.replace(old, new)
    ports: dict[int, int] = {}

    def port(match: re.Match[str]) -> str:
        original = int(match.group(0))
        if original not in ports:
            fresh = free_port()
            while fresh in ports.values():  # the kernel may hand out a port twice
                fresh = free_port()
            ports[original] = fresh
        return str(ports[original])

    script = PORT.sub(port, script)
    assert 8545 in ports, "the section no longer starts anvil on 8545"
    return script


def read_rows(path: Path, types: dict[str, str]) -> list[dict[str, Any]]:
    with path.open(newline="") as fh:
        return [
            {k: int(v) if types.get(k) == "integer" else v for k, v in row.items()}
            for row in csv.DictReader(fh)
        ]


def _stop(proc: subprocess.Popen[str], stop_block: str | None, work: Path) -> None:
    """After a failure, the section's own stop commands (its pid files name processes
    still running); then whatever is left in the script's process group. After a
    success the script already ran them, and its pid files may name reused pids."""
    if stop_block is not None and work.is_dir():
        subprocess.run(
            ["bash", "-c", stop_block], cwd=work, capture_output=True, timeout=120, check=False
        )
    for sig, grace in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def test_the_readme_section_runs_as_written(tmp_path: Path) -> None:
    blocks = section_blocks((REPO / "README.md").read_text())
    assert len(blocks) >= 5, "the section lost its ```sh blocks"
    work = tmp_path / "consortium"
    marked = "\n".join(f"echo '{MARKER} {i}'\n{block}" for i, block in enumerate(blocks))
    script = substitute("set -euo pipefail\n" + marked, work)
    stop_block = blocks[-1] if "kill" in blocks[-1] else ""
    assert stop_block, "the section's last block no longer stops the nodes"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVNET_")}
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: every background job in it
    )
    try:
        output, _ = proc.communicate(timeout=SCRIPT_TIMEOUT)
    except subprocess.TimeoutExpired:
        _stop(proc, stop_block, work)
        output, _ = proc.communicate()
        pytest.fail(f"the section did not finish in {SCRIPT_TIMEOUT} s:\n{_tail(output, work)}")
    finally:
        if proc.returncode is None:  # interrupted: make sure nothing outlives the test
            proc.kill()
        _stop(proc, None if proc.returncode == 0 else stop_block, work)
    assert proc.returncode == 0, f"the section failed:\n{_tail(output, work)}"

    # The task completed, with the plaintext figures over the rows the section wrote.
    answer = json.loads((work / "result.json").read_text())
    assert answer["state"] == "COMPLETED", answer
    params = json.loads((work / "params.json").read_text())
    types = {c["name"]: c["type"] for c in params["columns"]}
    rows = [row for path in sorted(work.glob("*-accounts.csv")) for row in read_rows(path, types)]
    assert len(rows) >= 20, "the section's CSV files went missing"
    levels = [int(n) for n in re.findall(r"--classification (\d)", "\n".join(blocks))]
    expected = stats.plaintext_stats(
        stats.StatsParams.from_json(params), rows, output_policy.effective(levels)
    ).to_json()
    result = answer["result"]
    assert {k: v for k, v in result.items() if k != "contributors"} == {
        k: v for k, v in expected.items() if k != "contributors"
    }
    providers = json.loads((work / "providers.json").read_text())
    assert len(result["contributors"]) == len(providers), result["contributors"]

    # The regulator's audit of the fetched transcripts verified.
    outputs = re.split(rf"^{MARKER} (\d+)$", output, flags=re.M)
    by_block = {int(outputs[i]): outputs[i + 1] for i in range(1, len(outputs) - 1, 2)}
    (verify_index,) = [
        i for i, b in enumerate(blocks) if "verify --config regulator/node.json $TASK " in b
    ]
    printed = by_block[verify_index]
    report, _ = json.JSONDecoder().raw_decode(printed[printed.index("{") :])
    assert report["verified"] is True, json.dumps(report, indent=2)
    assert '"verified": true' in printed
    # `audit verify --config` fetched every participant's evidence itself: every provider
    # and the creator's node anchored a root, and each transcript matched its root.
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["evidence_roots_match"]["status"] == "pass", checks["evidence_roots_match"]
    roots = checks["evidence_roots_match"]["evidence"]["roots"]
    assert len(roots) == len(providers) + 1, roots
    assert report["evidenceProblems"] == {}, report["evidenceProblems"]

    # The auditor service verified the same task through its API, and the signed report
    # it served is the one whose digest it gave (`audit check-report` already checked
    # the signature, or the section would have failed).
    served = json.loads((work / "verification.json").read_text())
    assert served["verified"] is True and served["task"] == answer["taskId"], served
    assert served["evidenceProblems"] == {}, served["evidenceProblems"]
    envelope = (work / "report.json").read_bytes()
    assert served["reportDigest"] == "sha256:" + hashlib.sha256(envelope).hexdigest()
    assert {c["name"]: c["status"] for c in served["checks"]} == {
        name: c["status"] for name, c in checks.items() if name != "params_commitment"
    } | {"params_commitment": "not-applicable"}

    _check_psi(work)


def _check_psi(work: Path) -> None:
    """The PSI job of the section: its count and sum equal Python sets over the
    normalised phone numbers of the two CSV files, and the regulator's audit passed."""
    answer = json.loads((work / "psi-result.json").read_text())
    assert answer["state"] == "COMPLETED", answer
    params = json.loads((work / "psi-params.json").read_text())
    kind = params["identifier_kind"]

    def keyed(name: str, column: str) -> list[tuple[str, dict[str, str]]]:
        with (work / name).open(newline="") as fh:
            return [(normalise(kind, row[column]), row) for row in csv.DictReader(fh)]

    mine = {key for key, _ in keyed("bank-a-customers.csv", params["requester_column"])}
    shared = [
        (k, r) for k, r in keyed("bank-b-customers.csv", params["responder_column"]) if k in mine
    ]
    assert answer["result"]["cardinality"] == len({k for k, _ in shared}) >= 5
    total = sum((Decimal(r[params["value_column"]]) for _, r in shared), Decimal(0))
    assert Decimal(answer["result"]["sum"]) == total
    report = json.loads((work / "psi-audit.json").read_text())
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert report["verified"] is True and not failed, failed
    assert report["evidenceProblems"] == {}, report["evidenceProblems"]


def _tail(output: str, work: Path) -> str:
    logs = "".join(f"\n--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(work.glob("*.log")))
    return output[-6000:] + logs
