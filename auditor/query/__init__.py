"""Read-only questions over the index tables, answered as JSON-ready values.

Every function takes a SQLAlchemy ``Connection`` first (the caller decides the
transaction, so one answer and its "complete up to block N" come from one snapshot) and
returns plain values: ids, hashes and addresses as ``0x`` lower-case hex, times as Unix
seconds, organisation names beside organisation ids. Nothing here writes.
"""
