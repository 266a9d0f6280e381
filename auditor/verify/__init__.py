"""The provenance verifier: one check per module, each a pure function of the task's
event history (and, for the evidence checks, the nodes' transcripts) returning a named
`Check` with its verdict and the evidence it used. `run.verify_task` runs them all."""
