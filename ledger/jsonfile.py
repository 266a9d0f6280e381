"""Reading and writing the project's small JSON files (manifests, configs, keystores).

Every reader names the file's role in its error ("manifest", "config", ...) so a user
sees which input is wrong; every writer replaces the file atomically, so a crash never
leaves half a manifest or config behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ledger.ids import InvalidInput


def read_json(path: Path, field: str, error: type[InvalidInput] = InvalidInput) -> Any:
    """The parsed file; `error(field, ...)` names a missing or malformed one."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise error(field, f"file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise error(field, f"{path} is not JSON ({exc.msg})") from None
    except UnicodeDecodeError:
        raise error(field, f"{path} is not UTF-8 text") from None


def write_json_atomic(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)
