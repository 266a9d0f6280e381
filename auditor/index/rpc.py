"""A minimal JSON-RPC client for the indexer's bulk reads (logs and block headers).

The indexer needs only a handful of methods, but needs them fast and in bulk: a page of
2,000 block headers is one HTTP batch request here, where web3 would make 2,000 calls
and format every field of every answer.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import httpx

from ledger.errors import ChainError


class RpcError(ChainError):
    """The node answered a call with a JSON-RPC error (e.g. a log range it refuses)."""

    def __init__(self, method: str, code: int | None, message: str) -> None:
        self.method = method
        self.rpc_code = code
        self.message = message
        super().__init__(f"{method}: {message} (code {code})")


class Rpc:
    """JSON-RPC over HTTP(S) with batching; one keep-alive connection."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"chain url: expected http(s)://host:port, got {url!r}")
        self.url = url
        self._client = httpx.Client(timeout=timeout)
        self._ids = itertools.count(1)

    def close(self) -> None:
        self._client.close()

    def _post(self, payload: object) -> Any:
        try:
            response = self._client.post(self.url, json=payload)
        except httpx.HTTPError as exc:
            raise ChainError(f"chain {self.url}: {exc}") from None
        if response.status_code != 200:
            raise RpcError("http", response.status_code, response.text[:200])
        return response.json()

    def call(self, method: str, params: Sequence[Any]) -> Any:
        answer = self._post(
            {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        )
        return _result(method, answer)

    def batch(self, method: str, params_list: Sequence[Sequence[Any]]) -> list[Any]:
        """One method with many parameter lists, in one request; results in order."""
        if not params_list:
            return []
        first = next(self._ids)
        payload = [
            {"jsonrpc": "2.0", "id": first + i, "method": method, "params": list(p)}
            for i, p in enumerate(params_list)
        ]
        self._ids = itertools.count(first + len(payload))
        answers = self._post(payload)
        if not isinstance(answers, list):  # some nodes answer a refused batch with one error
            raise RpcError(method, None, f"batch refused: {str(answers)[:200]}")
        by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
        return [_result(method, by_id.get(first + i)) for i in range(len(payload))]

    # --- the methods the indexer uses ------------------------------------------------

    def chain_id(self) -> int:
        return int(self.call("eth_chainId", []), 16)

    def head(self) -> int:
        return int(self.call("eth_blockNumber", []), 16)

    def tagged_block(self, tag: str) -> int | None:
        """The number of the block a tag (``finalized``, ``safe``) names, or None when the
        node does not offer the tag."""
        try:
            header = self.call("eth_getBlockByNumber", [tag, False])
        except RpcError:
            return None
        return None if header is None else int(header["number"], 16)

    def headers(self, first: int, last: int) -> list[dict[str, Any] | None]:
        """Block headers first..last (None where the node has no such block)."""
        return self.batch("eth_getBlockByNumber", [[hex(n), False] for n in range(first, last + 1)])

    def logs(self, addresses: Sequence[str], first: int, last: int) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call(
            "eth_getLogs",
            [{"fromBlock": hex(first), "toBlock": hex(last), "address": list(addresses)}],
        )
        return result


def _result(method: str, answer: Any) -> Any:
    if not isinstance(answer, dict):
        raise RpcError(method, None, "no answer")
    if "error" in answer:
        error = answer["error"] or {}
        raise RpcError(method, error.get("code"), str(error.get("message", error)))
    return answer.get("result")
