"""``auditor.json`` as an operator edits it: a misspelt key is named, never silently
replaced by its default, and every value round-trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditor.service.config import AuditorConfig
from ledger.ids import InvalidInput


def _config(tmp_path: Path, **overrides: object) -> AuditorConfig:
    values: dict[str, object] = {
        "chain_url": "http://127.0.0.1:8545",
        "manifest": tmp_path / "manifest.json",
        "database_url": f"sqlite:///{tmp_path / 'index.db'}",
        "listen": "127.0.0.1:8600",
        "node_config": tmp_path / "regulator" / "node.json",
        "report_key": tmp_path / "report-key.pem",
        "report_public_key": tmp_path / "report-key.pub.pem",
        "query_log_name": "auditor-query-log-0a1b2c3d",
    }
    values.update(overrides)
    return AuditorConfig(**values)  # type: ignore[arg-type]


def test_a_saved_config_loads_back_equal(tmp_path: Path) -> None:
    config = _config(tmp_path, confirmations=3, checkpoint_interval=60.0)
    path = tmp_path / "auditor.json"
    config.save(path)
    assert AuditorConfig.load(path) == config


def test_a_misspelt_key_is_named_not_defaulted(tmp_path: Path) -> None:
    path = tmp_path / "auditor.json"
    _config(tmp_path).save(path)
    raw = json.loads(path.read_text())
    raw["confirmation"] = raw.pop("confirmations")  # the operator's typo
    path.write_text(json.dumps(raw))
    with pytest.raises(InvalidInput) as caught:
        AuditorConfig.load(path)
    assert caught.value.field == "config.confirmation"
    assert "confirmations" in str(caught.value)  # the known keys are listed


def test_comment_keys_are_allowed(tmp_path: Path) -> None:
    path = tmp_path / "auditor.json"
    config = _config(tmp_path)
    config.save(path)
    raw = json.loads(path.read_text())
    raw["_comment"] = "index of the consortium's production chain"
    path.write_text(json.dumps(raw))
    assert AuditorConfig.load(path) == config
