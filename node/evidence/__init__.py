"""A node's evidence: append-only task transcripts, their anchors, and signed access.

`EvidenceStore` keeps, per task, the hash-chained transcript whose RFC 9162 root the
node anchors on chain; `access.verify_request` decides whether a signed request from a
regulator's node may read it.
"""

from node.evidence.store import Anchor, EvidenceCorrupted, EvidenceStore, StoreUnavailable

__all__ = ["Anchor", "EvidenceCorrupted", "EvidenceStore", "StoreUnavailable"]
