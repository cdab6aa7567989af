"""The neutral RL core: method and profile registry (`methods`), run configs (`config`), the group batch and its
aggregation weights (`batch`) and the online loop (`loop`). Advantage estimators and policy losses register in
`tgrpo.advantages` and `tgrpo.losses`; methods name them. Policies enter through `TrainablePolicy` only.
"""
