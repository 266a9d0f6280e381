"""The ``lookup`` section of a node's ``node.json``: which lists it serves and how.

Why this module exists: a node learns its lookup roles from the rosters it is given
(one JSON file per list, the same on every node of the list; ``rpc/roster.py``): a node
named among a roster's providers is a key holder of that list, the roster's relay is
its relay, and any other node with the roster is a querier. The few numbers the roles
need (metering blocks and periods, the relay's batching, the loops' intervals) sit
beside the rosters, with defaults, so a test or a demo can shorten them.

Example (paths relative to the config file)::

    "lookup": {
      "rosters": ["blacklist.roster.json"],
      "service_dataset": "lookup-service",
      "block_size": 100, "period_seconds": 86400,
      "relay_policy": {"min_batch": 64, "min_queriers": 2, "max_delay": 2.0,
                       "max_batch": 1024, "max_ticket": 256},
      "checkpoint_seconds": 3600, "settle_seconds": 300, "step_timeout": 300,
      "max_contribution_entries": 20000000
    }

``service_dataset`` names the dataset of the relay's organisation that grants for the
lookup service are made on (`provnet dataset register` + `provnet grant create`); only
the relay reads it, as it does ``max_contribution_entries``: the most entries it takes
from one provider for one epoch (it holds them until the build, so this bounds its
memory against a provider that streams without end). Every node of a list should use
the same ``relay_policy``: a publisher's or querier's round is one ticket of at most
``max_ticket`` elements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.ids import InvalidInput

__all__ = ["LookupSettings", "RelayPolicySettings"]

_FIELDS = frozenset(
    {
        "rosters",
        "service_dataset",
        "block_size",
        "period_seconds",
        "relay_policy",
        "checkpoint_seconds",
        "settle_seconds",
        "step_timeout",
        "max_contribution_entries",
    }
)
_POLICY_FIELDS = ("min_batch", "min_queriers", "max_delay", "max_batch", "max_ticket")


def _positive_int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(field, f"expected an integer > 0, got {value!r}")
    return value


def _positive_number(value: object, field: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidInput(field, f"expected a positive number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class RelayPolicySettings:
    """``relay.RelayPolicy``'s numbers (its defaults); checked by ``RelayPolicy`` itself."""

    min_batch: int = 64
    min_queriers: int = 2
    max_delay: float = 2.0
    max_batch: int = 1024
    max_ticket: int = 256

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _POLICY_FIELDS}


@dataclass(frozen=True)
class LookupSettings:
    rosters: tuple[Path, ...]
    service_dataset: str = "lookup-service"
    block_size: int = 100
    period_seconds: int = 86_400
    relay_policy: RelayPolicySettings = field(default_factory=RelayPolicySettings)
    checkpoint_seconds: float = 3_600.0
    settle_seconds: float = 300.0
    step_timeout: float = 300.0
    max_contribution_entries: int = 20_000_000

    def to_json(self) -> dict[str, Any]:
        return {
            "rosters": [str(p) for p in self.rosters],
            "service_dataset": self.service_dataset,
            "block_size": self.block_size,
            "period_seconds": self.period_seconds,
            "relay_policy": self.relay_policy.to_json(),
            "checkpoint_seconds": self.checkpoint_seconds,
            "settle_seconds": self.settle_seconds,
            "step_timeout": self.step_timeout,
            "max_contribution_entries": self.max_contribution_entries,
        }

    @classmethod
    def from_json(cls, raw: object, base: Path, field: str = "config.lookup") -> LookupSettings:
        """Parse the section; ``InvalidInput`` names the first bad field."""
        if not isinstance(raw, dict):
            raise InvalidInput(field, f"expected an object, got {raw!r}")
        unknown = sorted(set(raw) - _FIELDS)
        if unknown:
            raise InvalidInput(
                f"{field}.{unknown[0]}", f"unknown field; expected {sorted(_FIELDS)}"
            )
        rosters = raw.get("rosters")
        if not isinstance(rosters, list) or not rosters:
            raise InvalidInput(f"{field}.rosters", "expected a non-empty list of roster files")
        paths = []
        for i, value in enumerate(rosters):
            if not isinstance(value, str) or not value:
                raise InvalidInput(f"{field}.rosters[{i}]", f"expected a path, got {value!r}")
            paths.append(Path(value) if Path(value).is_absolute() else base / value)
        values: dict[str, Any] = {"rosters": tuple(paths)}
        if "service_dataset" in raw:
            name = raw["service_dataset"]
            if not isinstance(name, str) or not 1 <= len(name) <= 128:
                raise InvalidInput(f"{field}.service_dataset", f"expected a name, got {name!r}")
            values["service_dataset"] = name
        for name in ("block_size", "period_seconds", "max_contribution_entries"):
            if name in raw:
                values[name] = _positive_int(raw[name], f"{field}.{name}")
        for name in ("checkpoint_seconds", "settle_seconds", "step_timeout"):
            if name in raw:
                values[name] = _positive_number(raw[name], f"{field}.{name}")
        if "relay_policy" in raw:
            policy = raw["relay_policy"]
            if not isinstance(policy, dict) or set(policy) - set(_POLICY_FIELDS):
                raise InvalidInput(
                    f"{field}.relay_policy", f"expected an object with fields {_POLICY_FIELDS}"
                )
            parsed: dict[str, Any] = {}
            for name, value in policy.items():
                where = f"{field}.relay_policy.{name}"
                parsed[name] = (
                    _positive_number(value, where)
                    if name == "max_delay"
                    else _positive_int(value, where)
                )
            values["relay_policy"] = RelayPolicySettings(**parsed)
        return cls(**values)
