"""Code the grader runs INSIDE the student's kernel, as the last cell of the notebook.

This file is not imported by the grader: its text is pasted into the injected cell (see
answers.build_collect_cell), so it must stay self-contained. Everything lives in one class
so the cell adds a single global name, which it deletes again.

Answers leave the kernel as plain data only: a JSON file for the structure and, if there are
arrays, an ``.npz`` of them. The grader reads both without executing anything (no pickle),
so objects with a rigged ``__eq__`` or patched modules in the kernel reach the checks only as
the numbers they really hold.
"""


class _CourseGradeCollector:
    class MissingName(KeyError):
        def __str__(self):
            return self.args[0]

    class Namespace(dict):
        # ns["add"] for a name the notebook never defined: say so instead of a bare KeyError
        def __missing__(self, key):
            raise _CourseGradeCollector.MissingName(f"your notebook does not define `{key}`")

    def __init__(self, path):
        self.path = path
        self.arrays = {}

    def run(self, collect_source, user_ns):
        import types

        scope = {"__name__": "course_grade_collect"}
        exec(compile(collect_source, "<hidden tests: collect>", "exec"), scope)
        entries = scope["collect"](self.Namespace(user_ns))
        if not isinstance(entries, dict):
            raise TypeError("collect(ns) must return a dict")
        answers = {}
        for key, entry in entries.items():
            try:  # each lambda runs on its own, so one broken answer does not lose the others
                value = entry() if isinstance(entry, types.FunctionType) else entry
                answers[str(key)] = self.encode(value)
            except BaseException as exc:  # noqa: BLE001 - a student's SystemExit is a wrong answer
                answers[str(key)] = {"__err": self.describe(exc)}
        self.write(answers)

    def encode(self, value, depth=0):
        import sys

        if depth > 64:
            raise ValueError("answer is nested too deeply")
        value = self.to_numpy(value)
        if value is None or value is True or value is False:
            return value
        # The base types' own methods: a subclass cannot rig its value on the way out
        # (json itself would call a rigged __eq__ while looking for NaN/inf).
        for base, convert in ((int, int.__int__), (float, float.__float__), (str, str.__str__)):
            if isinstance(value, base):
                return convert(value)
        if isinstance(value, (list, tuple)):
            return [self.encode(v, depth + 1) for v in value]
        if isinstance(value, dict):  # dicts (state_dicts too) keep order and non-str keys
            return {"__d": [[self.encode(k, depth + 1), self.encode(v, depth + 1)]
                            for k, v in value.items()]}
        np = sys.modules.get("numpy")
        if np is not None and isinstance(value, np.generic):
            return self.encode(value.item(), depth + 1)
        if np is not None and isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise TypeError("arrays of Python objects cannot be sent to the grader")
            name = f"a{len(self.arrays)}"
            self.arrays[name] = np.array(value)  # a plain ndarray copy, whatever came in
            return {"__a": name}
        raise TypeError(
            f"cannot send a {type(value).__name__} to the grader "
            "(use numbers, strings, lists, dicts, numpy arrays or torch tensors)"
        )

    @staticmethod
    def to_numpy(value):
        import sys

        torch = sys.modules.get("torch")  # never import torch here: it costs seconds
        if torch is not None and isinstance(value, torch.Tensor):
            value = value.detach().cpu()
            if value.dtype == torch.bfloat16:  # numpy has no bfloat16
                value = value.float()
            return value.numpy()
        return value

    @classmethod
    def describe(cls, exc):
        if isinstance(exc, cls.MissingName):
            return str(exc)
        text = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        return text.splitlines()[0][:500] if text else type(exc).__name__

    def write(self, answers):
        import json
        import os
        import sys

        if self.arrays:
            sys.modules["numpy"].savez(self.path + ".npz", **self.arrays)
        with open(self.path + ".tmp", "w", encoding="utf-8") as fh:
            json.dump({"format": 1, "answers": answers, "arrays": sorted(self.arrays)}, fh)
        os.replace(self.path + ".tmp", self.path + ".json")  # .json last: it marks "complete"
