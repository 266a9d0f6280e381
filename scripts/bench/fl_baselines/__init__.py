"""flwr's SecAgg+ client-side masking timed on the FL benchmark's vector (issue 16).

Runs under ``.venv-fl-baselines/bin/python`` (``make bench-fl-baselines``), not the
project's venv (flwr's pins conflict with the project's). Imports nothing from the
project; ``scripts/bench/fl.py`` runs ``python -m scripts.bench.fl_baselines.secaggplus``
from the repository root and reads one JSON object from its standard output.
"""
