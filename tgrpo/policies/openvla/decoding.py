"""Action decoding written here (never transformers' `generate`, which with current transformers builds its cache
before the first step and so drops the image: OpenVLA issue #346): one prefill over [BOS | patches | prompt],
then one cached step per further action token, each reading the logits at the last position.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from tgrpo.policies import action_tokenizer as at
from tgrpo.policies.openvla.model import OpenVLAModel

Choose = Callable[[int, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""(step j, full-vocabulary logits [B, V] float32) -> (chosen token ids [B] int64, their log-probs [B])."""


@torch.no_grad()
def decode_actions(model: OpenVLAModel, embeddings: torch.Tensor, choose: Choose,
                   steps: int = at.ACTION_DIM) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt embeddings [B, n, H] -> action token ids [B, steps] and their log-probs [B, steps] (float32)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.language_model.config)
    hidden = model.hidden(embeddings, cache)[:, -1]
    tokens, logprobs = [], []
    for j in range(steps):
        if j:
            hidden = model.hidden(model.embed_tokens(tokens[-1][:, None]), cache)[:, -1]
        token, logp = choose(j, model.lm_head(hidden).float())
        tokens.append(token)
        logprobs.append(logp)
    return torch.stack(tokens, dim=1), torch.stack(logprobs, dim=1)
