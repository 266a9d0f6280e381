"""`deployment_bytecode`, `deployment_origin`, `deployment_links`: the ledger's binding of
the manifest to the chain (`ledger.deployment_binding`), reported as checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from auditor.verify.check import Check


def deployment_checks(results: Sequence[Any]) -> list[Check]:
    """The ledger's deployment-binding results (name, passed, detail, evidence) as checks."""
    return [Check(r.name, bool(r.passed), str(r.detail), dict(r.evidence)) for r in results]
