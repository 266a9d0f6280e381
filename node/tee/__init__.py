"""Attested enclave jobs (DESIGN §6, TEE): attestation reports, their verification,
provisioning of inputs to an attested key, and signed results and destruction receipts.

One backend ships, ``simulated``: a software enclave whose attestation proves nothing
about hardware and says so in every report it makes (docs/tee.md). Verification is
pluggable per backend (``backend.Verifier``), so a hardware format can be added without
changing callers.
"""
