"""`provnet tee result-key|open-result`: a grantee opens a sealed ``tee-join`` output.

The output is sealed by the job's own ``compute`` (what the enclave runs) with the key
the CLI made; the CLI opens it from a `task result` answer, refuses another key, and
never overwrites a key file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pytest

from ledger.task_params import ParamsEnvelope
from node.algorithms import tee
from scripts.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sealed_answer(result_key: str) -> tuple[dict[str, object], dict[str, object]]:
    params = tee.Params.from_json({"key": "id", "sum": ["a", "b"], "result_key": result_key})
    left = pa.table({"id": ["x", "y", "z"], "a": pa.array([1, 2, 3], pa.int64())})
    right = pa.table({"id": ["y", "z", "w"], "b": pa.array([10, 20, 30], pa.int64())})
    inputs = {
        owner: tee.encode_input(tee.InputHeader(params, 1), table)
        for owner, table in (("o1", left), ("o2", right))
    }
    output = json.loads(tee.compute(inputs))
    envelope = ParamsEnvelope.new(params.to_json())
    answer = {"result": {"output": output}, "params": envelope.to_json()}
    return answer, {"matched": 2, "sums": {"a": 5, "b": 30}, "suppressed": None}


def test_a_grantee_opens_its_sealed_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "grantee.pem"
    code, out, _ = run(capsys, "tee", "result-key", "--out", str(key))
    assert code == 0 and os.stat(key).st_mode & 0o077 == 0
    made = json.loads(out)
    assert len(bytes.fromhex(made["resultKey"])) == 32 and "open-result" in made["next"]
    answer, expected = sealed_answer(made["resultKey"])
    assert "matched" not in json.dumps(answer["result"])
    path = tmp_path / "result.json"
    path.write_text(json.dumps(answer))
    code, out, _ = run(capsys, "tee", "open-result", "--key", str(key), str(path))
    assert code == 0 and json.loads(out) == expected

    code, _, err = run(capsys, "tee", "result-key", "--out", str(key))
    assert code != 0 and "exists" in err
    other = tmp_path / "other.pem"
    run(capsys, "tee", "result-key", "--out", str(other))
    code, out, err = run(capsys, "tee", "open-result", "--key", str(other), str(path))
    assert code != 0 and "does not open" in err and out == ""
