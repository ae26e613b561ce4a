"""Hidden tests for ex06_lora_by_hand (see docs/GRADING.md).

Nothing the notebook reports is trusted. Q1-Q3 run the student's `LoRALinear` and `merge` on layers,
factors and inputs the grader makes (collect), and the check process rebuilds the same layers in the
`peft` library and compares outputs, gradients and merged weights. Q4 recomputes the accuracy of the
submitted `lora_model`'s weights on held-out renders of the test objects (never visible to the
kernel), embedded by the check process itself, and checks that the pretrained ImageNet layer did
not move.
"""

QUESTIONS = {"q1_lora_layer": 2, "q2_same_as_peft": 2, "q3_merge": 2, "q4_adapt_imagenet_head": 3}

# The grader's layers for Q1-Q3; collect() holds a literal copy (only its source reaches the kernel) and
# hands it back, so check_q1 notices if the two ever drift apart. Two shapes, a scale alpha / r that is
# neither 1 nor alpha, and a layer without bias.
CASES = [{"d_in": 12, "d_out": 7, "r": 3, "alpha": 5.0, "bias": True, "seed": 1},
         {"d_in": 20, "d_out": 4, "r": 1, "alpha": 16.0, "bias": False, "seed": 2}]
ATOL, RTOL = 1e-5, 1e-4  # float32 rounding; a wrong scale, transpose or missing bias is off by far more

IMAGE_SIZE = 64
NUM_CLASSES = 9
RANK, ALPHA = 4, 8.0     # the notebook's given constants
IN_DIM, MID_DIM = 1280, 1000  # Lite0's ImageNet classifier: Linear(1280, 1000)
ACCURACY_BAR = 0.40      # reference solution: 0.54-0.65 over seeds 0-4, FAST and full mode (chance 0.11)
# Q4's renders: 10 per group of the test objects, which the instructor kit's secret picks
# (toolkit.heldout_objects: the same for every submission of a term, unknown to students)
BASE_TOL = 1e-6          # the frozen ImageNet layer must come back unchanged


def collect(ns):
    # Runs in the student's kernel; only this function's source is shipped there.
    import torch
    from torch import nn

    cases = [{"d_in": 12, "d_out": 7, "r": 3, "alpha": 5.0, "bias": True, "seed": 1},
             {"d_in": 20, "d_out": 4, "r": 1, "alpha": 16.0, "bias": False, "seed": 2}]

    def make(case):
        """The grader's base layer wrapped by the student's LoRALinear, and the grader's tensors."""
        g = torch.Generator().manual_seed(case["seed"])
        d_in, d_out, r = case["d_in"], case["d_out"], case["r"]
        t = {"W": torch.randn(d_out, d_in, generator=g) / d_in ** 0.5, "b": torch.randn(d_out, generator=g),
             "A": torch.randn(r, d_in, generator=g) * 0.5, "B": torch.randn(d_out, r, generator=g) * 0.5,
             "x": torch.randn(2, 3, d_in, generator=g),    # leading dims (2, 3): any batch shape
             "w": torch.randn(2, 3, d_out, generator=g)}   # weights of the loss whose gradients we compare
        base = nn.Linear(d_in, d_out, bias=case["bias"])
        with torch.no_grad():
            base.weight.copy_(t["W"])
            if case["bias"]:
                base.bias.copy_(t["b"])
        torch.manual_seed(0)
        return ns["LoRALinear"](base, case["r"], case["alpha"]), t

    def factors(layer, case):
        out = []
        for name, shape in (("lora_A", (case["r"], case["d_in"])), ("lora_B", (case["d_out"], case["r"]))):
            p = getattr(layer, name, None)
            if not isinstance(p, nn.Parameter):
                raise TypeError(f"LoRALinear.{name} must be an nn.Parameter, got {type(p).__name__}")
            if tuple(p.shape) != shape:
                raise ValueError(f"LoRALinear.{name} has shape {tuple(p.shape)} for r={case['r']}, "
                                 f"in_features={case['d_in']}, out_features={case['d_out']}: expected {shape}")
            out.append(p)
        return out

    def with_grader_factors(case):
        layer, t = make(case)
        A, B = factors(layer, case)
        with torch.no_grad():
            A.copy_(t["A"])
            B.copy_(t["B"])
        return layer, t, A, B

    def at_init():
        out = []
        for case in cases:
            layer, t = make(case)
            A, B = factors(layer, case)
            with torch.no_grad():
                y = layer(t["x"].clone())
            out.append({"trainable": [[n, int(p.numel())] for n, p in layer.named_parameters() if p.requires_grad],
                        "n_params": int(sum(p.numel() for p in layer.parameters())),
                        "A": A.detach().float().clone(), "B": B.detach().float().clone(), "y": y.float()})
        return out

    def forward_backward():
        out = []
        for case in cases:
            layer, t, A, B = with_grader_factors(case)
            y = layer(t["x"].clone())
            (y * t["w"]).sum().backward()
            out.append({"y": y.detach().float(),
                        "grad_A": None if A.grad is None else A.grad.float(),
                        "grad_B": None if B.grad is None else B.grad.float()})
        return out

    def merged():
        out = []
        for case in cases:
            layer, t, _, _ = with_grader_factors(case)
            with torch.no_grad():
                y_before = layer(t["x"].clone())
            m = ns["merge"](layer)
            weight, bias = getattr(m, "weight", None), getattr(m, "bias", None)
            with torch.no_grad():
                y = m(t["x"].clone())
                y_after = layer(t["x"].clone())
            out.append({"type": type(m).__name__, "is_linear": isinstance(m, nn.Linear),
                        "n_params": int(sum(p.numel() for p in m.parameters())) if isinstance(m, nn.Module) else -1,
                        "weight": weight.detach().float() if isinstance(weight, torch.Tensor) else None,
                        "bias": bias.detach().float() if isinstance(bias, torch.Tensor) else None,
                        "y": y.float(), "layer_changed": float((y_after - y_before).abs().max())})
        return out

    return {
        "cases": cases,
        "init": at_init,
        "forward": forward_backward,
        "merge": merged,
        "children": lambda: [[n, type(m).__name__] for n, m in ns["lora_model"].named_children()],
        "trainable": lambda: [[n, int(p.numel())] for n, p in ns["lora_model"].named_parameters() if p.requires_grad],
        "state": lambda: {k: v.detach().float().cpu() for k, v in ns["lora_model"].state_dict().items()},
    }


# ---- shared, computed once per check process -------------------------------------------------

_CACHE = {}


def _np(value, label):
    import numpy as np
    assert value is not None, f"{label} is missing"
    a = np.asarray(value, dtype=np.float64)
    assert np.isfinite(a).all(), f"{label} contains NaN/inf"
    return a


def _tensors(case):
    """The grader's tensors for one case, exactly as collect() made them in the kernel."""
    import torch
    g = torch.Generator().manual_seed(case["seed"])
    d_in, d_out, r = case["d_in"], case["d_out"], case["r"]
    return {"W": torch.randn(d_out, d_in, generator=g) / d_in ** 0.5, "b": torch.randn(d_out, generator=g),
            "A": torch.randn(r, d_in, generator=g) * 0.5, "B": torch.randn(d_out, r, generator=g) * 0.5,
            "x": torch.randn(2, 3, d_in, generator=g), "w": torch.randn(2, 3, d_out, generator=g)}


def _peft_reference(case):
    """peft's LoRA on the same base layer with the grader's factors: output, gradients of A and B, and the
    merged weight and bias (peft's own merge_and_unload)."""
    key = ("peft", case["seed"])
    if key in _CACHE:
        return _CACHE[key]
    import peft
    import torch
    from torch import nn

    class OneLayer(nn.Module):
        def __init__(self, linear):
            super().__init__()
            self.fc = linear

        def forward(self, x):
            return self.fc(x)

    t = _tensors(case)
    base = nn.Linear(case["d_in"], case["d_out"], bias=case["bias"])
    with torch.no_grad():
        base.weight.copy_(t["W"])
        if case["bias"]:
            base.bias.copy_(t["b"])
    config = peft.LoraConfig(r=case["r"], lora_alpha=case["alpha"], target_modules=["fc"], lora_dropout=0.0)
    model = peft.get_peft_model(OneLayer(base), config)
    fc = model.base_model.model.fc
    A, B = fc.lora_A["default"].weight, fc.lora_B["default"].weight
    with torch.no_grad():
        A.copy_(t["A"])
        B.copy_(t["B"])
    y = model(t["x"])
    (y * t["w"]).sum().backward()
    ref = {"y": y.detach().double().numpy(), "grad_A": A.grad.double().numpy(), "grad_B": B.grad.double().numpy(),
           "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    plain = model.merge_and_unload().fc
    ref["merged_weight"] = plain.weight.detach().double().numpy()
    ref["merged_bias"] = None if plain.bias is None else plain.bias.detach().double().numpy()
    ref["base_y"] = (t["x"] @ t["W"].T + (t["b"] if case["bias"] else 0)).double().numpy()
    _CACHE[key] = ref
    return ref


def _per_case(answers, key):
    items = answers[key]
    assert isinstance(items, list) and len(items) == len(CASES), f"`{key}` arrived malformed"
    return zip(CASES, items)


def _where(case):
    # Which grader layer, without its sizes, r or alpha: those are the hidden inputs.
    return (f"grader layer {CASES.index(case) + 1} of {len(CASES)} "
            f"({'with' if case['bias'] else 'without'} bias, alpha / r != 1)")


def _max_diff(a, b):
    import numpy as np
    return float(np.abs(np.asarray(a, dtype=np.float64) - b).max())


def _close(a, b):
    import numpy as np
    a = np.asarray(a, dtype=np.float64)
    return a.shape == b.shape and np.allclose(a, b, atol=ATOL, rtol=RTOL)


def _heldout():
    if "heldout" not in _CACHE:
        from course_utils.features import embed
        from course_utils.grading.toolkit import check_backbone, heldout_objects
        bb = check_backbone(IMAGE_SIZE)
        data = heldout_objects(IMAGE_SIZE)  # test renders the instructor kit's secret picks
        feats = embed(bb.features, data.x, device="cpu", transform=bb.normalize)
        _CACHE["heldout"] = (feats.double().numpy(), data.y.numpy())
    return _CACHE["heldout"]


# ---- checks -----------------------------------------------------------------------------------

def check_q1_lora_layer(answers):
    import numpy as np
    assert answers["cases"] == CASES, "grader error: collect() and CASES disagree"
    for case, got in _per_case(answers, "init"):
        where = _where(case)
        trainable = {name: n for name, n in got["trainable"]}
        assert set(trainable) == {"lora_A", "lora_B"}, \
            (f"{where}: the trainable tensors are {sorted(trainable)}; expected only lora_A and lora_B "
             "(freeze the base layer's weight and bias)")
        d_in, d_out, r = case["d_in"], case["d_out"], case["r"]
        want = d_in * d_out + (d_out if case["bias"] else 0) + r * (d_in + d_out)
        assert got["n_params"] == want, \
            f"{where}: the layer has {got['n_params']} parameters, expected {want} (base + r * (in + out), nothing else)"
        B, A = _np(got["B"], "lora_B"), _np(got["A"], "lora_A")
        assert not np.any(B), f"{where}: lora_B is not zero at initialisation (max |B| = {np.abs(B).max():.3g})"
        rank = int(np.linalg.matrix_rank(A)) if np.any(A) else 0
        assert rank == r, (f"{where}: lora_A at initialisation has rank {rank}, expected {r}: zero or identical "
                           "rows stay that way in training (initialise A with small random values)")
        diff = _max_diff(got["y"], _peft_reference(case)["base_y"])
        assert diff <= ATOL, f"{where}: at initialisation the output differs from the base layer's by {diff:.2g}"
    return True, (f"on {len(CASES)} grader layers: only lora_A and lora_B train (r * (in + out) parameters), "
                  "B = 0 and A random at initialisation, output = base layer's (tolerance 1e-5)")


def check_q2_same_as_peft(answers):
    for case, got in _per_case(answers, "forward"):
        where, ref = _where(case), _peft_reference(case)
        y = _np(got["y"], "the output")
        assert y.shape == ref["y"].shape, f"{where}: output shape {y.shape} for input (2, 3, {case['d_in']}), " \
                                          f"expected {ref['y'].shape}"
        assert _close(y, ref["y"]), (f"{where}: output differs from peft's LoRA by up to {_max_diff(y, ref['y']):.3g} "
                                     f"with the grader's A and B (scale alpha / r = {case['alpha'] / case['r']:.4g})")
        for name in ("grad_A", "grad_B"):
            assert got[name] is not None, f"{where}: lora_{name[-1]} got no gradient: is it in the forward pass?"
            g = _np(got[name], name)
            assert _close(g, ref[name]), \
                f"{where}: the gradient of lora_{name[-1]} differs from peft's by up to {_max_diff(g, ref[name]):.3g}"
    return True, (f"outputs and gradients of A and B equal peft's LoRA (LoraConfig + get_peft_model) on "
                  f"{len(CASES)} grader layers with the grader's factors (atol {ATOL:g}, rtol {RTOL:g})")


def check_q3_merge(answers):
    for case, got in _per_case(answers, "merge"):
        where, ref = _where(case), _peft_reference(case)
        assert got["is_linear"], f"{where}: merge returned a {got['type']}, expected an nn.Linear"
        d_in, d_out = case["d_in"], case["d_out"]
        want = d_in * d_out + (d_out if case["bias"] else 0)
        assert got["n_params"] == want, f"{where}: the merged layer has {got['n_params']} parameters, expected {want}"
        w = _np(got["weight"], "the merged weight")
        assert w.shape == (d_out, d_in), f"{where}: the merged weight has shape {w.shape}, expected {(d_out, d_in)}"
        assert _close(w, ref["merged_weight"]), \
            (f"{where}: merged weight differs from W + (alpha / r) B A (peft's merge_and_unload) by up to "
             f"{_max_diff(w, ref['merged_weight']):.3g}")
        if case["bias"]:
            b = _np(got["bias"], "the merged bias")
            assert _close(b, ref["merged_bias"]), f"{where}: merged bias differs from the base layer's"
        y = _np(got["y"], "the merged layer's output")
        assert _close(y, ref["y"]), f"{where}: the merged layer's output differs from the LoRA output by up to " \
                                    f"{_max_diff(y, ref['y']):.3g}"
        assert got["layer_changed"] <= ATOL, \
            (f"{where}: after merge(layer), layer's own output changed by {got['layer_changed']:.3g}: "
             "merge must return a new layer and leave the LoRA layer as it was")
    return True, (f"merge returns an nn.Linear with W + (alpha / r) B A (= peft's merge_and_unload), the base's "
                  f"bias and parameter count, same outputs as the LoRA layer, which stays unchanged ({len(CASES)} layers)")


def check_q4_adapt_imagenet_head(answers):
    import numpy as np
    import torch

    from course_utils.grading.toolkit import check_backbone
    children = [tuple(c) for c in answers["children"]]
    want_children = [("imagenet", "LoRALinear"), ("relu", "ReLU"), ("head", "Linear")]
    assert children == want_children, f"lora_model's children are {children}, expected {want_children}"
    state = answers["state"]
    shapes = {"imagenet.base.weight": (MID_DIM, IN_DIM), "imagenet.base.bias": (MID_DIM,),
              "imagenet.lora_A": (RANK, IN_DIM), "imagenet.lora_B": (MID_DIM, RANK),
              "head.weight": (NUM_CLASSES, MID_DIM), "head.bias": (NUM_CLASSES,)}
    p = {}
    for key, shape in shapes.items():
        assert key in state, f"lora_model.state_dict() has no `{key}` (keys: {sorted(state)[:8]})"
        p[key] = _np(state[key], key)
        assert p[key].shape == shape, f"{key} has shape {p[key].shape}, expected {shape} (RANK = {RANK})"
    bb = check_backbone(IMAGE_SIZE)
    for key, ref in (("imagenet.base.weight", bb.head.weight), ("imagenet.base.bias", bb.head.bias)):
        moved = _max_diff(p[key], ref.detach().double().numpy())
        assert moved <= BASE_TOL, f"{key} differs from the pretrained ImageNet layer by up to {moved:.3g}: it must stay frozen"
    trainable = {name: n for name, n in answers["trainable"]}
    want_trainable = {"imagenet.lora_A", "imagenet.lora_B", "head.weight", "head.bias"}
    assert set(trainable) == want_trainable, \
        f"the trainable tensors are {sorted(trainable)}, expected {sorted(want_trainable)}"
    n_lora, n_head = RANK * (IN_DIM + MID_DIM), MID_DIM * NUM_CLASSES + NUM_CLASSES
    count = sum(trainable.values())
    assert count == n_lora + n_head, f"{count:,} trainable parameters, expected {n_lora + n_head:,}"
    assert np.abs(p["imagenet.lora_B"]).max() > 1e-6, "imagenet.lora_B is still zero: the adapter never trained"
    feats, y = _heldout()
    weight = p["imagenet.base.weight"] + (ALPHA / RANK) * p["imagenet.lora_B"] @ p["imagenet.lora_A"]
    hidden = np.maximum(feats @ weight.T + p["imagenet.base.bias"], 0.0)
    pred = (hidden @ p["head.weight"].T + p["head.bias"]).argmax(1)
    acc = float((torch.from_numpy(pred) == torch.from_numpy(y)).double().mean())
    return acc >= ACCURACY_BAR, (f"held-out accuracy {acc:.3f} on {len(y)} renders of the test objects (needs >= "
                                 f"{ACCURACY_BAR}); pretrained layer unchanged; {count:,} trainable parameters = "
                                 f"r(in + out) {n_lora:,} + head {n_head:,}")
