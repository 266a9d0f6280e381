"""The auditor's reports of a real completed task: the in-toto Statement in a signed
DSSE envelope (a changed byte of payload or signature, another key or payload type is
refused) and the W3C PROV export, re-read and compared with the chain's events."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from prov.model import PROV, ProvDocument

from auditor.report import dsse
from auditor.report.provenance import NAMESPACE, prov_json
from auditor.report.statement import PREDICATE_TYPE, RESULT_DIGEST_KEY, STATEMENT_TYPE, statement
from ledger.ids import InvalidInput
from tests.auditor.verify_scenario import Completed

ZERO = bytes(32)


def _pem(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _public(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _statement(done: Completed) -> dict[str, Any]:
    chain = done.consortium.chain
    head_hash = bytes(chain.w3.eth.get_block(done.head)["hash"])
    contracts = {n: c.address for n, c in done.consortium.deployment.contracts.items()}
    return statement(done.history, done.verify(), chain.chain_id, contracts, (done.head, head_hash))


def test_the_statement_names_the_results_checks_and_chain_state(completed_task: Completed) -> None:
    done = completed_task
    chain = done.consortium.chain
    s = _statement(done)
    assert s["_type"] == STATEMENT_TYPE and s["predicateType"] == PREDICATE_TYPE
    completed = next(e for e in done.history.task_events if e.name == "TaskCompleted")
    submitted = {
        bytes(e.args["resultDigest"])
        for e in done.history.task_events
        if e.name == "ResultSubmitted"
    }
    assert submitted == {bytes(completed.args["resultDigest"])}
    assert s["subject"] == [
        {
            "name": f"provnet:task:0x{done.task_id.hex()}:result",
            "digest": {RESULT_DIGEST_KEY: bytes(completed.args["resultDigest"]).hex()},
        }
    ]
    p = s["predicate"]
    assert p["verificationResult"] == "PASSED" and p["failedChecks"] == []
    assert [(c["name"], c["status"]) for c in p["checks"]] == [
        (c.name, c.status) for c in done.verify()
    ]
    assert p["verifier"]["version"]["provnet"]
    assert p["chain"]["chainId"] == chain.chain_id
    # Every block holding one of the task's events, with the hash the chain gives it.
    blocks = {b["number"]: b["hash"] for b in p["chain"]["blocks"]}
    assert {e.block_number for e in done.history.task_events} <= set(blocks)
    for number, block_hash in blocks.items():
        assert block_hash == "0x" + bytes(chain.w3.eth.get_block(number)["hash"]).hex()
    assert p["chain"]["readUpTo"]["number"] == done.head
    assert p["chain"]["contracts"]["TaskRegistry"] == done.consortium.deployment.address(
        "TaskRegistry"
    )


def test_a_failed_check_makes_the_statement_failed(completed_task: Completed) -> None:
    done = completed_task
    i = done.event("TaskCompleted")
    history = done.with_arg(i, "resultDigest", b"\x07" * 32)
    s = statement(history, done.verify(history), 1, {})
    assert s["predicate"]["verificationResult"] == "FAILED"
    assert s["predicate"]["failedChecks"] == ["result_digests_agree"]


@pytest.mark.parametrize("curve", ["ed25519", "p256"])
def test_a_signed_report_verifies_and_any_tampering_is_refused(
    completed_task: Completed, tmp_path: Path, curve: str
) -> None:
    key = (
        ed25519.Ed25519PrivateKey.generate()
        if curve == "ed25519"
        else ec.generate_private_key(ec.SECP256R1())
    )
    signer = dsse.load_signer(_pem(key, tmp_path / "auditor.pem"))
    assert dsse.public_key_pem(signer) == _public(key)
    s = _statement(completed_task)
    envelope = dsse.sign(s, signer)
    public = dsse.public_key(_public(key))
    assert dsse.verify(envelope, public) == s
    assert envelope["payloadType"] == "application/vnd.in-toto+json"

    # The signature is over the DSSE pre-authentication encoding, checked here with
    # `cryptography` directly, not through the library that made it.
    payload = base64.b64decode(envelope["payload"])
    pae = b"DSSEv1 %d %b %d %b" % (28, b"application/vnd.in-toto+json", len(payload), payload)
    sig = base64.b64decode(envelope["signatures"][0]["sig"])
    if curve == "ed25519":
        key.public_key().verify(sig, pae)  # type: ignore[call-arg]
    else:
        from cryptography.hazmat.primitives import hashes

        key.public_key().verify(sig, pae, ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg]

    def refused(forged: object, match: str) -> None:
        with pytest.raises(dsse.ReportInvalid, match=match):
            dsse.verify(forged, public)

    # One changed byte of the payload: the verdict flipped from PASSED to FAILED.
    text = payload.replace(b'"PASSED"', b'"FAILED"')
    assert text != payload
    forged = {**envelope, "payload": base64.b64encode(text).decode()}
    refused(forged, "signature does not verify")
    # One changed byte of the signature.
    bad_sig = bytearray(sig)
    bad_sig[len(bad_sig) // 2] ^= 1
    forged = copy.deepcopy(envelope)
    forged["signatures"][0]["sig"] = base64.b64encode(bytes(bad_sig)).decode()
    refused(forged, "signature does not verify")
    # Another payload type over the same bytes.
    refused({**envelope, "payloadType": "application/json"}, "payload type")
    # Another auditor's key.
    other = dsse.public_key(_public(ed25519.Ed25519PrivateKey.generate()))
    with pytest.raises(dsse.ReportInvalid, match="signature does not verify"):
        dsse.verify(envelope, other)
    # Not an envelope at all; broken base64; no signatures.
    refused([envelope], "not a DSSE envelope")
    refused({**envelope, "payload": "@@not base64@@"}, "well-formed")
    refused({**envelope, "signatures": []}, "signature does not verify")
    refused({"payloadType": envelope["payloadType"]}, "well-formed")
    # The file the CLI writes round-trips through JSON.
    assert dsse.verify(json.loads(json.dumps(envelope)), public) == s


def test_an_unusable_signing_key_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"sign-key.*cannot read"):
        dsse.load_signer(tmp_path / "missing.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(InvalidInput, match=r"sign-key.*not an unencrypted PEM"):
        dsse.load_signer(garbage)
    k1 = _pem(ec.generate_private_key(ec.SECP256K1()), tmp_path / "k1.pem")
    with pytest.raises(InvalidInput, match="sign-key"):
        dsse.load_signer(k1)


def _records(doc: ProvDocument, kind: str) -> dict[str, dict[str, Any]]:
    out = {}
    for record in doc.get_records():
        if type(record).__name__ == kind:
            out[str(record.identifier)] = {str(k): v for k, v in record.attributes}
    return out


def _relations(doc: ProvDocument, kind: str, a: str, b: str) -> set[tuple[str, str]]:
    return {
        (str(r.get_attribute(a).pop()), str(r.get_attribute(b).pop()))
        for r in doc.get_records()
        if type(r).__name__ == kind
    }


def test_the_prov_export_re_reads_as_the_task_on_chain(completed_task: Completed) -> None:
    done = completed_task
    h = done.history
    doc = ProvDocument.deserialize(content=prov_json(h), format="json")
    assert doc.get_registered_namespaces() and any(
        ns.uri == NAMESPACE for ns in doc.get_registered_namespaces()
    )
    task = f"provnet:task_0x{done.task_id.hex()}"
    activities = _records(doc, "ProvActivity")
    assert set(activities) == {task}
    assert activities[task]["provnet:state"] == "COMPLETED"
    start, end = activities[task]["prov:startTime"], activities[task]["prov:endTime"]
    assert start <= end

    created = h.created()
    assert created is not None
    entities = _records(doc, "ProvEntity")
    providers = [p for p in created.args["participants"] if p["datasetId"] != ZERO]
    assert len(providers) == 2
    for p in providers:
        ident = f"provnet:dataset_0x{bytes(p['datasetId']).hex()}_v{p['datasetVersion']}"
        registered = next(
            e for e in h.all_events
            if e.name == "DatasetVersionAdded" and e.args["datasetId"] == p["datasetId"]
        )  # fmt: skip
        assert entities[ident]["provnet:merkleRoot"] == "0x" + registered.args["merkleRoot"].hex()
    params = entities[f"provnet:params_0x{done.task_id.hex()}"]
    assert params["provnet:paramsDigest"] == "0x" + created.args["paramsDigest"].hex()
    assert params["provnet:paramsDigest"] == "0x" + done.params.digest.hex()
    results = {e.args["node"].lower(): e for e in h.task_events if e.name == "ResultSubmitted"}
    assert len(results) == 3
    for node, event in results.items():
        transcript = entities[f"provnet:transcript_0x{done.task_id.hex()}_{node}"]
        assert transcript["provnet:evidenceRoot"] == "0x" + event.args["evidenceRoot"].hex()
    result = entities[f"provnet:result_0x{done.task_id.hex()}"]
    completed = next(e for e in h.task_events if e.name == "TaskCompleted")
    assert result["provnet:resultDigest"] == "0x" + completed.args["resultDigest"].hex()

    agents = _records(doc, "ProvAgent")
    orgs = {
        a["provnet:name"] for a in agents.values() if a.get("prov:type") == PROV["Organization"]
    }
    assert orgs == {"bank-a", "bank-b", "regulator"}
    on_behalf = _relations(doc, "ProvDelegation", "prov:delegate", "prov:responsible")
    for name in ("bank-a", "bank-b", "regulator"):
        node = f"provnet:node_{done.node(name).lower()}"
        org = f"provnet:org_0x{done.consortium.orgs[name].org_id.hex()}"
        assert (node, org) in on_behalf
    used = _relations(doc, "ProvUsage", "prov:activity", "prov:entity")
    assert {e for a, e in used if a == task} == {
        i
        for i in entities
        if i.startswith(("provnet:dataset_", "provnet:params_", "provnet:algorithm_"))
    }
    generated = _relations(doc, "ProvGeneration", "prov:entity", "prov:activity")
    assert {e for e, a in generated if a == task} == {
        i for i in entities if i.startswith(("provnet:transcript_", "provnet:result_"))
    }
    derived = _relations(doc, "ProvDerivation", "prov:generatedEntity", "prov:usedEntity")
    assert {u for g, u in derived} == {i for i in entities if i.startswith("provnet:dataset_")}


def test_no_prov_export_for_a_task_the_chain_never_saw(completed_task: Completed) -> None:
    from auditor.verifier import TaskHistory

    with pytest.raises(ValueError, match="no such task on chain"):
        prov_json(TaskHistory(b"\x05" * 32, completed_task.history.all_events, {}))
