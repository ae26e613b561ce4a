"""The course's one comparison rule, ``evaluation.compare``: proven by simulation on the shape of the
course's own experiments (3 seeds, ~60 test objects whose effects differ from item to item)."""
from __future__ import annotations

import numpy as np
import pytest

from course_utils.evaluation import compare, item_scores

SEEDS, ITEMS, TRIALS = 3, 60, 600


def _experiment(rng, delta, seed_sd=0.03, item_sd=0.15):
    """Two methods scored on the same fresh sample of test items, over the same seeds: per-item
    difficulty, per-item effects of a over b (mean ``delta``), a per-seed shift of each method's accuracy."""
    difficulty = rng.beta(2, 1.2, ITEMS)
    effect = rng.normal(delta, item_sd, ITEMS)
    scores = []
    for sign in (+1, -1):
        p = np.clip(difficulty + sign * effect / 2 + rng.normal(0, seed_sd, (SEEDS, 1)), 0, 1)
        scores.append(rng.binomial(1, p).astype(float))
    return scores


def _true_spread(rng, delta):
    """The mean difference's real spread over repeated experiments (new items, new seeds)."""
    diffs = [np.subtract(*_experiment(rng, delta)).mean() for _ in range(TRIALS)]
    return float(np.mean(diffs)), float(np.std(diffs))


def _old_rule(a, b):
    """What notebooks did before: a verdict when the margin beat the larger of the two seed std's."""
    margin = a.mean() - b.mean()
    return abs(margin) > max(a.mean(axis=1).std(ddof=1), b.mean(axis=1).std(ddof=1))


def test_no_true_difference_gives_a_verdict_in_at_most_10_percent_of_trials():
    rng = np.random.default_rng(0)
    calls = [not compare(*_experiment(rng, 0.0)).is_tie for _ in range(TRIALS)]
    old = [_old_rule(*_experiment(rng, 0.0)) for _ in range(TRIALS)]
    print(f"false verdicts: compare {np.mean(calls):.3f}, margin beyond the seed std {np.mean(old):.3f}")
    assert np.mean(calls) <= 0.10
    assert np.mean(old) > 2 * np.mean(calls)  # the rule it replaces calls winners far more often


def test_a_true_difference_of_3_standard_errors_is_found_at_least_80_percent_of_the_time():
    rng = np.random.default_rng(1)
    delta = 0.15
    for _ in range(3):  # effects near a ceiling shrink: aim the real mean difference at 3 of its SEs
        mean, sd = _true_spread(rng, delta)
        delta *= 3 * sd / mean
    found = [compare(*_experiment(rng, delta)).word == "beats" for _ in range(TRIALS)]
    print(f"power at 3 SE (difference {mean:+.3f}, SE {sd:.3f}): {np.mean(found):.3f}")
    assert np.mean(found) >= 0.78  # ~0.80 expected: 3 SE minus 1.96 SE leaves one SE, P(Z > -1.04) = 0.85


def test_the_interval_counts_seed_noise_that_item_noise_does_not_show():
    """Every seed reads the same items: a method whose seeds disagree as a whole (one seed +0.2, one
    -0.2) must get a wider interval than the items alone give."""
    rng = np.random.default_rng(2)
    a, b = (rng.uniform(0.3, 0.7, (SEEDS, ITEMS)) for _ in range(2))   # per-object shares of renders right
    shifted = a + np.array([[0.2], [0.0], [-0.2]])
    same_items = compare(a, b)
    with_seed_effect = compare(shifted, b)
    assert (with_seed_effect.high - with_seed_effect.low) > 1.5 * (same_items.high - same_items.low)


def test_one_seed_is_the_paired_standard_error_over_items():
    rng = np.random.default_rng(3)
    a, b = (rng.binomial(1, 0.7, ITEMS).astype(float) for _ in range(2))
    d = a - b
    got = compare(a, b)
    half = 1.959964 * d.std(ddof=1) / np.sqrt(ITEMS)
    assert got.difference == pytest.approx(d.mean())
    assert (got.low, got.high) == pytest.approx((d.mean() - half, d.mean() + half), abs=1e-6)
    assert got.seeds == 1 and got.items == ITEMS


def test_words_interval_text_and_errors():
    a, b = np.ones((3, 20)), np.zeros((3, 20))
    assert compare(a, b).word == "beats" and compare(b, a).word == "loses to"
    assert compare(a, a).word == "ties with" and compare(a, a).is_tie
    got = compare(a, b, win="above", lose="below", tie="ties with")
    assert str(got) == "above (+1.000, 95 % CI +1.000 to +1.000)"
    one_row = compare(np.ones(20), b)   # a method that does not depend on the seed: one row
    assert one_row.seeds == 3
    against_a_number = compare(np.tile([0.5, 0.7], (3, 10)), 0.5)   # a measurement against a formula's value
    assert against_a_number.word == "beats" and against_a_number.difference == pytest.approx(0.1)
    with pytest.raises(ValueError, match="contain 'tie'"):
        compare(a, b, tie="within noise of")
    with pytest.raises(ValueError, match="same items"):
        compare(a, np.zeros((3, 19)))
    with pytest.raises(ValueError, match="seeds"):
        compare(np.ones((2, 20)), b)
    with pytest.raises(ValueError, match="NaN"):
        compare(np.full((3, 20), np.nan), b)


def test_item_scores_group_renders_of_one_object():
    correct = [1, 0, 1, 1, 0, 0]
    units = [7, 7, 3, 3, 5, 5]   # sorted by unit id: 3, 5, 7
    assert item_scores(correct, units).tolist() == [1.0, 0.0, 0.5]
    assert item_scores(correct).tolist() == [1, 0, 1, 1, 0, 0]
