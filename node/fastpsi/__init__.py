"""Fast PSI mode: SecretFlow spu's C++ PSI (RR22 over VOLE, or ECDH) in a sidecar process.

spu 0.9.5 needs numpy<2 and the node pins numpy 2, so spu lives in a venv of its own
(``make fast-psi`` builds ``.venv-fast-psi``). :mod:`node.fastpsi.sidecar` runs there and
imports only the standard library and spu; :mod:`node.fastpsi.driver` runs in the node's
venv, starts the sidecar and reads its result. See ``docs/fast-psi.md``.
"""
