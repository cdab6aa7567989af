"""LIBERO environment layer: protocol constants, env wrapper, privileged state, workers and group rollout."""
