"""The `c360` command line: run the platform locally, mint tokens, stream a demo bank."""
