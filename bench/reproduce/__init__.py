"""The reproduction harness: one pipeline for every suite and profile (demonstrations -> SFT -> SFT evaluation ->
per (method, task, seed) training and evaluation -> report), as content-addressed, cached stages in a run store.

`plan` builds the stage graph, `store` keeps each stage's record under its key, `stages` runs one stage through
the library entry points (`bench.runs`), `execute` walks the graph with progress, ETA and failure isolation.
"""
