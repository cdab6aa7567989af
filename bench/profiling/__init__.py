"""Kernel profiler behind ``tgrpo-bench profile``: a shape grid, timed per implementation, reported."""
