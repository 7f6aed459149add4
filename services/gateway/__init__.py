"""Gateway: the one public HTTP API, with authentication, scoping, masking and audit."""
