from __future__ import annotations

import pytest

from ledger.ids import InvalidInput, as_address, as_bytes32, hex32, name_id

ADDRESS = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # EIP-55 test vector


def test_bytes32_accepts_bytes_and_hex() -> None:
    raw = bytes(range(32))
    assert as_bytes32(raw, "f") == raw
    assert as_bytes32(hex32(raw), "f") == raw


@pytest.mark.parametrize(
    "bad", [b"", bytes(31), bytes(33), "0x" + "00" * 31, "00" * 32, "0x" + "zz" * 32, 7, None]
)
def test_bytes32_rejects_and_names_the_field(bad: object) -> None:
    with pytest.raises(InvalidInput) as exc:
        as_bytes32(bad, "task_id")
    assert str(exc.value).startswith("task_id: ")


def test_address_checksum_rules() -> None:
    assert as_address(ADDRESS, "a") == ADDRESS
    assert as_address(ADDRESS.lower(), "a") == ADDRESS
    assert as_address("0x" + ADDRESS[2:].upper(), "a") == ADDRESS
    broken = ADDRESS[:-1] + ("D" if ADDRESS[-1] == "d" else "d")
    with pytest.raises(InvalidInput, match="checksum"):
        as_address(broken, "node")


@pytest.mark.parametrize("bad", ["", "0x1234", ADDRESS[2:], ADDRESS + "00", 12, None])
def test_address_rejects_malformed(bad: object) -> None:
    with pytest.raises(InvalidInput, match=r"^grantee: "):
        as_address(bad, "grantee")


def test_name_ids_are_domain_separated_and_stable() -> None:
    assert name_id("org", "Bank A") == name_id("org", "Bank A")
    assert name_id("org", "Bank A") != name_id("dataset", "Bank A")
    with pytest.raises(InvalidInput):
        name_id("org", "")
