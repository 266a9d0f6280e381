"""The EIP-712 sign-in message: what a member's key signs to prove it holds the key.

The domain binds a signature to one chain (``chainId``), one consortium (its
``Consortium`` address as ``verifyingContract``) and this auditor (``audience`` in the
message, e.g. its base URL), so a signature made for another chain, another consortium
or another service (even another auditor of the same consortium) does not verify here.
The nonce is 32 random bytes the server chose and will accept once; ``issuedAt`` and
``expiresAt`` are shown to the signer by wallets and checked by the server.

The server never verifies a message the client sends back: it rebuilds the typed data
from its own record of the challenge (``sessions.SessionStore``), so every field is the
server's, and only the signature comes from the client.
"""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data

DOMAIN_NAME = "provnet auditor"
DOMAIN_VERSION = "1"
PRIMARY_TYPE = "SignIn"

TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    PRIMARY_TYPE: [
        {"name": "address", "type": "address"},
        {"name": "nonce", "type": "bytes32"},
        {"name": "issuedAt", "type": "uint64"},
        {"name": "expiresAt", "type": "uint64"},
        {"name": "audience", "type": "string"},
    ],
}


def typed_data(
    *,
    chain_id: int,
    consortium_address: str,
    address: str,
    nonce: bytes,
    issued_at: int,
    expires_at: int,
    audience: str,
) -> dict[str, Any]:
    """The full EIP-712 message (``eth_signTypedData_v4`` shape), JSON-ready."""
    if len(nonce) != 32:
        raise ValueError("nonce must be 32 bytes")
    return {
        "types": {name: [dict(f) for f in fields] for name, fields in TYPES.items()},
        "primaryType": PRIMARY_TYPE,
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": consortium_address,
        },
        "message": {
            "address": address,
            "nonce": "0x" + nonce.hex(),
            "issuedAt": issued_at,
            "expiresAt": expires_at,
            "audience": audience,
        },
    }


def sign(account: Any, data: dict[str, Any]) -> str:
    """Sign the typed data with a ``LocalAccount``; the 65-byte signature as 0x hex."""
    signed = account.sign_message(encode_typed_data(full_message=data))
    return "0x" + bytes(signed.signature).hex()


def recover(data: dict[str, Any], signature: bytes) -> str | None:
    """The checksum address that signed ``data``, or None for a malformed signature."""
    try:
        return str(
            Account.recover_message(encode_typed_data(full_message=data), signature=signature)
        )
    except Exception:  # a hostile signature must not become a 500
        return None
