"""The consortium's output policy for aggregate results: what a query may disclose.

Every result is a disclosure (DESIGN §6). This table maps a dataset's classification
level (1-4, recorded on chain with each dataset version) to the rules every provider
enforces on its own rows before it sends anything:

=====  ==============  ==================  ====================  =======================
level  min group size  min provider orgs   DP epsilon per query  DP epsilon per grant
=====  ==============  ==================  ====================  =======================
1      5               2                   -                     -
2      10              2                   -                     -
3      20              2                   1.0                   5.0
4      50              3                   0.5                   2.0
=====  ==============  ==================  ====================  =======================

Why here, in the approved algorithm's package: this file is one of the sources the
algorithm digest covers (``stats.EXTRA_SOURCES``), and an algorithm runs only once the
consortium approved that digest by vote. So the table is set by vote and read, through
the digest, from the chain; changing it means approving a new algorithm version, and
every provider recomputes the digest from the code it runs, so no consumer can bring its
own table. A consumer's parameters can only make the policy stricter: a larger minimum
group size, a smaller epsilon.

How a task's rules are derived (``effective``): the strictest over the classification
levels of every provider dataset in the task (read from chain by every party), then
tightened by the consumer's parameters. Everyone derives the same rules from the same
on-chain facts, so providers and the aggregator agree without talking.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

LEVELS = (1, 2, 3, 4)


@dataclass(frozen=True)
class LevelPolicy:
    """The rules for one classification level."""

    min_group_size: int
    min_provider_orgs: int
    epsilon_per_query: float | None = None  # None: no differential-privacy noise required
    epsilon_per_grant: float | None = None
    # Answered queries remembered per grantee and dataset version for the differencing
    # check; once full, further queries are refused (a query budget, not an eviction,
    # because forgetting an answered query would reopen it to differencing).
    history_limit: int = 1000


POLICY: dict[int, LevelPolicy] = {
    1: LevelPolicy(min_group_size=5, min_provider_orgs=2),
    2: LevelPolicy(min_group_size=10, min_provider_orgs=2),
    3: LevelPolicy(
        min_group_size=20, min_provider_orgs=2, epsilon_per_query=1.0, epsilon_per_grant=5.0
    ),
    4: LevelPolicy(
        min_group_size=50,
        min_provider_orgs=3,
        epsilon_per_query=0.5,
        epsilon_per_grant=2.0,
        history_limit=200,
    ),
}


class PolicyError(ValueError):
    """The policy cannot be applied (unknown level, or a parameter that loosens it)."""


@dataclass(frozen=True)
class EffectivePolicy:
    """The rules one task runs under: the strictest of its datasets' levels and the
    consumer's own tightening."""

    level: int  # the highest classification level among the task's datasets
    min_group_size: int
    min_provider_orgs: int
    epsilon_per_query: float | None
    epsilon_per_grant: float | None
    history_limit: int

    @property
    def differential_privacy(self) -> bool:
        return self.epsilon_per_query is not None

    def to_json(self) -> dict[str, object]:
        return {
            "classification": self.level,
            "min_group_size": self.min_group_size,
            "min_provider_orgs": self.min_provider_orgs,
            "epsilon_per_query": self.epsilon_per_query,
            "epsilon_per_grant": self.epsilon_per_grant,
        }


def level_policy(level: int) -> LevelPolicy:
    if level not in POLICY:
        raise PolicyError(f"classification level must be one of {LEVELS}, got {level!r}")
    return POLICY[level]


def effective(
    levels: Iterable[int],
    requested_min_group_size: int | None = None,
    requested_epsilon: float | None = None,
) -> EffectivePolicy:
    """The task's rules from its datasets' levels and the consumer's optional tightening.

    A requested minimum below the policy's is raised to it, never the other way; a
    requested epsilon above the policy's is ignored in favour of the policy's; a
    requested epsilon where the policy needs none turns noise on (a consumer may always
    ask for more privacy).
    """
    levels = list(levels)
    if not levels:
        raise PolicyError("a task needs at least one provider dataset")
    chosen = [level_policy(level) for level in levels]
    min_group = max(p.min_group_size for p in chosen)
    if requested_min_group_size is not None:
        min_group = max(min_group, requested_min_group_size)
    epsilons = [p.epsilon_per_query for p in chosen if p.epsilon_per_query is not None]
    if requested_epsilon is not None:
        if not (math.isfinite(requested_epsilon) and requested_epsilon > 0):
            raise PolicyError(f"epsilon must be a positive number, got {requested_epsilon!r}")
        epsilons.append(requested_epsilon)
    budgets = [p.epsilon_per_grant for p in chosen if p.epsilon_per_grant is not None]
    return EffectivePolicy(
        level=max(levels),
        min_group_size=min_group,
        min_provider_orgs=max(p.min_provider_orgs for p in chosen),
        epsilon_per_query=min(epsilons) if epsilons else None,
        epsilon_per_grant=min(budgets) if budgets else None,
        history_limit=min(p.history_limit for p in chosen),
    )
