"""Harness of tgrpo-bench: evaluation, results with provenance, reports, benchmarks and the CLI."""
