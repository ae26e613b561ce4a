"""Hidden tests for ex01_freeze_and_probe (see docs/GRADING.md).

Nothing the notebook reports is trusted: the check process rebuilds the backbone, embeds
held-out renders of the test objects itself and applies the submitted head's weights.
"""

QUESTIONS = {"q1_frozen_model": 2, "q2_probe_head": 3, "q3_predict": 2}

IMAGE_SIZE = 64
NUM_CLASSES = 9
ACCURACY_BAR = 0.45     # reference solution: 0.6-0.7 here in FAST and full mode (chance 0.11)
AGREEMENT_BAR = 0.9     # predict_groups vs the submitted head on the grader's own features
# Q3's images: val objects rendered on a noise background, 4 per group (explicit per_class, so
# the set does not depend on COURSE_FAST). Q3 grades agreement, not accuracy, so val will do; the
# test objects stay out of the kernel (the sandbox hides them). collect() and the checks build it alike.
PREDICT_SET = dict(split="val", per_class=4, image_size=IMAGE_SIZE, seed=0, views=2, background="noise")


def collect(ns):
    # Runs in the student's kernel; only this function's source is shipped there.
    import torch
    from course_utils.datasets import load_dataset

    def trainable():
        return [[name, int(p.numel())] for name, p in ns["model"].named_parameters() if p.requires_grad]

    def head_param(name):
        head = ns["head"]
        return getattr(head, name).detach().float().cpu()

    def predictions():
        x = load_dataset("objects", **{"split": "val", "per_class": 4, "image_size": 64, "seed": 0,
                                       "views": 2, "background": "noise"}).x
        with torch.no_grad():
            out = ns["predict_groups"](x.clone())
        return [str(name) for name in list(out)]

    return {
        "trainable": trainable,
        "n_params": lambda: int(sum(p.numel() for p in ns["model"].parameters())),
        "children": lambda: [name for name, _ in ns["model"].named_children()],
        "head_weight": lambda: head_param("weight"),
        "head_bias": lambda: head_param("bias"),
        "predictions": predictions,
    }


# ---- shared, computed once per check process -------------------------------------------------

_CACHE = {}


def _backbone():
    from course_utils.grading.toolkit import check_backbone
    return check_backbone(IMAGE_SIZE)


def _embed(key, data):
    if key not in _CACHE:
        from course_utils.features import embed
        bb = _backbone()
        _CACHE[key] = embed(bb.features, data.x, device="cpu", transform=bb.normalize).clone()
    return _CACHE[key]


def _heldout():
    """Renders of the test objects (10 per group), which the instructor kit's secret picks."""
    from course_utils.grading.toolkit import heldout_objects
    return heldout_objects(IMAGE_SIZE)


def _head(answers):
    """The submitted head as (weight, bias) float64 arrays, shapes validated."""
    import numpy as np
    w = np.asarray(answers["head_weight"], dtype=np.float64)
    b = np.asarray(answers["head_bias"], dtype=np.float64)
    feature_dim = _backbone().feature_dim
    assert w.shape == (NUM_CLASSES, feature_dim), \
        f"head.weight has shape {w.shape}, expected ({NUM_CLASSES}, {feature_dim})"
    assert b.shape == (NUM_CLASSES,), f"head.bias has shape {b.shape}, expected ({NUM_CLASSES},)"
    assert np.isfinite(w).all() and np.isfinite(b).all(), "the head has NaN/inf weights"
    return w, b


def _predict(w, b, feats):
    return (feats.double().numpy() @ w.T + b).argmax(1)


# ---- checks -----------------------------------------------------------------------------------

def check_q1_frozen_model(answers):
    from course_utils.layers import replace_head
    bb = _backbone()
    children = answers["children"]
    assert list(children) == ["features", "head"], \
        f"model's children are {children}, expected ['features', 'head'] (use replace_head)"
    expected_total = sum(p.numel() for p in replace_head(bb, NUM_CLASSES).parameters())
    assert answers["n_params"] == expected_total, \
        f"model has {answers['n_params']:,} parameters, expected {expected_total:,} (Lite0 features + a 9-way head)"
    trainable = {name: n for name, n in answers["trainable"]}
    wrong = sorted(name for name in trainable if not name.startswith("head."))
    assert not wrong, f"{len(wrong)} backbone tensors still train (first: {wrong[:2]}): freeze model.features"
    assert set(trainable) == {"head.weight", "head.bias"}, \
        f"the trainable tensors are {sorted(trainable)}: expected the head's weight and bias"
    want = bb.feature_dim * NUM_CLASSES + NUM_CLASSES
    count = sum(trainable.values())
    return count == want, f"{count:,} trainable parameters (expected {want:,}: only the head)"


def check_q2_probe_head(answers):
    import torch
    w, b = _head(answers)
    data = _heldout()
    pred = _predict(w, b, _embed("heldout", data))
    acc = float((torch.from_numpy(pred) == data.y).float().mean())
    return acc >= ACCURACY_BAR, f"held-out accuracy {acc:.3f} on {len(data)} renders (needs >= {ACCURACY_BAR})"


def check_q3_predict(answers):
    from course_utils.datasets import load_dataset
    w, b = _head(answers)
    names = answers["predictions"]
    data = load_dataset("objects", **PREDICT_SET)
    assert isinstance(names, list) and len(names) == len(data), \
        f"predict_groups returned {len(names) if isinstance(names, list) else type(names).__name__} names " \
        f"for {len(data)} images"
    unknown = sorted({n for n in names if n not in data.classes})
    assert not unknown, f"unknown group names {unknown[:3]}: use the names in train.classes"
    expected = [data.classes[i] for i in _predict(w, b, _embed("predict", data))]
    agree = sum(a == e for a, e in zip(names, expected)) / len(names)
    return agree >= AGREEMENT_BAR, (f"predict_groups agrees with your head on the grader's features for "
                                    f"{agree:.0%} of {len(names)} images (needs {AGREEMENT_BAR:.0%}; "
                                    "same weights and normalisation?)")
