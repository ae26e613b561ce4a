"""Hidden tests for ex05_choose_on_validation (see docs/GRADING.md).

Nothing the notebook reports is trusted: the check process rebuilds the same train and val sets
from the notebook's settings (handed in, and only accepted at their FAST or full values), embeds
them with the pretrained backbone itself, refits every probe with the notebook's recipe
(course_utils.features.linear_probe: standardised features, logistic regression, C = 1) and
compares. The test split is used by neither the notebook nor these checks.

Measured with the reference solution (20 Fashion-MNIST images per class, 64 px), FAST val
(50 per class, 500 images), seeds 0-4: pixels 0.766/0.776/0.734/0.752/0.714, top probe
0.776/0.732/0.780/0.770/0.772, earlier probe 0.818/0.792/0.792/0.812/0.814 (stage 6/5/5/6/6);
the rule chooses earlier/pixels (borderline)/top/earlier/earlier. Seed 0, the grader's, gives
earlier probe by 0.042 over the top probe against a spread of 0.019: not borderline.
"""

QUESTIONS = {"q1_val_scores": 3, "q2_choice": 2, "q3_note": 2}

IMAGE_SIZE = 64
PIXEL_SIZE = 28               # the no-transfer rung reads the native 28x28 grey pixels
RUNGS = ["pixels", "top probe", "earlier probe"]   # simplest first
EARLIER = [3, 4, 5, 6, 7]     # candidate groups for the earlier probe (stage 3 to stage 7)
C_PROBE = 1.0
PER_CLASS = (20,)             # allowed settings: FAST and full use the same training set
VAL_PER_CLASS = (50, 100)     # FAST, full
SCORE_TOL = 0.01              # |submitted - recomputed| val accuracy (a GPU embeds a hair differently)
BORDERLINE = 0.005            # |margin - spread| this small: either side of the rule is accepted
NOTE_TOL = 0.01               # the note's quoted val accuracy vs the recomputed one
MIN_WORDS = 3                 # a note field needs at least this many words

# Q2's fixed cases for choose_rung (rungs in RUNGS order, n_val): none is within BORDERLINE of a
# spread. collect() repeats them literally (only its source reaches the kernel); the check
# compares the two copies, so a drift shows up as a failed check of the reference solution.
RULE_CASES = [
    [{"pixels": 0.60, "top probe": 0.75, "earlier probe": 0.80}, 500],    # earlier clearly best
    [{"pixels": 0.60, "top probe": 0.79, "earlier probe": 0.80}, 500],    # earlier ties top: top
    [{"pixels": 0.60, "top probe": 0.79, "earlier probe": 0.80}, 20000],  # same margin, more val: earlier
    [{"pixels": 0.795, "top probe": 0.70, "earlier probe": 0.80}, 500],   # ties the simplest, not the next
    [{"pixels": 0.50, "top probe": 0.85, "earlier probe": 0.80}, 500],    # the top probe is best
    [{"pixels": 0.90, "top probe": 0.70, "earlier probe": 0.89}, 500],    # no transfer is best
    [{"pixels": 0.77, "top probe": 0.788, "earlier probe": 0.80}, 400],   # pixels ties top, not the best: top
]


def collect(ns):
    # Runs in the student's kernel; only this function's source is shipped there.
    cases = [
        [{"pixels": 0.60, "top probe": 0.75, "earlier probe": 0.80}, 500],
        [{"pixels": 0.60, "top probe": 0.79, "earlier probe": 0.80}, 500],
        [{"pixels": 0.60, "top probe": 0.79, "earlier probe": 0.80}, 20000],
        [{"pixels": 0.795, "top probe": 0.70, "earlier probe": 0.80}, 500],
        [{"pixels": 0.50, "top probe": 0.85, "earlier probe": 0.80}, 500],
        [{"pixels": 0.90, "top probe": 0.70, "earlier probe": 0.89}, 500],
        [{"pixels": 0.77, "top probe": 0.788, "earlier probe": 0.80}, 400],
    ]

    def scores():
        return {str(k): float(v) for k, v in dict(ns["VAL_SCORES"]).items()}

    def rule_cases():
        out = []
        for case_scores, n in cases:
            choice = ns["choose_rung"](dict(case_scores), n)
            out.append([case_scores, n, str(choice)])
        return out

    def note():
        return {str(k): str(v) for k, v in dict(ns["NOTE"]).items()}

    return {
        "settings": lambda: {"PER_CLASS": int(ns["PER_CLASS"]), "VAL_PER_CLASS": int(ns["VAL_PER_CLASS"]),
                             "SEED": int(ns["SEED"])},
        "val_scores": scores,
        "earlier_group": lambda: str(ns["EARLIER_GROUP"]),
        "rule_cases": rule_cases,
        "choice": lambda: str(ns["CHOICE"]),
        "note": note,
    }


# ---- shared, computed once per check process -------------------------------------------------

_CACHE = {}


def _settings(answers) -> tuple[int, int, int]:
    s = answers["settings"]
    assert isinstance(s, dict), "the settings did not arrive"
    per_class, val_per_class, seed = s.get("PER_CLASS"), s.get("VAL_PER_CLASS"), s.get("SEED")
    assert per_class in PER_CLASS, f"PER_CLASS is {per_class}: keep the notebook's value {PER_CLASS[0]}"
    assert val_per_class in VAL_PER_CLASS, \
        f"VAL_PER_CLASS is {val_per_class}: keep the notebook's values ({VAL_PER_CLASS[0]} FAST, {VAL_PER_CLASS[1]} full)"
    assert isinstance(seed, int) and 0 <= seed < 10_000, f"SEED is {seed!r}"
    return per_class, val_per_class, seed


def _recompute(answers) -> dict:
    """Every rung's and every candidate group's val accuracy, from the grader's own embeddings."""
    key = _settings(answers)
    if key in _CACHE:
        return _CACHE[key]
    import torch

    from course_utils.datasets import load_dataset
    from course_utils.features import embed, linear_probe
    from course_utils.grading.toolkit import check_backbone
    from course_utils.probing import StageConcat, group_names, group_widths
    per_class, val_per_class, seed = key
    bb = check_backbone(IMAGE_SIZE)
    train = load_dataset("fashion_mnist", "train", per_class=per_class, image_size=IMAGE_SIZE, seed=seed)
    val = load_dataset("fashion_mnist", "val", per_class=val_per_class, image_size=IMAGE_SIZE)
    stages = StageConcat(bb.features)
    widths = group_widths(bb.features)
    tr = torch.split(embed(stages, train.x, device="cpu", transform=bb.normalize), widths, dim=1)
    va = torch.split(embed(stages, val.x, device="cpu", transform=bb.normalize), widths, dim=1)
    names = group_names(bb.features)
    depth = {names[g]: linear_probe(tr[g], train.y, va[g], val.y, C=C_PROBE).accuracy for g in EARLIER}
    best_group = max(depth, key=depth.get)
    train_px = load_dataset("fashion_mnist", "train", per_class=per_class, image_size=PIXEL_SIZE, seed=seed)
    val_px = load_dataset("fashion_mnist", "val", per_class=val_per_class, image_size=PIXEL_SIZE)
    pixels = linear_probe(train_px.x[:, 0].flatten(1), train_px.y, val_px.x[:, 0].flatten(1), val_px.y,
                          C=C_PROBE).accuracy
    scores = {"pixels": pixels, "top probe": linear_probe(tr[-1], train.y, va[-1], val.y, C=C_PROBE).accuracy,
              "earlier probe": depth[best_group]}
    _CACHE[key] = {"scores": scores, "depth": depth, "best_group": best_group, "n_val": len(val)}
    return _CACHE[key]


def _spread(a: float, b: float, n: int) -> float:
    """The larger of the two accuracies' standard errors on n val images."""
    return max((p * (1 - p) / n) ** 0.5 for p in (a, b))


def _acceptable(scores: dict, n: int, borderline: float = 0.0) -> list[str]:
    """The rule's choice(s): the simplest rung whose margin to the best is within the spread.
    A comparison whose margin is within ``borderline`` of the spread may go either way."""
    best = max(RUNGS, key=lambda r: scores[r])
    out = []
    for rung in RUNGS:
        if rung == best:
            out.append(rung)
            break
        margin, spread = scores[best] - scores[rung], _spread(scores[best], scores[rung], n)
        if abs(margin - spread) < borderline:
            out.append(rung)                 # either way: acceptable, and the walk goes on
        elif margin <= spread:
            out.append(rung)
            break
    return out


def _scores_shape(scores) -> dict:
    assert isinstance(scores, dict), f"VAL_SCORES is a {type(scores).__name__}, expected a dict"
    assert sorted(scores) == sorted(RUNGS), f"VAL_SCORES has keys {sorted(scores)}, expected {RUNGS}"
    for rung, value in scores.items():
        assert isinstance(value, (int, float)) and 0.0 <= value <= 1.0, \
            f"VAL_SCORES[{rung!r}] is {value!r}: an accuracy in [0, 1]"
    return scores


# ---- checks -----------------------------------------------------------------------------------

def check_q1_val_scores(answers):
    got = _scores_shape(answers["val_scores"])
    ref = _recompute(answers)
    group = answers["earlier_group"]
    assert group in ref["depth"], \
        f"EARLIER_GROUP is {group!r}: one of the candidate groups {list(ref['depth'])}"
    best = ref["depth"][ref["best_group"]]
    assert ref["depth"][group] >= best - SCORE_TOL, \
        (f"EARLIER_GROUP {group!r} scores {ref['depth'][group]:.3f} on val, but {ref['best_group']!r} scores "
         f"{best:.3f}: pick the candidate with the best val accuracy")
    wrong = {r: (got[r], ref["scores"][r]) for r in RUNGS if abs(got[r] - ref["scores"][r]) > SCORE_TOL}
    measured = ", ".join(f"{r} {ref['scores'][r]:.3f}" for r in RUNGS)
    if wrong:
        first = ", ".join(f"{r}: yours {a:.3f}, recomputed {b:.3f}" for r, (a, b) in wrong.items())
        return False, (f"val accuracy recomputed on {ref['n_val']} val images ({measured}) differs by more than "
                       f"{SCORE_TOL} ({first}): same train/val sets, features and recipe?")
    return True, (f"val accuracy recomputed on {ref['n_val']} val images: {measured} "
                  f"(earlier group {ref['best_group']}); yours within {SCORE_TOL}")


def check_q2_choice(answers):
    cases = answers["rule_cases"]
    assert isinstance(cases, list) and len(cases) == len(RULE_CASES), "choose_rung's answers did not arrive"
    wrong = []
    for (scores, n, said), (want_scores, want_n) in zip(cases, RULE_CASES):
        assert scores == want_scores and n == want_n, "internal: collect() and RULE_CASES differ"
        expected = _acceptable(scores, n)[0]
        if said != expected:
            wrong.append((said, expected))
    # The fixed cases are hidden inputs: say how many went wrong and how, not which scores they had.
    if wrong:
        return False, (f"choose_rung is wrong on {len(wrong)} of {len(RULE_CASES)} grader cases (e.g. it "
                       f"returned {wrong[0][0]!r} where the rule gives {wrong[0][1]!r}): "
                       "the simplest rung within the spread of the best")
    ref = _recompute(answers)
    choice = answers["choice"]
    allowed = _acceptable(ref["scores"], ref["n_val"], BORDERLINE)
    measured = ", ".join(f"{r} {ref['scores'][r]:.3f}" for r in RUNGS)
    return choice in allowed, (f"choose_rung passes {len(RULE_CASES)} fixed cases; on the recomputed val accuracy "
                               f"({measured}, n={ref['n_val']}) the rule gives {' or '.join(map(repr, allowed))}, "
                               f"CHOICE is {choice!r}")


def _numbers(text: str) -> list[float]:
    """Numbers in a text, as fractions: '0.81' -> 0.81, '81.2%' -> 0.812."""
    import re
    out = []
    for match in re.finditer(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(%?)", text):
        value = float(match.group(1))
        out.append(value / 100 if match.group(2) else value)
    return out


def _mentions(text: str, rung: str) -> bool:
    words = {"pixels": ("pixel",), "top probe": ("top",), "earlier probe": ("earlier",)}[rung]
    lower = text.lower()
    return rung in lower or any(w in lower for w in words)


def check_q3_note(answers):
    from course_utils.notes import TRANSFER_NOTE_FIELDS
    note = answers["note"]
    assert isinstance(note, dict) and sorted(note) == sorted(TRANSFER_NOTE_FIELDS), \
        f"NOTE has keys {sorted(note) if isinstance(note, dict) else note!r}, expected {list(TRANSFER_NOTE_FIELDS)}"
    thin = [k for k, v in note.items() if len(v.split()) < MIN_WORDS]
    assert not thin, f"NOTE fields {thin} are empty or under {MIN_WORDS} words"
    choice = answers["choice"]
    assert choice in RUNGS, f"CHOICE is {choice!r}: the note reports the chosen rung, one of {RUNGS}"
    ref = _recompute(answers)
    want = ref["scores"][choice]
    text = note["validation"]
    assert any(abs(x - want) <= NOTE_TOL for x in _numbers(text)), \
        (f"the validation field quotes no number within {NOTE_TOL} of the recomputed val accuracy of {choice} "
         f"({want:.3f})")
    simpler = RUNGS[:RUNGS.index(choice)] or [r for r in RUNGS if r != choice]
    named = [r for r in simpler if _mentions(text, r)]
    return bool(named), (f"the validation field quotes the val accuracy of {choice} ({want:.3f}, recomputed) and "
                         f"names {', '.join(named) if named else 'none'} of the rungs it was compared with "
                         f"({', '.join(simpler)}; needs one)")
