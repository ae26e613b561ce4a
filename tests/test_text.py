"""The text encoder is the real all-MiniLM-L6-v2 and loads with no network; the sentence data set's
splits are fixed, disjoint and balanced; the classifier ignores padding."""
import gzip
import subprocess
import sys

import numpy as np
import pytest
import torch

from course_utils import datafiles
from course_utils.text import (SENTENCE_DOMAINS, SentenceClassifier, cached_sentence_embeddings, load_sentences,
                               load_text_encoder)

# The sentence-transformers README's example for this model prints these cosine similarities
# (weather/sunny 0.6660, weather/stadium 0.1046, sunny/stadium 0.1411).
README_SENTENCES = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
README_SIMILARITIES = {(0, 1): 0.6660, (0, 2): 0.1046, (1, 2): 0.1411}


@pytest.fixture(scope="module")
def encoder():
    return load_text_encoder(device="cpu")


def test_encoder_reproduces_the_model_cards_similarities(encoder):
    z = encoder.embed(README_SENTENCES)
    assert z.shape == (3, 384) and encoder.dim == 384
    assert torch.allclose(z.norm(dim=1), torch.ones(3), atol=1e-5)
    sims = z @ z.T
    for (i, j), expected in README_SIMILARITIES.items():
        assert abs(sims[i, j].item() - expected) < 5e-4, (i, j, sims[i, j].item())
    # 22,713,216 in the checkpoint, less the unused pooler (384 x 384 + 384): 6 layers, 384 wide
    assert sum(p.numel() for p in encoder.model.parameters()) == 22_565_376
    assert not any(p.requires_grad for p in encoder.model.parameters())


def test_embedding_does_not_depend_on_batching_or_order(encoder):
    texts = README_SENTENCES + ["a much longer sentence about nothing in particular, to force padding"] * 2
    one_by_one = torch.cat([encoder.embed([t]) for t in texts])
    assert torch.allclose(encoder.embed(texts, batch_size=2), one_by_one, atol=1e-5)


def test_cls_pooling_differs_and_bad_pooling_is_refused(encoder):
    mean, cls = encoder.embed(README_SENTENCES), encoder.embed(README_SENTENCES, pooling="cls")
    assert (mean - cls).abs().max() > 0.05
    with pytest.raises(ValueError, match="pooling"):
        encoder.embed(README_SENTENCES, pooling="max")


def test_loads_and_embeds_with_the_network_blocked(tmp_path):
    # A fresh cache folder: the model is unpacked from the wheel again, then loaded, all offline.
    code = f"""
import socket
def refuse(*a, **k):
    raise OSError("network blocked by the test")
socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
import os
os.environ["COURSE_CACHE_DIR"] = {str(tmp_path)!r}
from course_utils.text import load_text_encoder
z = load_text_encoder(device="cpu").embed(["It's so sunny outside!", "He drove to the stadium."])
print(round(float(z[0] @ z[1]), 4))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "0.1411"


def test_splits_are_fixed_disjoint_and_balanced(monkeypatch):
    monkeypatch.delenv("COURSE_FAST", raising=False)  # whole splits; FAST caps them (checked below)
    sets = {s: load_sentences("movies", s) for s in ("train", "val", "test")}
    texts = {s: set(d.texts) for s, d in sets.items()}
    assert not (texts["train"] & texts["val"]) and not (texts["train"] & texts["test"]) and not (texts["val"] & texts["test"])
    assert sum(len(d) for d in sets.values()) == len(texts["train"] | texts["val"] | texts["test"])
    assert load_sentences("movies", "test", seed=7).texts == sets["test"].texts  # seed never moves test
    small = load_sentences("movies", "train", per_class=8, seed=1)
    assert small.y.bincount().tolist() == [8, 8] and set(small.texts) <= texts["train"]
    assert load_sentences("movies", "train", per_class=8, seed=2).texts != small.texts
    # labels follow the human rating: positive mean rating <=> class 1, neutral ratings left out
    d = sets["val"]
    assert np.array_equal(d.y.numpy() == 1, d.rating > 0) and np.abs(d.rating).min() >= 0.5
    monkeypatch.setenv("COURSE_FAST", "1")  # FAST's smaller val and test still never depend on seed
    assert load_sentences("movies", "test", seed=3).texts == load_sentences("movies", "test", seed=0).texts
    assert load_sentences("movies", "train", seed=3).texts != load_sentences("movies", "train", seed=0).texts


def test_every_domain_loads_and_bad_names_say_what_is_allowed():
    for domain in SENTENCE_DOMAINS:
        assert len(load_sentences(domain, "test", per_class=5)) == 10
    with pytest.raises(ValueError, match="allowed: movies, tweets"):
        load_sentences("imdb")
    with pytest.raises(ValueError, match="per_class=100000 is more than"):
        load_sentences("tweets", "val", per_class=100000)


def test_a_corrupt_sentence_file_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    (tmp_path / "sentiment_sentences.tsv.gz").write_bytes(gzip.compress(b"domain\tid\trating\ttext\n"))
    with pytest.raises(datafiles.DataError, match="build_sentences.py"):
        load_sentences("movies", "test")


def test_classifier_ignores_padding(encoder):
    torch.manual_seed(0)
    clf = SentenceClassifier(encoder.model, encoder.dim, 2).eval()
    ids = encoder.token_ids(README_SENTENCES)
    padded = torch.cat([ids, torch.zeros(len(ids), 7, dtype=ids.dtype)], dim=1)
    with torch.no_grad():
        assert torch.allclose(clf(ids), clf(padded), atol=1e-5)
        alone = clf(encoder.token_ids(README_SENTENCES[:1]))
        assert torch.allclose(clf(ids)[:1], alone, atol=1e-5)


def test_cached_embeddings_are_reused(encoder):
    data = load_sentences("movies", "val", per_class=3)
    first = cached_sentence_embeddings(encoder, data)
    again = cached_sentence_embeddings(encoder, data)
    assert torch.equal(first, again) and first.shape == (6, 384)
    assert not torch.allclose(cached_sentence_embeddings(encoder, data, pooling="cls"), first)


def test_weights_changed_in_place_miss_the_sentence_cache(encoder):
    """Fine-tuning the encoder in place must not return the vectors of the weights before."""
    data = load_sentences("movies", "val", per_class=3)
    before = cached_sentence_embeddings(encoder, data)
    weight = next(encoder.model.parameters())
    with torch.no_grad():
        weight.mul_(1.5)
    try:
        assert not torch.allclose(cached_sentence_embeddings(encoder, data), before)
    finally:
        with torch.no_grad():
            weight.div_(1.5)


def test_soft_prompt_matches_peft_prompt_tuning(encoder):
    """The hand-written prompt tuning gives the encoder states peft's PromptTuningConfig gives with the same
    prompt; only the prompt and the head train, and padding changes nothing."""
    import copy

    import peft

    from course_utils.layers import count_trainable
    from course_utils.prompts import SoftPromptClassifier

    n = 4
    clf = SoftPromptClassifier(encoder.model, encoder.dim, 2, n_tokens=n).eval()
    ids = encoder.token_ids(README_SENTENCES)
    config = peft.PromptTuningConfig(task_type=peft.TaskType.FEATURE_EXTRACTION, num_virtual_tokens=n,
                                     token_dim=encoder.dim, num_transformer_submodules=1, num_attention_heads=12,
                                     num_layers=6)
    reference = peft.get_peft_model(copy.deepcopy(encoder.model), config).eval()
    with torch.no_grad():
        reference.prompt_encoder["default"].embedding.weight.copy_(clf.prompt)
        mask = (ids != 0).long()
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        assert torch.allclose(clf.encode(ids), expected, atol=1e-5)
        padded = torch.cat([ids, torch.zeros(len(ids), 5, dtype=ids.dtype)], dim=1)
        assert torch.allclose(clf(ids), clf(padded), atol=1e-5)
    assert count_trainable(clf) == n * encoder.dim + encoder.dim * 2 + 2
    assert not any(p.requires_grad for p in encoder.model.parameters())
    with pytest.raises(ValueError, match="n_tokens"):
        SoftPromptClassifier(encoder.model, encoder.dim, 2, n_tokens=0)


def test_adapters_start_as_the_encoder_and_train_only_themselves_and_layernorms(encoder):
    """Houlsby adapters: the adapted encoder computes what the pretrained one computes until it trains; the
    trainable parameters are exactly the adapters (2·d·b + b + d each, two per layer) and the LayerNorms."""
    import copy

    from course_utils.adapters import add_adapters
    from course_utils.layers import count_trainable

    model = copy.deepcopy(encoder.model)
    wrapped = add_adapters(model, bottleneck=16)
    ids = encoder.token_ids(README_SENTENCES)
    mask = (ids != 0).long()
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids, attention_mask=mask).last_hidden_state,
                              encoder.model(input_ids=ids, attention_mask=mask).last_hidden_state, atol=1e-5)
    layers, d = encoder.model.config.num_hidden_layers, encoder.dim
    norms = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters())
    assert len(wrapped) == 2 * layers
    assert count_trainable(model) == 2 * layers * (2 * d * 16 + 16 + d) + norms
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(".1.down." in n or ".1.up." in n or "LayerNorm" in n for n in names), names[:5]
    with pytest.raises(ValueError, match="bottleneck"):
        add_adapters(copy.deepcopy(encoder.model), bottleneck=0)
