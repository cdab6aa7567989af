"""OpenVLA's inputs: the released processor's pixel normalisation and the LIBERO script's prompt.

Pixels: the image (already through the LIBERO path of `tgrpo.envs.observation`) is resized to 224 with PIL bicubic
when it is not 224 already (`resize-naive`), scaled to [0, 1], and normalised twice: channels 0-2 with the DINO
constants (ImageNet's mean and std rounded to bf16, as the released `preprocessor_config.json` stores them),
channels 3-5 with SigLIP's 0.5 / 0.5.

Prompt: ``In: What action should the robot take to {instruction lower-cased}?\\nOut:``, tokenised by the
checkpoint's tokenizer.json without special tokens, BOS (`<s>`) in front, and SentencePiece's empty word token
"▁" (id 29871) appended unless it is already last, as OpenVLA's `predict_action` does (its training inputs end so).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

DINO_MEAN = (0.484375, 0.455078125, 0.40625)
DINO_STD = (0.228515625, 0.2236328125, 0.224609375)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)
EMPTY_WORD_ID = 29871  # "▁" in Llama-2's vocabulary
BOS = "<s>"


def prompt(instruction: str) -> str:
    return f"In: What action should the robot take to {instruction.lower()}?\nOut:"


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H, W, 3] -> [size, size, 3]: PIL bicubic (antialiased), a no-op at the size already."""
    if image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))


def pixel_values(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 images [B, H, W, 3] -> float32 [B, 6, size, size] (DINO-normalised RGB, then SigLIP-normalised)."""
    x = torch.from_numpy(np.stack([resize(np.asarray(im), size) for im in images])).permute(0, 3, 1, 2)
    x = x.float() / 255.0
    parts = []
    for mean, std in ((DINO_MEAN, DINO_STD), (SIGLIP_MEAN, SIGLIP_STD)):
        parts.append((x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None])
    return torch.cat(parts, dim=1)


class PromptEncoder:
    """Instruction -> prompt token ids (BOS first), with the checkpoint's tokenizer.json."""

    def __init__(self, tokenizer_json: str):
        from tokenizers import Tokenizer

        self.tokenizer_json = tokenizer_json
        self.tokenizer = Tokenizer.from_str(tokenizer_json)
        bos = self.tokenizer.token_to_id(BOS)
        if bos is None:
            raise ValueError(f"the tokenizer has no {BOS} token (not a Llama tokenizer)")
        self.bos = bos
        self._cache: dict[str, tuple[int, ...]] = {}

    def encode(self, instruction: str) -> tuple[int, ...]:
        if instruction not in self._cache:
            ids = [self.bos, *self.tokenizer.encode(prompt(instruction), add_special_tokens=False).ids]
            if ids[-1] != EMPTY_WORD_ID:
                ids.append(EMPTY_WORD_ID)
            self._cache[instruction] = tuple(ids)
        return self._cache[instruction]
