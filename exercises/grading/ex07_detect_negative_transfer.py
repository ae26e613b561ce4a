"""Hidden tests for ex07_detect_negative_transfer (see docs/GRADING.md).

The check process rebuilds the whole recipe itself: scikit-learn's 8x8 digits (30 training digits
per class, seed 0; 28 validation digits per class, seed 0: 280), logistic regression (C=1,
standardised, as `course_utils.features.linear_probe`) on the 64 raw pixels and on the pooled output
of every layer group of a frozen EfficientNet-Lite0 at 32 px. Every submitted number is compared
with the grader's own; no test digit is read.

Measured with the reference recipe (CPU): raw pixels val 0.939, final frozen features val 0.704
(difference -0.236, far beyond the borderline: negative transfer by compare's paired interval). Probes by group, val
(test, 35 per class as in FAST): stem 0.521 (0.526), stage 1 0.632 (0.594), stage 2 0.807 (0.811),
stage 3 0.832 (0.820), stage 4 0.925 (0.906), stage 5 0.911 (0.926), stage 6 0.875 (0.880),
stage 7 0.839 (0.849), top 0.704 (0.626). Validation picks stage 4; the test digits would pick
stage 5, four validation digits (0.014) lower, which TOLERANCE (1.4 digits) rejects.
"""

QUESTIONS = {"q1_pixels_vs_probe": 2, "q2_verdict_rule": 2, "q3_negative_transfer": 1, "q4_remedy_on_val": 3}

IMAGE_SIZE = 32           # the last feature map is 1x1: the frozen features keep no layout of the digit
TRAIN_PER_CLASS = 30      # drawn with SEED
VAL_PER_CLASS = 28        # drawn with seed 0 (the smallest class has 28)
C = 1.0
SEED = 0
RECIPE = [IMAGE_SIZE, TRAIN_PER_CLASS, VAL_PER_CLASS, C, SEED]
TOLERANCE = 0.005         # 1.4 of the 280 validation digits: GPU vs CPU embeddings may move one prediction
BORDERLINE = 0.005        # an interval end this close to zero: either verdict is accepted
# Q2's cases, as counts of digits (both probes right, only the pixels right, only the probe right, both
# wrong): far beyond zero both ways, ties, and cases where a wrong rule answers otherwise: 1 SE instead of
# 1.96 (cases 4 and 7), the unpaired standard error of two accuracies (5 and 6), the rule this replaced, unpaired
# at 1 SE (9 and 10), a swapped sign (1 and 2).
# Every end of every interval is at least 0.008 from zero, beyond BORDERLINE.
RULE_CASES = [(150, 80, 10, 40), (150, 10, 80, 40), (200, 12, 10, 58), (200, 6, 10, 64), (200, 0, 12, 68),
              (1700, 82, 42, 176), (800, 70, 58, 72), (40, 5, 5, 10), (150, 8, 0, 122), (800, 70, 86, 44)]


def collect(ns):
    # Runs in the student's kernel; only this function's source is shipped there.
    def plain(v):
        """True / False / "tie" as JSON-safe values (numpy bools become bools)."""
        if isinstance(v, str):
            return v
        if type(v).__name__ in ("bool", "bool_"):
            return bool(v)
        return repr(v)[:40]

    import numpy as np

    cases = [  # the same as RULE_CASES (only this function travels to the kernel)
        (150, 80, 10, 40), (150, 10, 80, 40), (200, 12, 10, 58), (200, 6, 10, 64), (200, 0, 12, 68),
        (1700, 82, 42, 176), (800, 70, 58, 72), (40, 5, 5, 10), (150, 8, 0, 122), (800, 70, 86, 44)]

    def hits(both, pixel_only, probe_only, neither):
        """(pixel_hits, probe_hits) as 0/1 arrays over the same digits."""
        ones, zeros = np.ones, np.zeros
        return (np.concatenate([ones(both), ones(pixel_only), zeros(probe_only), zeros(neither)]).astype(int),
                np.concatenate([ones(both), zeros(pixel_only), ones(probe_only), zeros(neither)]).astype(int))
    return {
        "recipe": lambda: [int(ns["IMAGE_SIZE"]), int(ns["TRAIN_PER_CLASS"]), int(ns["VAL_PER_CLASS"]), float(ns["C"]),
                           int(ns["SEED"])],
        "pixel_val": lambda: float(ns["PIXEL_VAL"]),
        "probe_val": lambda: float(ns["PROBE_VAL"]),
        "rule": lambda: [plain(ns["transfer_verdict"](*hits(*case))) for case in cases],
        "negative_transfer": lambda: plain(ns["NEGATIVE_TRANSFER"]),
        "best_stage": lambda: str(ns["BEST_STAGE"]),
        "best_stage_val": lambda: float(ns["BEST_STAGE_VAL"]),
    }


# ---- shared, computed once per check process -------------------------------------------------

_CACHE = {}


def _hits(both, pixel_only, probe_only, neither):
    import numpy as np
    return (np.array([1] * both + [1] * pixel_only + [0] * probe_only + [0] * neither),
            np.array([1] * both + [0] * pixel_only + [1] * probe_only + [0] * neither))


def _reference_rule(pixel_hits, probe_hits):
    """The course's rule (compare, one seed); returns (answer, the distance of the interval's nearer end from 0)."""
    from course_utils.evaluation import compare
    result = compare(probe_hits, pixel_hits, win="helps", lose="hurts", tie="tie")
    return {"hurts": True, "helps": False, "tie": "tie"}[result.word], min(abs(result.low), abs(result.high))


def _accepted(pixel_hits, probe_hits):
    """The answers accepted: the rule's, plus its neighbour when an end of the interval is within BORDERLINE of 0."""
    answer, gap = _reference_rule(pixel_hits, probe_hits)
    if gap > BORDERLINE:
        return [answer]
    return ["tie", float(probe_hits.mean()) < float(pixel_hits.mean())]


def _same(a, b):
    return type(a) is type(b) and a == b


def _measured():
    """Validation accuracy of pixels and of every layer group's probe, the grader's own recipe."""
    if "measured" not in _CACHE:
        import torch

        from course_utils.datasets import load_dataset
        from course_utils.features import embed, linear_probe
        from course_utils.grading.toolkit import check_backbone
        from course_utils.probing import StageConcat, group_names, group_widths
        bb = check_backbone(IMAGE_SIZE)
        split = {"train": dict(per_class=TRAIN_PER_CLASS, seed=SEED), "val": dict(per_class=VAL_PER_CLASS, seed=0)}
        sets = {k: load_dataset("digits", k, image_size=IMAGE_SIZE, **kw) for k, kw in split.items()}
        pix = {k: load_dataset("digits", k, image_size=8, **kw) for k, kw in split.items()}
        y = {k: sets[k].y for k in sets}
        pixel = linear_probe(pix["train"].x[:, 0].flatten(1), y["train"], pix["val"].x[:, 0].flatten(1), y["val"],
                             C=C)
        widths = group_widths(bb.features)
        feats = {k: torch.split(embed(StageConcat(bb.features), sets[k].x, device=torch.device("cpu"),
                                      transform=bb.normalize), widths, dim=1) for k in sets}
        fits = {name: linear_probe(a, y["train"], b, y["val"], C=C)
                for name, a, b in zip(group_names(bb.features), feats["train"], feats["val"])}
        _CACHE["measured"] = {"pixel": pixel.accuracy, "stages": {k: f.accuracy for k, f in fits.items()},
                              "probe": fits["top"].accuracy, "n": len(y["val"]),
                              "pixel_hits": pixel.hits, "probe_hits": fits["top"].hits}
    return _CACHE["measured"]


def _recipe_ok(answers):
    recipe = answers["recipe"]
    assert list(recipe) == RECIPE, (f"the notebook's recipe (IMAGE_SIZE, TRAIN_PER_CLASS, VAL_PER_CLASS, C, SEED) is {recipe}, "
                                    f"expected {RECIPE}: keep the given constants")


def _number(value, label):
    import math
    assert isinstance(value, float) and math.isfinite(value) and 0 <= value <= 1, \
        f"{label} is {value!r}: expected an accuracy between 0 and 1"
    return value


# ---- checks -----------------------------------------------------------------------------------

def check_q1_pixels_vs_probe(answers):
    _recipe_ok(answers)
    m = _measured()
    pixel, probe = _number(answers["pixel_val"], "PIXEL_VAL"), _number(answers["probe_val"], "PROBE_VAL")
    ok = abs(pixel - m["pixel"]) <= TOLERANCE and abs(probe - m["probe"]) <= TOLERANCE
    return ok, (f"validation accuracy on {m['n']} digits: PIXEL_VAL {pixel:.3f} vs the grader's {m['pixel']:.3f}, "
                f"PROBE_VAL {probe:.3f} vs {m['probe']:.3f} (each within {TOLERANCE}; 8x8 pixels and the frozen "
                f"{IMAGE_SIZE} px features, same standardised logistic regression)")


def check_q2_verdict_rule(answers):
    got = answers["rule"]
    assert isinstance(got, list) and len(got) == len(RULE_CASES), "transfer_verdict returned an unexpected result"
    wrong = [(case, g) for case, g in zip(RULE_CASES, got) if not any(_same(g, a) for a in _accepted(*_hits(*case)))]
    # The cases are hidden inputs: name the kind of mistake, not the case's numbers.
    detail = "; ".join(f"gave {g!r} where the rule gives {_reference_rule(*_hits(*case))[0]!r}"
                       for case, g in wrong[:2])
    return not wrong, (f"{len(RULE_CASES) - len(wrong)}/{len(RULE_CASES)} (pixel_hits, probe_hits) cases right "
                       "(True / False / \"tie\" from the paired difference's 95 % interval, mean +- 1.96 SE)"
                       + (f": {detail}" if wrong else ""))


def check_q3_negative_transfer(answers):
    m = _measured()
    got = answers["negative_transfer"]
    accepted = _accepted(m["pixel_hits"], m["probe_hits"])
    answer, gap = _reference_rule(m["pixel_hits"], m["probe_hits"])
    return any(_same(got, a) for a in accepted), (
        f"NEGATIVE_TRANSFER is {got!r}; on the grader's own probes (pixels {m['pixel']:.3f}, probe {m['probe']:.3f} "
        f"on {m['n']} validation digits) the rule says {answer!r} (the interval's nearer end is {gap:.3f} from zero)")


def check_q4_remedy_on_val(answers):
    _recipe_ok(answers)
    m = _measured()
    stages = m["stages"]
    stage, value = answers["best_stage"], _number(answers["best_stage_val"], "BEST_STAGE_VAL")
    assert stage in stages, f"BEST_STAGE is {stage!r}: expected one of group_names(bb.features) {list(stages)}"
    best = max(stages, key=stages.get)
    chosen_ok = stages[stage] >= stages[best] - TOLERANCE
    value_ok = abs(value - stages[stage]) <= TOLERANCE
    return chosen_ok and value_ok, (
        f"{stage!r}: the grader's validation accuracy {stages[stage]:.3f} (yours {value:.3f}, within {TOLERANCE}: "
        f"{'yes' if value_ok else 'no'}); the validation-best group is {best!r} at {stages[best]:.3f} "
        f"(your choice within {TOLERANCE} of it: {'yes' if chosen_ok else 'no'})")
