"""Supervised fine-tuning (behaviour cloning) on demonstrations: the starting point of every RL method."""
