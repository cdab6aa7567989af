"""Baseline methods (SFT, DPO, GRPO, ...) built on the same kernels as TGRPO."""
