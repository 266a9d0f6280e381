"""``tee-join``: a join that needs plaintext, run in an attested enclave (DESIGN §6 TEE).

Data owners hold tables that share a key column (an account number, a phone number);
the task's creator wants, over the rows whose key every owner holds, their number and
the sum of named value columns, e.g. a bank's balances over the customers a carrier
also serves. No owner may see another's rows, and the host that runs the join may not
either: the host is a COMPUTE node whose enclave every owner checks against the chain
before any row leaves it.

The protocol (the runner's host is the task's data-less seat, its creator):

1. the host sends the committed parameters (the runner's ``params`` step);
2. each owner sends a fresh 32-byte nonce (``tee-nonce``);
3. the host launches one enclave for the task and answers each owner with a report
   for that owner's nonce (``tee-report``);
4. each owner verifies the report (``node.tee.verify.verify_report``: backend allowed,
   evidence, nonce, age, measurement not revoked and trusted by the consortium's vote
   now, approved algorithm digest = the task's). On refusal it records the named
   reason on chain (``TaskRegistry.recordAttestationRefusal``) through the runner's
   hook, tells the host, and fails the task. Otherwise it seals its input to the
   attested key with RFC 9180 HPKE (``node.tee.provision``) and sends it
   (``tee-input``: a header, then the ciphertext in ``tee-input/<i>`` chunks);
5. the enclave opens the inputs, checks every owner sealed the same parameters, joins,
   signs the output and is destroyed, signing a destruction receipt; the host sends
   each owner the result *statement* (the output's digest, never the output) and the
   receipt (``tee-attested``); each owner checks both signatures against the report it
   verified and that its own input is among those used and erased, refusing (on chain,
   BAD_SIGNATURE or MALFORMED) otherwise. The host anchors the receipt's digest
   (``anchorCheckpoint(task, 0, receipt)``) and keeps the statement, receipt and reports
   for the auditor in its result.

Results not stored: with ``result_key`` (the grantee's X25519 public key) in the
parameters, the enclave seals its output to it before signing, so the host node relays
and keeps only ciphertext; the grantee opens it offline (``open_result``).

What each owner sends is only the key and the value columns it holds among ``sum``:
data minimisation at the source. The enclave enforces the output rules: fewer matched
rows than the minimum group size (the largest any owner's policy asks) suppresses the
sums. A dataset whose classification requires differential privacy is refused by its
owner: this job adds no noise.

The ``simulated`` backend (``node.tee.simulated``) gives no isolation: whoever controls
the host reads the inputs. Every report, API answer and audit check says so.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ledger.canonical import canonical_json, digest, digest_json
from ledger.clients.algorithms import AlgorithmKind
from ledger.rows import decimal_text, decimal_unscaled
from node.algorithms.task_columns import InvalidParams
from node.channel import DEFAULT_TIMEOUT, Channel
from node.tee import provision, wire
from node.tee.backend import Enclave, Verifier
from node.tee.provision import SealedInput
from node.tee.refusal import Reason, Refused
from node.tee.report import AttestationReport, ReportClaims
from node.tee.verify import Expectation, TrustPolicy, verify_report

NAME = "tee-join"
VERSION = "0.1.0"
KIND = AlgorithmKind.TEE
# The runner launches an enclave on the host and has owners attest it before sending.
ATTESTED = True
# The creator's node is the host; it learns the output (the grantee's result).
OUTPUT_POLICY = False

EXTRA_SOURCES: tuple[str, ...] = (str(Path(__file__).resolve().parent / "task_columns.py"),)

STEP_NONCE = "tee-nonce"
STEP_REPORT = "tee-report"
STEP_INPUT = "tee-input"
STEP_ATTESTED = "tee-attested"
STEP_ACK = "tee-ack"
CHUNK_BYTES = 8 * 1024 * 1024  # below the peer transport's 16 MiB message bound
MAX_CHUNKS = 4096
MAX_SUMS = 64
RECEIPT_CHECKPOINT = 0  # anchorCheckpoint round number of the destruction receipt
RESULT_SUITE = "HPKE base DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/AES-128-GCM"

PARAMETER_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "tee-join parameters",
    "type": "object",
    "required": ["key", "sum"],
    "additionalProperties": False,
    "properties": {
        "key": {
            "description": "Column every owner holds (string or integer, unique per owner); "
            "rows join on it.",
            "type": "string",
        },
        "sum": {
            "description": "Integer or decimal columns to total over the joined rows; each "
            "held by exactly one owner.",
            "type": "array",
            "items": {"type": "string"},
            "minItems": 1,
            "maxItems": MAX_SUMS,
        },
        "min_group_size": {
            "description": "Stricter minimum of matched rows than the policy's.",
            "type": ["integer", "null"],
        },
        "result_key": {
            "description": "Results not stored: the enclave seals the output to this X25519 "
            "public key (64 hex digits); the host keeps only ciphertext.",
            "type": ["string", "null"],
        },
    },
}


@dataclass(frozen=True)
class Params:
    key: str
    sum: tuple[str, ...]
    min_group_size: int | None = None
    # Results-not-stored mode: the enclave seals the output to this X25519 key (the
    # grantee's), so the host node relays and keeps only ciphertext.
    result_key: bytes | None = None
    # The runner's policy reader asks for it; this job never adds noise.
    epsilon: None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Params:
        if not isinstance(data, Mapping):
            raise InvalidParams("params", "must be an object")
        extra = set(data) - {"key", "sum", "min_group_size", "result_key"}
        if extra:
            raise InvalidParams(sorted(extra)[0], "is not a tee-join parameter")
        key = data.get("key")
        if not isinstance(key, str) or not key:
            raise InvalidParams("key", "must be a column name")
        sums = data.get("sum")
        if (
            not isinstance(sums, list)
            or not 1 <= len(sums) <= MAX_SUMS
            or not all(isinstance(s, str) and s for s in sums)
        ):
            raise InvalidParams("sum", f"must be a list of 1..{MAX_SUMS} column names")
        if len(set(sums)) != len(sums) or key in sums:
            raise InvalidParams("sum", "names a column twice, or the key column")
        minimum = data.get("min_group_size")
        if minimum is not None and (
            isinstance(minimum, bool) or not isinstance(minimum, int) or not 1 <= minimum <= 10**9
        ):
            raise InvalidParams("min_group_size", "must be an integer 1..10^9 or null")
        result_key = data.get("result_key")
        if result_key is not None:
            try:
                result_key = bytes.fromhex(result_key) if isinstance(result_key, str) else b""
            except ValueError:
                result_key = b""
            if len(result_key) != 32:
                raise InvalidParams(
                    "result_key",
                    "must be an X25519 public key as 64 hex digits "
                    "(`provnet tee result-key --out KEY.pem` prints one)",
                )
        return cls(key, tuple(sums), minimum, result_key)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "key": self.key,
            "sum": list(self.sum),
            "min_group_size": self.min_group_size,
        }
        if self.result_key is not None:
            doc["result_key"] = self.result_key.hex()
        return doc


class InvalidData(ValueError):
    """An owner's rows cannot take part (missing or mistyped column, repeated key)."""


# the enclave's computation -----------------------------------------------------------


@dataclass(frozen=True)
class InputHeader:
    """What an owner states about its input, sealed with it: the parameters it agreed to
    (so the enclave computes what every owner approved, not what the host says) and the
    minimum group size its own policy requires."""

    params: Params
    min_group_size: int

    def to_json(self) -> dict[str, Any]:
        return {"params": self.params.to_json(), "min_group_size": self.min_group_size}


def owner_columns(params: Params, table: pa.Table) -> pa.Table:
    """The columns this owner sends: the key and the ``sum`` columns it holds, checked."""
    names = set(table.column_names)
    if params.key not in names:
        raise InvalidData(f"no key column {params.key!r} (columns: {sorted(names)})")
    key = table.column(params.key)
    if not (pa.types.is_string(key.type) or pa.types.is_integer(key.type)):
        raise InvalidData(f"key column {params.key!r} is {key.type}, not string or integer")
    if key.null_count:
        raise InvalidData(f"key column {params.key!r} has missing values")
    if len(pc.unique(key)) != table.num_rows:
        raise InvalidData(f"key column {params.key!r} repeats a value: keys must be unique")
    held = [s for s in params.sum if s in names]
    for name in held:
        column = table.column(name)
        if not (pa.types.is_integer(column.type) or pa.types.is_decimal(column.type)):
            raise InvalidData(f"sum column {name!r} is {column.type}, not integer or decimal")
        if column.null_count:
            raise InvalidData(f"sum column {name!r} has missing values")
    return table.select([params.key, *held])


def encode_input(header: InputHeader, table: pa.Table) -> bytes:
    """An owner's plaintext for the enclave: canonical JSON header, newline, Arrow IPC."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    body: bytes = sink.getvalue().to_pybytes()
    return canonical_json(header.to_json()) + b"\n" + body


def decode_input(owner: str, plaintext: bytes) -> tuple[InputHeader, pa.Table]:
    head, sep, body = plaintext.partition(b"\n")
    if not sep:
        raise ValueError(f"input of {owner}: no header")
    doc = json.loads(head)
    params = Params.from_json(doc["params"])
    minimum = doc["min_group_size"]
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
        raise ValueError(f"input of {owner}: min_group_size must be a positive integer")
    with pa.ipc.open_stream(pa.py_buffer(body)) as reader:
        table = reader.read_all()
    return InputHeader(params, minimum), table


def _total(column: pa.ChunkedArray) -> int:
    values = decimal_unscaled(column) if pa.types.is_decimal(column.type) else column.to_numpy()
    values = np.asarray(values, dtype=np.int64)
    if values.size and float(np.abs(values).max()) * values.size >= 2.0**62:
        return sum(int(v) for v in values.tolist())  # exact beyond int64, rarely needed
    return int(values.sum(dtype=np.int64))


def join_sums(
    tables: Sequence[pa.Table], key: str, sums: Sequence[str], min_group_size: int
) -> dict[str, Any]:
    """The job on plaintext: inner join on ``key``, the matched count and each column's
    total; below ``min_group_size`` matches, the sums are suppressed. The benchmark runs
    this same function as the plaintext baseline."""
    holders: dict[str, int] = {}
    for i, table in enumerate(tables):
        for name in table.column_names:
            if name != key and name in holders:
                raise ValueError(f"sum column {name!r} is held by more than one owner")
            if name != key:
                holders[name] = i
    missing = [s for s in sums if s not in holders]
    if missing:
        raise ValueError(f"no owner holds sum column(s) {missing}")
    types = {str(t.schema.field(key).type) for t in tables}
    if len(types) != 1:
        raise ValueError(f"the owners' key columns differ in type: {sorted(types)}")
    joined = tables[0]
    for table in tables[1:]:
        joined = joined.join(table, key, join_type="inner", use_threads=True)
    matched = joined.num_rows
    if matched < min_group_size:
        return {
            "matched": None,
            "sums": None,
            "suppressed": f"fewer than {min_group_size} matched rows",
        }
    totals: dict[str, Any] = {}
    for name in sums:
        column = joined.column(name)
        total = _total(column)
        kind = column.type
        totals[name] = decimal_text(total, kind.scale) if pa.types.is_decimal(kind) else total
    return {"matched": matched, "sums": totals, "suppressed": None}


def compute(inputs: Mapping[str, bytes]) -> bytes:
    """Inside the enclave: every owner's input, by owner. All owners must have sealed
    the same parameters; the strictest minimum group size applies."""
    if len(inputs) < 2:
        raise ValueError(f"a join needs at least two owners' inputs, got {len(inputs)}")
    decoded = {owner: decode_input(owner, data) for owner, data in sorted(inputs.items())}
    params = {h.params for h, _ in decoded.values()}
    if len(params) != 1:
        raise ValueError("the owners sealed different parameters")
    (agreed,) = params
    minimum = max(max(h.min_group_size for h, _ in decoded.values()), agreed.min_group_size or 1)
    tables = [t for _, t in decoded.values()]
    output = canonical_json(join_sums(tables, agreed.key, agreed.sum, minimum))
    if agreed.result_key is None:
        return output
    sealed = provision.seal_output(agreed.result_key, result_context(agreed), output)
    return canonical_json(
        {"sealed": sealed.hex(), "suite": RESULT_SUITE, "recipientKey": agreed.result_key.hex()}
    )


def result_context(params: Params) -> bytes:
    """The HPKE ``info`` of a sealed result: this job and the parameters it answers."""
    return digest_json("tee-result-info", {"algorithm": NAME, "params": params.to_json()})


def open_result(private_key: X25519PrivateKey, params: Params, output: Mapping[str, Any]) -> Any:
    """The grantee's side of results-not-stored mode: the output the enclave sealed."""
    sealed = output.get("sealed")
    if not isinstance(sealed, str):
        raise ValueError("this output is not sealed (the task had no result_key)")
    return json.loads(
        provision.open_output(private_key, result_context(params), bytes.fromhex(sealed))
    )


# the owner's side ----------------------------------------------------------------------


@dataclass(frozen=True)
class OwnerTrust:
    """What a data owner checks an enclave against, read from the chain and its own
    node configuration by the runner at the moment of checking ("trusted now")."""

    policy: TrustPolicy
    verifiers: Mapping[str, Verifier]
    trusted: frozenset[bytes]
    revoked: frozenset[bytes]
    approved_digest: bytes  # the task's algorithm digest
    now: Callable[[], int]

    def expectation(self, nonce: bytes) -> Expectation:
        return Expectation(self.trusted, self.revoked, self.approved_digest, nonce)


class AttestationRefused(Exception):
    """This owner refused the host's enclave: ``refused`` says why, for ``report_digest``."""

    def __init__(self, report_digest: bytes, refused: Refused) -> None:
        self.report_digest = report_digest
        self.refused = refused
        super().__init__(f"refused report {report_digest.hex()}: {refused}")


class HostRefused(Exception):
    """An owner told the host it refused the enclave (or could not take part)."""


def _report(payload: bytes) -> AttestationReport:
    try:
        return AttestationReport.from_json(json.loads(payload))
    except (ValueError, TypeError, KeyError) as exc:
        raise Refused(Reason.MALFORMED, f"report: {exc}") from None


def _answer(channel: Channel, host: str, step: str, refused: Refused | None, **extra: Any) -> None:
    why = None if refused is None else {"reason": refused.reason.value, "detail": refused.detail}
    channel.send(host, step, canonical_json({"refused": why, **extra}))


def check_attested(
    claims: ReportClaims, task_id: bytes, sealed_digest: bytes, payload: bytes
) -> None:
    """An owner's check of what the host says the enclave did: the statement and the
    receipt are signed by the attested key, name this task, used and erased our input."""
    try:
        doc = json.loads(payload)
        statement = wire.statement_from_json(doc["result"])
        receipt = wire.receipt_from_json(doc["receipt"])
    except (ValueError, TypeError, KeyError) as exc:
        raise Refused(Reason.MALFORMED, f"result or receipt: {exc}") from None
    provision.verify_statement(claims, task_id, statement)
    provision.verify_receipt(claims, task_id, receipt)
    if sealed_digest not in statement.input_digests:
        raise Refused(Reason.MALFORMED, "the signed result does not name our input as used")
    if sealed_digest not in receipt.erased_input_digests or not receipt.keys_erased:
        raise Refused(Reason.MALFORMED, "the receipt does not say our input and keys were erased")


def run_owner(
    channel: Channel,
    params: Params,
    table: pa.Table,
    host: str,
    *,
    task_id: bytes,
    trust: OwnerTrust,
    min_group_size: int,
    on_refusal: Callable[[bytes, Refused], None],
    timeout: float = DEFAULT_TIMEOUT,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> None:
    """Challenge the host's enclave, verify it, then (only then) provision our rows.

    A failed check is handed to ``on_refusal`` (the runner records it on chain) *before*
    the host is told, so when the host, having heard from every owner, fails the task,
    every owner's refusal is already on chain; then ``AttestationRefused`` is raised.
    ``InvalidData`` is raised before any message when our rows cannot take part."""
    mine = owner_columns(params, table)
    if mine.num_rows < min_group_size:
        raise InvalidData(f"{mine.num_rows} rows, fewer than the minimum group {min_group_size}")
    nonce = random_bytes(32)
    channel.send(host, STEP_NONCE, nonce)
    payload = channel.receive(host, STEP_REPORT, timeout)
    report_digest = digest("tee-malformed-report", payload)  # until it parses
    try:
        report = _report(payload)
        report_digest = report.digest
        claims = verify_report(
            report,
            expectation=trust.expectation(nonce),
            policy=trust.policy,
            verifiers=trust.verifiers,
            now=trust.now(),
        )
    except Refused as refused:
        on_refusal(report_digest, refused)
        _answer(channel, host, STEP_INPUT, refused)
        raise AttestationRefused(report_digest, refused) from None
    plaintext = encode_input(InputHeader(params, min_group_size), mine)
    sealed = provision.seal_input(claims, task_id, channel.me.lower(), plaintext)
    chunks = [
        sealed.ciphertext[i : i + CHUNK_BYTES]
        for i in range(0, len(sealed.ciphertext), CHUNK_BYTES)
    ]
    _answer(channel, host, STEP_INPUT, None, chunks=len(chunks))
    for i, chunk in enumerate(chunks):
        channel.send(host, f"{STEP_INPUT}/{i}", chunk)
    try:
        check_attested(
            claims, task_id, sealed.digest, channel.receive(host, STEP_ATTESTED, timeout)
        )
    except Refused as refused:
        on_refusal(report.digest, refused)
        _answer(channel, host, STEP_ACK, refused)
        raise AttestationRefused(report.digest, refused) from None
    _answer(channel, host, STEP_ACK, None)


# the host's side -----------------------------------------------------------------------


@dataclass(frozen=True)
class TEEResult:
    """The host's result: the output for the grantee and what the auditor checks."""

    output: dict[str, Any]
    backend: str
    reports: dict[str, bytes]  # owner -> the exact report bytes sent to it
    statement: provision.ResultStatement
    receipt: provision.DestructionReceipt

    def attestation_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "reports": {o: json.loads(r) for o, r in sorted(self.reports.items())},
            "result": wire.statement_to_json(self.statement),
            "receipt": wire.receipt_to_json(self.receipt),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "backend": self.backend,
            "attestation": self.attestation_json(),
        }


def _refusal(channel: Channel, owner: str, step: str, timeout: float) -> tuple[str | None, Any]:
    """An owner's answer at ``step``: (its refusal as text or None, the whole answer)."""
    try:
        answer = json.loads(channel.receive(owner, step, timeout))
        refused = answer["refused"]
    except (ValueError, TypeError, KeyError):
        return f"{owner} sent a malformed {step} answer", None
    if refused is None:
        return None, answer
    return f"{owner} refused: {refused.get('reason')}: {refused.get('detail')}", answer


def _all_answers(
    channel: Channel, owners: Sequence[str], step: str, timeout: float
) -> dict[str, Any]:
    """Every owner's answer at ``step``; if any refused, ``HostRefused`` naming them all,
    raised only once every owner has answered (so each refusal is on chain by then)."""
    answers: dict[str, Any] = {}
    refusals: list[str] = []
    for owner in owners:
        refused, answers[owner] = _refusal(channel, owner, step, timeout)
        if refused is not None:
            refusals.append(refused)
    if refusals:
        raise HostRefused("; ".join(refusals))
    return answers


def _sealed_input(
    channel: Channel,
    owner: str,
    chunks: object,
    task_id: bytes,
    report_digest: bytes,
    timeout: float,
) -> SealedInput:
    if isinstance(chunks, bool) or not isinstance(chunks, int) or not 1 <= chunks <= MAX_CHUNKS:
        raise HostRefused(f"{owner} announced {chunks!r} input chunks")
    ciphertext = b"".join(
        channel.receive(owner, f"{STEP_INPUT}/{i}", timeout) for i in range(chunks)
    )
    return SealedInput(task_id, report_digest, owner.lower(), ciphertext)


def run_host(
    channel: Channel,
    params: Params,
    owners: Sequence[str],
    enclave: Enclave,
    *,
    task_id: bytes,
    timeout: float = DEFAULT_TIMEOUT,
) -> TEEResult:
    """Attest the enclave to every owner, provision what they seal, run, destroy.

    The enclave is destroyed whatever happens, so a failed job leaves no keys behind."""
    del params  # the enclave computes on what the owners sealed, not on the host's copy
    destroyed = False
    try:
        reports: dict[str, bytes] = {}
        digests: dict[str, bytes] = {}
        for owner in owners:
            nonce = channel.receive(owner, STEP_NONCE, timeout)
            if len(nonce) != 32:
                raise HostRefused(f"{owner} sent a {len(nonce)}-byte nonce, not 32")
            report = enclave.attest(nonce)
            reports[owner.lower()], digests[owner] = report.to_bytes(), report.digest
            channel.send(owner, STEP_REPORT, reports[owner.lower()])
        headers = _all_answers(channel, owners, STEP_INPUT, timeout)
        for owner in owners:
            chunks = headers[owner].get("chunks")
            enclave.provision(
                _sealed_input(channel, owner, chunks, task_id, digests[owner], timeout)
            )
        signed = enclave.run()
        destroyed = True
        receipt = enclave.destroy()
        statement = signed.statement()
        attested = canonical_json(
            {"result": wire.statement_to_json(statement), "receipt": wire.receipt_to_json(receipt)}
        )
        for owner in owners:
            channel.send(owner, STEP_ATTESTED, attested)
        _all_answers(channel, owners, STEP_ACK, timeout)
        output = json.loads(signed.output)
        return TEEResult(output, enclave.backend, reports, statement, receipt)
    finally:
        if not destroyed:
            with contextlib.suppress(RuntimeError):  # already destroyed
                enclave.destroy()
