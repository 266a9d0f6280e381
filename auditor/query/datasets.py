"""Datasets and their registered versions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from auditor.index import schema
from auditor.query.paging import Page, fetch_page
from auditor.query.values import hx, latest_rows, latest_status, tx_hash_of

DATASET_COLUMNS = (
    "dataset",
    "ownerOrg",
    "ownerOrgName",
    "name",
    "status",
    "latestVersion",
    "versions",
    "blockNumber",
    "blockTime",
)
VERSION_COLUMNS = (
    "dataset",
    "version",
    "merkleRoot",
    "rowCount",
    "schemaDigest",
    "classification",
    "metadataUri",
    "blockNumber",
    "logIndex",
    "blockTime",
    "txHash",
)


def list_datasets(conn: Connection, *, owner_org: bytes | None, limit: int, offset: int) -> Page:
    """Datasets in registration order, with their owner's name, status (active, retired)
    and how many versions they have. ``name`` is the on-chain bytes32 name id."""
    d = schema.datasets
    v = schema.dataset_versions
    o = latest_rows(schema.organisations, "org_id")
    version_count = select(func.count()).where(v.c.dataset_id == d.c.dataset_id).scalar_subquery()
    newest = select(func.max(v.c.version)).where(v.c.dataset_id == d.c.dataset_id).scalar_subquery()
    query = (
        select(
            d,
            o.c.name.label("owner_name"),
            latest_status("dataset", d.c.dataset_id).label("status"),
            version_count.label("versions"),
            newest.label("latest_version"),
        )
        .outerjoin(o, o.c.org_id == d.c.owner_org)
        .order_by(d.c.block_number, d.c.log_index)
    )
    if owner_org is not None:
        query = query.where(d.c.owner_org == owner_org)

    def render(r: Any) -> dict[str, Any]:
        return {
            "dataset": hx(r["dataset_id"]),
            "ownerOrg": hx(r["owner_org"]),
            "ownerOrgName": r["owner_name"],
            "name": hx(r["name"]),
            "status": r["status"],
            "latestVersion": None if r["latest_version"] is None else int(r["latest_version"]),
            "versions": int(r["versions"]),
            "blockNumber": int(r["block_number"]),
            "blockTime": int(r["block_time"]),
        }

    return fetch_page(conn, query, limit, offset, render)


def dataset_versions(conn: Connection, dataset_id: bytes) -> list[dict[str, Any]]:
    """A dataset's versions in the order they were added (empty: unknown dataset)."""
    v = schema.dataset_versions
    rows = (
        conn.execute(
            select(v, tx_hash_of(v.c.block_number, v.c.log_index).label("tx"))
            .where(v.c.dataset_id == dataset_id)
            .order_by(v.c.block_number, v.c.log_index)
        )
        .mappings()
        .all()
    )
    return [
        {
            "dataset": hx(r["dataset_id"]),
            "version": int(r["version"]),
            "merkleRoot": hx(r["merkle_root"]),
            "rowCount": int(r["row_count"]),
            "schemaDigest": hx(r["schema_digest"]),
            "classification": int(r["classification"]),
            "metadataUri": r["metadata_uri"],
            "blockNumber": int(r["block_number"]),
            "logIndex": int(r["log_index"]),
            "blockTime": int(r["block_time"]),
            "txHash": hx(r["tx"]),
        }
        for r in rows
    ]
