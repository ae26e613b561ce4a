"""Submissions of the real ex01_freeze_and_probe for the grader's tests: the source notebook with
its answer cells (7: Q1, 11: Q2, 14 and 15: Q3) replaced.

- ``copied``: the reference solution with its variables renamed, its comments rewritten and a
  number changed: what a student who copied it would hand in;
- ``independent``: another correct solution, written without looking at the reference one
  (nn.Sequential by hand, minibatch SGD with momentum, parameters copied one by one, softmax);
- ``wrong_head``: the reference solution but a head trained for 1 step, the self-check that
  would have caught it deleted: it runs to the end and fails Q2.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

SOURCE = Path(__file__).resolve().parents[2] / "exercises" / "source" / "ex01_freeze_and_probe.ipynb"

COPIED = {
    7: "# features of the pretrained net plus a fresh linear layer on top\n"
       "model = replace_head(bb, NUM_CLASSES)\n"
       "freeze(model.features)  # the backbone must not learn",
    11: "torch.manual_seed(SEED)\n"
        "# my probe\n"
        "head = nn.Linear(bb.feature_dim, NUM_CLASSES)\n"
        "opt = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-4)\n"
        "for it in range(250):\n"
        "    opt.zero_grad()\n"
        "    l = nn.functional.cross_entropy(head(train_feats), train.y)  # full batch\n"
        "    l.backward()\n"
        "    opt.step()",
    14: "model.head.load_state_dict(head.state_dict())  # same shapes",
    15: "@torch.no_grad()\n"
        "def predict_groups(x):\n"
        "    \"\"\"Map a batch of images to group names.\"\"\"\n"
        "    model.eval().to(device)\n"
        "    scores = model(bb.normalize(x.to(device)))\n"
        "    return [train.classes[k] for k in scores.argmax(1).tolist()]",
}

INDEPENDENT = {
    7: "import copy\n"
       "model = nn.Sequential()\n"
       "model.add_module(\"features\", copy.deepcopy(bb.features))\n"
       "model.add_module(\"head\", nn.Linear(bb.feature_dim, NUM_CLASSES))\n"
       "for p in model.features.parameters():\n"
       "    p.requires_grad_(False)",
    11: "torch.manual_seed(SEED)\n"
        "head = nn.Linear(bb.feature_dim, NUM_CLASSES)\n"
        "sgd = torch.optim.SGD(head.parameters(), lr=0.05, momentum=0.9)\n"
        "criterion = nn.CrossEntropyLoss()\n"
        "n = len(train_feats)\n"
        "for epoch in range(40):\n"
        "    order = torch.randperm(n)\n"
        "    for start in range(0, n, 32):\n"
        "        batch = order[start:start + 32]\n"
        "        sgd.zero_grad()\n"
        "        criterion(head(train_feats[batch]), train.y[batch]).backward()\n"
        "        sgd.step()",
    14: "with torch.no_grad():\n"
        "    model.head.weight.copy_(head.weight)\n"
        "    model.head.bias.copy_(head.bias)",
    15: "@torch.no_grad()\n"
        "def predict_groups(x):\n"
        "    model.eval()\n"
        "    model.to(device)\n"
        "    probabilities = torch.softmax(model(bb.normalize(x.to(device))), dim=1)\n"
        "    winners = probabilities.argmax(dim=1).cpu()\n"
        "    return [train.classes[int(w)] for w in winners]",
}

WRONG_HEAD = {11: "torch.manual_seed(SEED)\n"
                  "head = nn.Linear(bb.feature_dim, NUM_CLASSES)\n"
                  "optimizer = torch.optim.Adam(head.parameters(), lr=1e-4)\n"
                  "optimizer.zero_grad()\n"
                  "nn.functional.cross_entropy(head(train_feats), train.y).backward()\n"
                  "optimizer.step()",
              # the self-check that would stop this notebook deleted; the rest of the cell kept
              12: lambda code: "\n".join(ln for ln in code.splitlines()
                                         if not ln.startswith("assert train_acc"))}

VARIANTS = {"copied": COPIED, "independent": INDEPENDENT, "wrong_head": WRONG_HEAD}


def variant(name: str):
    """The ex01 source notebook with the answer cells of variant ``name``."""
    nb = nbformat.read(str(SOURCE), as_version=4)
    for index, code in VARIANTS[name].items():
        assert nb.cells[index].cell_type == "code", (name, index)
        nb.cells[index].source = code(nb.cells[index].source) if callable(code) else code
    return nb
