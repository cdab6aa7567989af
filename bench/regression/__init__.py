"""Result-regression set (`tgrpo-bench check` / `tgrpo-bench record`): a few short, bit-exact runs of the real
simulator and the training code, compared with our own references in `expected_results/regression/`.

`cases` names what runs, `measure` runs it, `references` reads and writes the reference files, `compare` turns a
mismatch into a readable diff. See docs/regression.md.
"""
