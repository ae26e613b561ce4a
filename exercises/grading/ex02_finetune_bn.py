"""Hidden tests for ex02_finetune_bn (see docs/GRADING.md).

The check process loads a fresh backbone, compares the submitted BatchNorm statistics with the
pretrained ones and measures the submitted weights' accuracy on held-out renders itself. Q2 also
grades behaviour: collect() runs the student's train_epoch once on a copy of the model and a
grader-made batch, so copying the statistics back after a train-mode run does not pass.
"""

QUESTIONS = {"q1_param_groups": 2, "q2_bn_frozen": 2, "q3_accuracy": 3}

IMAGE_SIZE = 64
NUM_CLASSES = 9
ACCURACY_BAR = 0.45   # reference solution: ~0.6 in FAST mode, ~0.7 in full mode (chance 0.11)
MIN_FEATURE_CHANGE = 1e-5  # max |w - w_pretrained| over the features: below this, nothing was fine-tuned


def collect(ns):
    # Runs in the student's kernel; only this function's source is shipped there.
    def groups():
        model, opt = ns["model"], ns["optimizer"]
        names = {id(p): name for name, p in model.named_parameters()}
        out = []
        for group in opt.param_groups:
            params = list(group["params"])
            out.append({"lr": float(group["lr"]),
                        "names": [names.get(id(p), "<not in model>") for p in params],
                        "numel": int(sum(p.numel() for p in params))})
        return out

    def bn_after_one_epoch():
        # Behaviour, not the final buffers: call the student's train_epoch on a copy of the model and
        # a grader-made batch, and report how far the BN running statistics and the weights moved.
        import copy

        import torch
        model = copy.deepcopy(ns["model"])
        stats = lambda m: {k: v.detach().float().cpu().clone() for k, v in m.state_dict().items()
                           if k.endswith(("running_mean", "running_var"))}
        weights = lambda m: torch.cat([p.detach().float().cpu().flatten() for p in m.features.parameters()])
        before, w0 = stats(model), weights(model)
        gen = torch.Generator().manual_seed(1234)
        x, y = torch.rand(16, 3, 64, 64, generator=gen), torch.randint(0, 9, (16,), generator=gen)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
        ns["train_epoch"](model, optimizer, x, y)
        after = stats(model)
        return {"bn_moved": max(float((after[k] - v).abs().max()) for k, v in before.items()),
                "n_bn": len(before), "weights_moved": float((weights(model) - w0).abs().max())}

    return {
        "groups": groups,
        "trainable": lambda: [name for name, p in ns["model"].named_parameters() if p.requires_grad],
        "state": lambda: {k: v.detach().cpu() for k, v in ns["model"].state_dict().items()},
        "bn_step": bn_after_one_epoch,
    }


# ---- shared, computed once per check process -------------------------------------------------

_CACHE = {}


def _backbone():
    from course_utils.grading.toolkit import check_backbone
    return check_backbone(IMAGE_SIZE)


def _state(answers):
    """The submitted state_dict as tensors, checked against the model the exercise asks for."""
    from course_utils.grading.toolkit import submitted_state
    return submitted_state(answers["state"], NUM_CLASSES, IMAGE_SIZE)


def _feature_change(state) -> float:
    pretrained = dict(_backbone().features.named_parameters())
    return max(float((state[f"features.{k}"] - p.detach()).abs().max()) for k, p in pretrained.items())


def _assert_fine_tuned(state):
    change = _feature_change(state)
    assert change > MIN_FEATURE_CHANGE, \
        f"the features are the pretrained ones (max change {change:.1e}): fine-tune the whole model"


# ---- checks -----------------------------------------------------------------------------------

def check_q1_param_groups(answers):
    groups, trainable = answers["groups"], answers["trainable"]
    assert isinstance(groups, list) and len(groups) == 2, \
        f"optimizer has {len(groups) if isinstance(groups, list) else '?'} parameter groups, expected 2"
    names = [list(g["names"]) for g in groups]
    assert all(names), "a parameter group is empty"
    assert "<not in model>" not in sum(names, []), "the optimizer holds parameters that are not in model"
    kinds = []
    for group_names in names:
        prefixes = {n.split(".", 1)[0] for n in group_names}
        assert len(prefixes) == 1 and prefixes <= {"features", "head"}, \
            f"a group mixes parts of the model ({sorted(prefixes)}): one group for features, one for the head"
        kinds.append(prefixes.pop())
    assert sorted(kinds) == ["features", "head"], f"the groups hold {kinds}: expected one features, one head group"
    every = sum(names, [])
    assert len(every) == len(set(every)), "a parameter appears twice in the optimizer"
    assert set(every) == set(trainable), \
        f"the groups do not cover exactly the trainable parameters ({len(set(trainable) - set(every))} trainable " \
        f"left out, {len(set(every) - set(trainable))} frozen included)"
    from course_utils.layers import replace_head
    all_names = [n for n, _ in replace_head(_backbone(), NUM_CLASSES).named_parameters()]
    assert set(trainable) == set(all_names), \
        f"{len(set(all_names) - set(trainable))} parameter tensors are frozen: the whole model should train"
    lr = {kind: float(g["lr"]) for kind, g in zip(kinds, groups)}
    assert lr["features"] > 0, "the features' learning rate is 0: they would not train"
    return lr["features"] < lr["head"], f"features LR {lr['features']:g}, head LR {lr['head']:g} " \
                                        "(features must be smaller)"


def check_q2_bn_frozen(answers):
    step = answers["bn_step"]
    assert isinstance(step, dict) and step.get("n_bn"), "train_epoch could not be called on a model copy"
    assert step["weights_moved"] > 0, "one epoch of train_epoch left the features' weights unchanged: do they train?"
    if step["bn_moved"] > 1e-6:
        return False, (f"one epoch of your train_epoch on a grader batch moved BN running statistics by up to "
                       f"{step['bn_moved']:.2g}: BN must stay in eval mode inside train_epoch")
    state = _state(answers)
    _assert_fine_tuned(state)
    pretrained = _backbone().features.state_dict()
    keys = [k for k in pretrained if k.endswith(("running_mean", "running_var"))]
    assert keys, "no BatchNorm statistics found in the pretrained backbone"
    moved = []
    for key in keys:
        diff = float((state[f"features.{key}"].float() - pretrained[key].float()).abs().max())
        scale = float(pretrained[key].float().abs().max()) + 1e-6
        if diff > 1e-5 * scale + 1e-7:
            moved.append((key, diff))
    if moved:
        return False, (f"{len(moved)} of {len(keys)} BN running statistics changed (e.g. {moved[0][0]}, by "
                       f"{moved[0][1]:.2g}): keep BN in eval mode while training")
    return True, f"all {len(keys)} BN running statistics equal the pretrained ones; features were fine-tuned"


def check_q3_accuracy(answers):
    import torch

    from course_utils.grading.toolkit import heldout_objects
    from course_utils.layers import replace_head
    from course_utils.train import evaluate
    state = _state(answers)
    _assert_fine_tuned(state)
    bb = _backbone()
    model = replace_head(bb, NUM_CLASSES)
    model.load_state_dict(state, strict=True)
    data = heldout_objects(IMAGE_SIZE)  # test renders the instructor kit's secret picks
    acc = evaluate(model.eval(), data, device=torch.device("cpu"), transform=bb.normalize)
    return acc >= ACCURACY_BAR, f"held-out accuracy {acc:.3f} on {len(data)} renders (needs >= {ACCURACY_BAR})"
