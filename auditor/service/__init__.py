"""The auditor service: its config, the one end-to-end task verification, the runner."""
