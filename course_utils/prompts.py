"""Prompts for frozen networks, written out: the course teaches both, so they are not a library call.

- ``VisualPrompt``: visual prompting for a frozen CNN (Elsayed et al. 2019; Bahng et al. 2022), the closest
  a CNN gets to prompt tuning: a learned pattern *added to the input pixels* (here on a border of ``width``
  pixels, in the normalised input space); the network and all its weights stay frozen.
- ``SoftPromptClassifier``: prompt tuning where it was invented, on a transformer (Lester et al. 2021):
  learned vectors prepended to the token embeddings of every input; the encoder stays frozen, only the
  prompt and a linear head train. tests/test_text.py checks its encoder states against ``peft``'s
  ``PromptTuningConfig`` with the same prompt.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from course_utils.text import mean_pool, trim_padding


class VisualPrompt(nn.Module):
    """``x + pattern`` where the pattern is learnable on a border ``width`` pixels wide of an
    ``image_size`` image and zero inside (``width >= image_size // 2`` covers the whole image).
    Only the border pixels are parameters, so ``count_trainable`` counts what can change. Starts at
    zero: the prompted model starts exactly as the unprompted one."""

    def __init__(self, image_size: int, width: int = 4, channels: int = 3):
        super().__init__()
        if width < 1 or image_size < 1:
            raise ValueError(f"need width >= 1 and image_size >= 1 pixels, got width={width!r}, image_size={image_size!r}")
        mask = torch.ones(image_size, image_size, dtype=torch.bool)
        inner = image_size - 2 * width
        if inner > 0:
            mask[width:width + inner, width:width + inner] = False
        self.image_size = image_size
        self.register_buffer("where", mask.flatten().nonzero().squeeze(1))
        self.values = nn.Parameter(torch.zeros(channels, len(self.where)))

    def pattern(self) -> torch.Tensor:
        """The additive pattern as an image (1, C, H, W)."""
        flat = self.values.new_zeros(self.values.shape[0], self.image_size * self.image_size)
        flat = flat.index_copy(1, self.where, self.values)
        return flat.view(1, -1, self.image_size, self.image_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(f"the prompt was made for {self.image_size}x{self.image_size} images, got "
                             f"{tuple(x.shape[-2:])}: build it with VisualPrompt(image_size={x.shape[-1]})")
        return x + self.pattern()


def prompted(model: nn.Module, image_size: int, width: int = 4) -> nn.Sequential:
    """``model`` with a ``VisualPrompt`` in front (``.prompt``, then ``.model``); the model's own
    trainable flags are left as they are (freeze what should stay frozen)."""
    return nn.Sequential(OrderedDict(prompt=VisualPrompt(image_size, width), model=model))


class SoftPromptClassifier(nn.Module):
    """A frozen BERT-style encoder (``encoder_model``, e.g. MiniLM's) read through ``n_tokens`` learned prompt
    vectors, then mean pooling over the sentence's own tokens and a linear head, on token ids (pad id 0).

    Forward: the word embeddings of the ids, with the prompt in front, go in as ``inputs_embeds`` (the encoder
    adds position embeddings to both, so the sentence sits ``n_tokens`` positions later), and the attention
    mask grows by ``n_tokens`` ones: every layer's tokens can attend to the prompt. The prompt starts as the
    embeddings of ``n_tokens`` vocabulary words drawn with ``seed`` (Lester et al. found this better than
    random vectors). Only ``prompt`` and ``head`` are trainable; the encoder's flags are set to frozen here."""

    def __init__(self, encoder_model: nn.Module, dim: int, num_classes: int, n_tokens: int = 8, pad_id: int = 0,
                 seed: int = 0):
        super().__init__()
        if n_tokens < 1:
            raise ValueError(f"n_tokens must be at least 1, got {n_tokens!r}")
        words = encoder_model.get_input_embeddings().weight
        if words.shape[1] != dim:
            raise ValueError(f"the encoder's token embeddings are {words.shape[1]} wide, not dim={dim}")
        for p in encoder_model.parameters():
            p.requires_grad_(False)
        picked = torch.randint(1000, words.shape[0], (n_tokens,), generator=torch.Generator().manual_seed(seed))
        self.encoder, self.pad_id = encoder_model, pad_id   # ids below 1000 are BERT's special and unused tokens
        self.prompt = nn.Parameter(words[picked].detach().clone())
        self.head = nn.Linear(dim, num_classes)

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """The last layer's token states, prompt first: (N, n_tokens + L, dim), L the longest real text."""
        return self._states(*trim_padding(ids, self.pad_id))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids, mask = trim_padding(ids, self.pad_id)
        states = self._states(ids, mask)[:, len(self.prompt):]   # the sentence's own tokens, pooled as MiniLM was trained
        return self.head(mean_pool(states, mask))

    def _states(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        tokens = self.encoder.get_input_embeddings()(ids)
        prompt = self.prompt.unsqueeze(0).expand(len(ids), -1, -1)
        full_mask = torch.cat([mask.new_ones(len(ids), len(self.prompt)), mask], dim=1)
        return self.encoder(inputs_embeds=torch.cat([prompt, tokens], dim=1), attention_mask=full_mask).last_hidden_state


__all__ = ["SoftPromptClassifier", "VisualPrompt", "prompted"]
