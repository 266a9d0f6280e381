"""Established PSI libraries run on the same sets as provnet's ECDH mode (issue 14).

These scripts run under ``.venv-psi-baselines/bin/python`` (``make bench-baselines``),
not the project's venv: openmined-psi pins protobuf 6 and spu pins numpy<2. They import
nothing from the project, only the standard library, the library under test and
:mod:`scripts.bench.psi_baselines.common`; ``scripts/bench/psi.py`` runs them as
``python -m scripts.bench.psi_baselines.NAME`` from the repository root and reads one
JSON object from their standard output.
"""
