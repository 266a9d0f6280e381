"""Who plays which part for one lookup list: the roster every node of the list agrees on.

Why this module exists: the lookup service authorises every call by role (only the
list's relay may have batches evaluated, only its providers may deal or contribute),
and the holder index a provider's key share belongs to must be the same on every node,
or answers would be checked against the wrong public share. Both follow from one small
public document per list, the roster: the providers in order (holder index = position
+ 1), the relay (which also builds the union and holds no key share), the threshold
``t`` and the acceptance quorum of ``anchoring.current_epoch``. Every node loads the
same file; nothing in it is secret.

File format (UTF-8 JSON, one roster per file)::

    {"version": 1, "list_name": "blacklist", "t": 2,
     "providers": ["0x…", "0x…", "0x…"], "relay": "0x…", "quorum": 3}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.ids import InvalidInput, as_address
from node.crypto.threshold_oprf import MAX_HOLDERS

__all__ = ["ROSTER_VERSION", "ListRoster", "RosterError", "load_roster"]

ROSTER_VERSION = 1
# The rule of `epoch.EpochKeys.list_name`: a roster names the union its keys serve.
_LIST_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_FIELDS = frozenset({"version", "list_name", "t", "providers", "relay", "quorum"})


class RosterError(ValueError):
    """A roster that cannot be used; the message names the field and what to fix."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"roster {field}: {problem}")


def _count(value: object, field: str, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise RosterError(field, f"must be an int in 1..{high}, got {value!r}")
    return value


def _address(value: object, field: str) -> str:
    try:
        return str(as_address(value, field))
    except InvalidInput as exc:
        raise RosterError(field, exc.problem) from None


@dataclass(frozen=True)
class ListRoster:
    """The roles of one list. Addresses are node accounts, stored EIP-55 checksummed."""

    list_name: str
    t: int
    providers: tuple[str, ...]
    relay: str
    quorum: int

    def __post_init__(self) -> None:
        if not isinstance(self.list_name, str) or _LIST_NAME.fullmatch(self.list_name) is None:
            raise RosterError(
                "list_name",
                f"must be 1-64 chars of [a-z0-9-] starting alphanumeric, got {self.list_name!r}",
            )
        if isinstance(self.providers, str | bytes) or not isinstance(self.providers, tuple | list):
            raise RosterError("providers", "must be a list of node addresses")
        providers = tuple(_address(p, f"providers[{i}]") for i, p in enumerate(self.providers))
        n = len(providers)
        if not 1 <= n <= MAX_HOLDERS:
            raise RosterError("providers", f"must name 1..{MAX_HOLDERS} nodes, got {n}")
        if len(set(providers)) != n:
            raise RosterError("providers", "names a node twice; each holds one share")
        relay = _address(self.relay, "relay")
        if relay in providers:
            raise RosterError(
                "relay",
                f"{relay} is also a provider: the builder sees who contributed what, so it "
                "must hold no key share; choose another node",
            )
        _count(self.t, "t", n)
        _count(self.quorum, "quorum", n)
        object.__setattr__(self, "providers", providers)
        object.__setattr__(self, "relay", relay)

    @property
    def n(self) -> int:
        return len(self.providers)

    def holder_index(self, node: str) -> int | None:
        """``node``'s holder index (position + 1) if it is a provider of the list."""
        try:
            return self.providers.index(_address(node, "node")) + 1
        except (ValueError, RosterError):
            return None

    def holder(self, index: int) -> str:
        """The provider node of holder ``index`` (1..n)."""
        if isinstance(index, bool) or not 1 <= index <= self.n:
            raise RosterError("providers", f"has no holder {index!r} (1..{self.n})")
        return self.providers[index - 1]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": ROSTER_VERSION,
            "list_name": self.list_name,
            "t": self.t,
            "providers": list(self.providers),
            "relay": self.relay,
            "quorum": self.quorum,
        }

    @classmethod
    def from_json(cls, data: object) -> ListRoster:
        """Parse :meth:`to_json`'s form; :class:`RosterError` naming the first bad field."""
        if not isinstance(data, dict) or set(data) != _FIELDS:
            raise RosterError("", f"must be an object with exactly the fields {sorted(_FIELDS)}")
        if data["version"] != ROSTER_VERSION:
            raise RosterError("version", f"unsupported version {data['version']!r}")
        providers = data["providers"]
        if not isinstance(providers, list):
            raise RosterError("providers", "must be a list of node addresses")
        return cls(data["list_name"], data["t"], tuple(providers), data["relay"], data["quorum"])


def load_roster(path: Path) -> ListRoster:
    """Read a roster file; :class:`RosterError` if it is not valid JSON or not a roster."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RosterError("file", f"cannot read {path}: {exc}") from None
    return ListRoster.from_json(data)
