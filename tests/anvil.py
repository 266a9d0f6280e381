"""Tests start anvil exactly as the demo and `provnet dev up` do (`scripts/anvil.py`)."""

from scripts.anvil import ANVIL_CHAIN_ID, free_port, running_anvil

__all__ = ["ANVIL_CHAIN_ID", "free_port", "running_anvil"]
