"""The auditor's indexer: the chain's provnet events, reorg-safe, in SQL tables.

``follower`` reads confirmed pages of logs and block headers (``rpc``), ``decode`` turns
raw logs into values with one prepared decoder per event, ``project`` maps them to the
typed tables of ``schema``, and ``store`` applies each page with the cursor in one
transaction (Alembic migrations in ``migrations/`` run at open).
"""
