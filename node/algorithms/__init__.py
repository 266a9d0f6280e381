"""One module per job kind. Each declares NAME, VERSION, KIND and PARAMETER_SCHEMA."""
