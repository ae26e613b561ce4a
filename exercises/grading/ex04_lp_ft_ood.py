"""Hidden tests for ex04_lp_ft_ood (see docs/GRADING.md).

The check process loads the submitted state_dicts into fresh replace_head(Lite0, 10) models and
recomputes ID accuracy (MNIST test, 30 per digit), OOD accuracy (scikit-learn's 8x8 digits, padded
and upsampled as in the notebook) and the feature change relative to the pretrained backbone.

Measured with the reference solution in FAST mode (20 MNIST images per digit, 3 epochs, Adam 3e-5),
seeds 0/1/2: probe ID 0.76/0.82/0.85; FT ID 0.60/0.59/0.49, OOD 0.23/0.26/0.29, feature change
0.62/0.67/0.62; LP-FT ID 0.74/0.82/0.81, OOD 0.46/0.38/0.39, feature change 0.29/0.38/0.47.
Full mode (50 per digit, 5 epochs), seeds 0/1: LP-FT change 0.40/0.46 vs FT 1.38/1.53, LP-FT OOD
0.56/0.51 vs FT 0.56/0.56 -- the OOD advantage is a FAST-mode (short-budget) effect here, the
smaller feature change holds in both. Q4 is graded on the rule (compare), not on which method wins.
"""

QUESTIONS = {"q1_probe": 2, "q2_ft": 2, "q3_lpft": 2, "q4_ood": 1}

IMAGE_SIZE = 64
NUM_CLASSES = 10
PROBE_BAR = 0.6
FT_BAR = 0.3
LPFT_BAR = 0.65     # above FT's FAST-mode ID (0.49-0.60): a random-head "LP-FT" does not pass
MIN_CHANGE = 0.01     # mean relative embedding change below this: the features were not fine-tuned
BORDERLINE = 0.005  # an interval end this close to zero: either verdict is accepted


def collect(ns):
    # Runs in the student's kernel; only this function's source is shipped there.
    def state(name):
        return lambda: {k: v.detach().cpu() for k, v in ns[name].state_dict().items()}

    return {
        "probe_weight": lambda: ns["probe_head"].weight.detach().float().cpu(),
        "probe_bias": lambda: ns["probe_head"].bias.detach().float().cpu(),
        "ft_state": state("ft_model"),
        "lpft_state": state("lpft_model"),
        "ood_verdict": lambda: str(ns["OOD_VERDICT"]),
    }


# ---- shared, computed once per check process -------------------------------------------------

_CACHE = {}


def _backbone():
    from course_utils.grading.toolkit import check_backbone
    return check_backbone(IMAGE_SIZE)


def _sets():
    if "sets" not in _CACHE:
        import torch.nn.functional as F

        from course_utils.datasets import load_dataset
        id_test = load_dataset("mnist", "test", per_class=30, image_size=IMAGE_SIZE, seed=0)
        d = load_dataset("digits", "test", per_class=35, image_size=8, seed=0)
        ood_x = F.interpolate(F.pad(d.x, (1, 1, 1, 1)), size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear",
                              align_corners=False).clamp(0, 1)
        _CACHE["sets"] = (id_test.x, id_test.y, ood_x, d.y)
    return _CACHE["sets"]


def _embed(features, x):
    import torch

    from course_utils.features import embed
    return embed(features, x, device=torch.device("cpu"), transform=_backbone().normalize).clone()


def _pretrained_id_feats():
    if "pre" not in _CACHE:
        _CACHE["pre"] = _embed(_backbone().features, _sets()[0])
    return _CACHE["pre"]


def _acc(logits, y) -> float:
    return float((logits.argmax(1) == y).float().mean())


def _evaluate(key, answers):
    """(ID accuracy, OOD hits: 1 per OOD image it gets right, feature change) of a submitted model, computed once."""
    if key in _CACHE:
        return _CACHE[key]
    import torch

    from course_utils.layers import replace_head
    from course_utils.grading.toolkit import submitted_state
    tensors = submitted_state(answers[key], NUM_CLASSES, IMAGE_SIZE, label=key)
    model = replace_head(_backbone(), NUM_CLASSES)
    model.load_state_dict(tensors, strict=True)
    model.eval()
    id_x, id_y, ood_x, ood_y = _sets()
    id_feats = _embed(model.features, id_x)
    with torch.no_grad():
        id_acc = _acc(model.head(id_feats), id_y)
        ood_hits = (model(_backbone().normalize(ood_x)).argmax(1) == ood_y).float().numpy()
    pre = _pretrained_id_feats()
    change = float(((id_feats - pre).norm(dim=1) / pre.norm(dim=1).clamp_min(1e-8)).mean())
    _CACHE[key] = (id_acc, ood_hits, change)
    return _CACHE[key]


# ---- checks -----------------------------------------------------------------------------------

def check_q1_probe(answers):
    import numpy as np
    import torch
    w = np.asarray(answers["probe_weight"], dtype=np.float64)
    b = np.asarray(answers["probe_bias"], dtype=np.float64)
    dim = _backbone().feature_dim
    assert w.shape == (NUM_CLASSES, dim) and b.shape == (NUM_CLASSES,), \
        f"probe_head has weight {w.shape} and bias {b.shape}, expected ({NUM_CLASSES}, {dim}) and ({NUM_CLASSES},)"
    assert np.isfinite(w).all() and np.isfinite(b).all(), "probe_head has NaN/inf weights"
    feats = _pretrained_id_feats().double().numpy()
    acc = float((torch.from_numpy((feats @ w.T + b).argmax(1)) == _sets()[1]).float().mean())
    return acc >= PROBE_BAR, f"probe ID accuracy {acc:.3f} on frozen features (needs >= {PROBE_BAR})"


def check_q2_ft(answers):
    id_acc, _, change = _evaluate("ft_state", answers)
    assert change > MIN_CHANGE, f"FT's features did not move (change {change:.4f}): fine-tune every parameter"
    return id_acc >= FT_BAR, f"FT: ID accuracy {id_acc:.3f} (needs >= {FT_BAR}), feature change {change:.2f}"


def check_q3_lpft(answers):
    id_acc, _, change = _evaluate("lpft_state", answers)
    assert change > MIN_CHANGE, f"LP-FT's features did not move (change {change:.4f}): fine-tune after probing"
    assert id_acc >= LPFT_BAR, f"LP-FT: ID accuracy {id_acc:.3f} (needs >= {LPFT_BAR}): did it start from probe_head?"
    _, _, ft_change = _evaluate("ft_state", answers)
    return change < ft_change, (f"LP-FT: ID accuracy {id_acc:.3f}; feature change {change:.2f} vs FT's "
                                f"{ft_change:.2f} (must be smaller)")


def check_q4_ood(answers):
    """The verdict is the student's reasoning, not the experiment's outcome: it must be the course's rule
    (compare: paired per-image scores, a winner only when the 95 % interval excludes zero) applied to the
    grader's own measurement of both models on the same OOD images."""
    from course_utils.evaluation import compare
    said = answers["ood_verdict"]
    assert said in ("LP-FT", "FT", "tie"), f"OOD_VERDICT is {said!r}: one of 'LP-FT', 'FT', 'tie'"
    ft, lpft = _evaluate("ft_state", answers)[1], _evaluate("lpft_state", answers)[1]
    result = compare(lpft, ft, win="LP-FT", lose="FT", tie="tie")
    borderline = min(abs(result.low), abs(result.high)) < BORDERLINE
    measured = (f"OOD accuracy LP-FT {lpft.mean():.3f}, FT {ft.mean():.3f} on {result.items} images: difference "
                f"{result.difference:+.3f}, {result.interval}")
    return said == result.word or borderline, f"{measured}; compare gives {result.word!r}, you said {said!r}"
