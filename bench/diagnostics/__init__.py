"""Diagnostics: tools that explain a result (how episodes fail), runnable with `python -m`."""
