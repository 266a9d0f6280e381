"""The named refusals of the lookup verbs, as the REST API and the CLI show them.

Why this module exists: the lookup library raises precise errors from many modules
(a stale epoch, a refused grant, an unreachable relay, a bad list file); an operator
should see one line naming what is wrong and what to do, with a stable ``code`` a
program can branch on. Each class is an ``InvalidInput`` (so the API's one error shape
applies) carrying its HTTP ``status`` and ``code``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ledger.ids import InvalidInput

__all__ = [
    "BadLookupInput",
    "EpochRunError",
    "GrantRefusedError",
    "LookupRequestError",
    "NoCurrentEpochError",
    "NotInRoleError",
    "QuotaExhaustedError",
    "StaleEpochRefused",
    "UnknownJob",
    "UnknownLookupList",
    "UpstreamUnavailable",
    "translated",
]


class LookupRequestError(InvalidInput):
    """Base: a lookup verb refused; ``status`` and ``code`` for the API."""

    status = 409
    code = "LOOKUP_REFUSED"


class BadLookupInput(LookupRequestError):
    """A malformed identifier, kind or file: nothing was sent."""

    status = 422
    code = "INVALID_INPUT"


class UnknownLookupList(LookupRequestError):
    status = 404
    code = "NOT_FOUND"


class UnknownJob(LookupRequestError):
    status = 404
    code = "NOT_FOUND"


class NotInRoleError(LookupRequestError):
    """This node does not play the role the verb needs for the list."""

    code = "NOT_IN_ROLE"


class StaleEpochRefused(LookupRequestError):
    """A query for an epoch that is no longer the current one."""

    code = "STALE_EPOCH"


class NoCurrentEpochError(LookupRequestError):
    """No usable (anchored and accepted) epoch of the list on chain yet."""

    code = "NO_EPOCH"


class GrantRefusedError(LookupRequestError):
    code = "GRANT_REFUSED"


class QuotaExhaustedError(LookupRequestError):
    code = "QUOTA_EXHAUSTED"


class EpochRunError(LookupRequestError):
    """An epoch could not be completed; nothing of it is used by queriers."""

    code = "EPOCH_FAILED"


class UpstreamUnavailable(LookupRequestError):
    """A peer (relay, provider) or the chain did not answer now; retry later."""

    code = "LOOKUP_UNAVAILABLE"


@contextmanager
def translated(field: str = "lookup") -> Iterator[None]:
    """Run a lookup step, turning the library's and the transport's errors into the
    named refusals above (``InvalidInput`` subclasses pass through unchanged)."""
    from node.lookup.anchoring import EpochNotAnchoredError, UnionNotAcceptedError
    from node.lookup.epoch import EpochError, StaleEpochError
    from node.lookup.rpc.client import (
        LookupCallError,
        LookupDenied,
        LookupRefused,
        LookupTimeout,
        LookupUnavailable,
    )
    from node.lookup.union import UnionError

    try:
        yield
    except InvalidInput:
        raise
    except StaleEpochError as exc:
        raise StaleEpochRefused(
            "epoch",
            f"epoch {exc.asked} is not answered any more (current: {exc.current}); "
            "query without --epoch to use the current one",
        ) from None
    except (EpochNotAnchoredError, UnionNotAcceptedError) as exc:
        raise NoCurrentEpochError("list", str(exc)) from None
    except LookupDenied as exc:
        if "grant" in exc.details or "organisation" in exc.details:
            raise GrantRefusedError("grant", exc.details) from None
        raise LookupRequestError(field, str(exc)) from None
    except LookupRefused as exc:
        if exc.details.startswith("quota exhausted"):
            raise QuotaExhaustedError("grant", exc.details) from None
        raise LookupRequestError(field, str(exc)) from None
    except (LookupUnavailable, LookupTimeout, LookupCallError) as exc:
        raise UpstreamUnavailable(field, str(exc)) from None
    except (EpochError, UnionError) as exc:
        raise LookupRequestError(field, f"{type(exc).__name__}: {exc}") from None
    except ValueError as exc:  # a malformed identifier (redacted by its module), a bad kind
        raise BadLookupInput("identifier", f"{type(exc).__name__}: {exc}") from None
