"""Hidden tests for ex03_fix_preprocessing (see docs/GRADING.md).

Q1 recomputes the reference transform (course_utils.backbones.make_preprocess) on the same photos
in the check process, and refuses outputs made by calling that reference or torchvision's transforms
(the kernel traps them while the student's function runs); Q2 compares with the photos' known ImageNet classes; Q3 knows the problem
each grader-built batch has by construction.
"""

QUESTIONS = {"q1_preprocess": 3, "q2_classify": 1, "q3_diagnose": 2}

# Q1's inputs: (photo name, PIL mode or None, size). collect() repeats this list (it runs alone).
PREPROCESS_CASES = [
    ("chelsea", None, 224), ("coffee", None, 224), ("astronaut", None, 224), ("rocket", None, 224),
    ("motorcycle", None, 160), ("china", None, 160), ("flower", None, 96),
    ("chelsea", "L", 160), ("coffee", "RGBA", 160),
]
MAX_MEAN_ABS_DIFF = 0.1  # in normalised units ([-1, 1]); the bugs measured give >= 0.32, exact ports ~0-0.05
# Q3: the batches collect() builds, in this order, and the verdict each must get.
DIAGNOSE_SOURCES = ("photos", "objects", "digits")
DIAGNOSE_KINDS = ("ok", "0-255", "unnormalised", "wrong mean/std", "channels last", "grayscale")


def collect(ns):
    # Runs in the student's kernel; only this function's source is shipped there.
    import numpy as np
    import torch
    from course_utils import load_dataset, load_photos

    cases = [("chelsea", None, 224), ("coffee", None, 224), ("astronaut", None, 224), ("rocket", None, 224),
             ("motorcycle", None, 160), ("china", None, 160), ("flower", None, 96),
             ("chelsea", "L", 160), ("coffee", "RGBA", 160)]
    photos = {p.name: p.image for p in load_photos()}

    def preprocessed():
        # The exercise asks for each step by hand: while the student's preprocess runs, the course's
        # reference (make_preprocess, hence bb.preprocess) and torchvision's transform functions raise.
        import torchvision.transforms.functional as TF

        import course_utils.backbones as backbones
        names = ("resize", "center_crop", "normalize", "to_tensor", "pil_to_tensor", "crop")
        saved, used = {n: getattr(TF, n) for n in names}, []

        def trap(what):
            def refuse(*args, **kwargs):
                used.append(what)
                raise RuntimeError(f"preprocess called {what}")
            return refuse
        reference = backbones.make_preprocess
        try:
            for n in names:
                setattr(TF, n, trap(f"torchvision's {n}"))
            backbones.make_preprocess = trap("course_utils' make_preprocess")
            out = []
            for name, mode, size in cases:
                image = photos[name].copy()
                if mode:
                    image = image.convert(mode)
                out.append(torch.as_tensor(ns["preprocess"](image, size=size)).detach().float().cpu())
        except Exception:
            if used:
                return {"forbidden": used[0]}
            raise
        finally:
            for n, f in saved.items():
                setattr(TF, n, f)
            backbones.make_preprocess = reference
        return {"outputs": out}

    def classified():
        from PIL import ImageOps
        names = sorted(photos)
        images = [photos[n].copy() for n in names] + [ImageOps.mirror(photos[n]) for n in names]
        return {"names": names * 2, "predicted": [str(c) for c in ns["classify"](images)]}

    def batches():
        def to01(images):
            return torch.stack([torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)
                                for im in images])
        sources = [
            to01([p.image for p in load_photos(image_size=64)]),
            load_dataset("objects", "val", per_class=2, image_size=64, seed=0).x,  # test is hidden in the sandbox
            load_dataset("digits", "test", per_class=2, image_size=32, seed=0, interpolation="bilinear").x,
        ]
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        verdicts = []
        for x in sources:
            good = (x - 0.5) / 0.5
            for b in (good, x * 255, x, (x - mean) / std, good.permute(0, 2, 3, 1), good[:, :1]):
                verdicts.append(str(ns["diagnose"](b.clone())))
        return verdicts

    return {"preprocessed": preprocessed, "classified": classified, "verdicts": batches}


def _shifted_mad(out, ref, k=1):
    """Mean |out - ref|, minimised over shifts of up to k pixels (crop offsets that round differently)."""
    size = ref.shape[-1]
    best = float("inf")
    for dy in range(-k, k + 1):
        for dx in range(-k, k + 1):
            a = out[:, max(0, dy):size + min(0, dy), max(0, dx):size + min(0, dx)]
            b = ref[:, max(0, -dy):size + min(0, -dy), max(0, -dx):size + min(0, -dx)]
            best = min(best, float((a - b).abs().mean()))
    return best


def check_q1_preprocess(answers):
    import numpy as np
    import torch

    from course_utils.backbones import make_preprocess
    from course_utils.datafiles import load_photos
    got = answers["preprocessed"]
    assert isinstance(got, dict), "preprocess outputs missing"
    assert "forbidden" not in got, \
        f"preprocess called {got.get('forbidden')}: write each step with PIL, numpy and torch, as Q1 asks"
    outs = got["outputs"]
    assert isinstance(outs, list) and len(outs) == len(PREPROCESS_CASES), "preprocess outputs missing"
    photos = {p.name: p.image for p in load_photos()}
    worst = (0.0, "")
    for out, (name, mode, size) in zip(outs, PREPROCESS_CASES):
        what = f"{name} ({mode or 'RGB'}, size={size})"
        out = torch.from_numpy(np.asarray(out, dtype=np.float32))
        assert tuple(out.shape) == (3, size, size), f"{what}: shape {tuple(out.shape)}, expected (3, {size}, {size})"
        assert torch.isfinite(out).all(), f"{what}: NaN/inf values"
        image = photos[name].convert(mode) if mode else photos[name]
        ref = make_preprocess(size)(image)
        mad = _shifted_mad(out, ref)
        assert mad <= MAX_MEAN_ABS_DIFF, (
            f"{what}: mean |difference| {mad:.3f} from the correct transform (tolerance {MAX_MEAN_ABS_DIFF}); "
            f"your range [{out.min():.2f}, {out.max():.2f}], expected [{ref.min():.2f}, {ref.max():.2f}]")
        worst = max(worst, (mad, what))
    return True, f"all {len(outs)} outputs match the reference (largest mean |difference| {worst[0]:.3f})"


def check_q2_classify(answers):
    from course_utils.datafiles import PHOTOS
    got = answers["classified"]
    names, predicted = list(got["names"]), list(got["predicted"])
    assert len(predicted) == len(names), f"classify returned {len(predicted)} names for {len(names)} images"
    scored = [(n, p) for n, p in zip(names, predicted) if PHOTOS[n][1]]
    wrong = [f"{n} -> {p!r}" for n, p in scored if p not in PHOTOS[n][1]]
    if wrong:
        return False, f"{len(wrong)} of {len(scored)} photos misclassified (e.g. {wrong[0]}): check preprocess"
    return True, f"all {len(scored)} photos with a known class (and their mirror images) classified correctly"


def check_q3_diagnose(answers):
    verdicts = answers["verdicts"]
    expected = [kind for _ in DIAGNOSE_SOURCES for kind in DIAGNOSE_KINDS]
    assert isinstance(verdicts, list) and len(verdicts) == len(expected), \
        f"expected {len(expected)} verdicts, got {len(verdicts) if isinstance(verdicts, list) else verdicts!r}"
    wrong = [f"{src} batch with problem {want!r} diagnosed as {got!r}"
             for (src, want), got in zip([(s, k) for s in DIAGNOSE_SOURCES for k in DIAGNOSE_KINDS], verdicts)
             if got != want]
    if wrong:
        return False, f"{len(wrong)} of {len(expected)} verdicts wrong, e.g. {wrong[0]}"
    return True, f"all {len(expected)} verdicts right"
