"""The auditor's reports: an in-toto Statement of a task's verification in a DSSE
envelope signed by the auditor (`statement`, `dsse`), and a W3C PROV export of the
task's provenance (`provenance`)."""
