"""Alembic environment for the auditor's index database.

Run only programmatically (``auditor.index.store.migrate``), which hands over an open
connection in ``config.attributes["connection"]``: the upgrade then runs inside the
caller's transaction and lock, on exactly the database the indexer will use.
"""

from __future__ import annotations

from alembic import context

from auditor.index.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the auditor index migrations run through auditor.index.store.migrate(), "
        "which passes the database connection"
    )
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
