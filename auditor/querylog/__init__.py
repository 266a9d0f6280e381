"""The regulators' query log: every request a regulator makes, as an append-only
RFC 9162 Merkle log whose roots are checkpointed into ``AnchorLog`` ("reading the trail
leaves a trail"). ``log.QueryLog`` keeps it, ``checkpoint.Checkpointer`` anchors it.
"""
