"""Baselines trained outside the RL loop. Today one: supervised fine-tuning (`baselines.sft`, behaviour cloning on
the expert's demonstrations), the policy every RL run starts from. The RL baseline, standard GRPO (sparse 0/1
success reward, trajectory-level advantage), is not here: it is a method of the one RL loop (`--method grpo`,
`tgrpo/rl_config.py`, run by `tgrpo/train.py`). DPO is not implemented."""
