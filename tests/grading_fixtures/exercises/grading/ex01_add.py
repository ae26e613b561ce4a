"""Hidden tests for the grader's test exercise ex01_add (see docs/GRADING.md)."""

QUESTIONS = {"q1_add": 2, "q2_weights": 3}


def collect(ns):
    # Runs in the student's kernel. Each value is a lambda so one failing answer keeps the rest.
    import numpy as np

    pairs = [(1, 2), (-5, 5), (2.5, 0.25), (10**6, 1)]
    return {
        "add_pairs": lambda: [ns["add"](a, b) for a, b in pairs],
        "add_arrays": lambda: ns["add"](np.arange(4.0), np.full(4, 0.5)),
        "weights": lambda: np.asarray(ns["weights"], dtype=float),
    }


def check_q1_add(answers):
    import numpy as np

    got = answers["add_pairs"]
    expected = [3, 0, 2.75, 1000001]
    assert len(got) == len(expected), f"add: expected {len(expected)} results, got {len(got)}"
    for value in got:
        assert isinstance(value, (int, float)), f"add returned a {type(value).__name__}, not a number"
    # Say what was measured, not the grader's inputs or expected values.
    errors = [abs(value - want) for value, want in zip(got, expected)]
    wrong = sum(e >= 1e-9 for e in errors)
    assert not wrong, f"add is wrong on {wrong} of {len(expected)} grader pairs of numbers"
    arrays = np.asarray(answers["add_arrays"], dtype=float)
    if not np.allclose(arrays, np.arange(4.0) + 0.5):
        return False, "add does not work element-wise on arrays"
    return True, "add is correct"


def check_q2_weights(answers):
    import numpy as np

    w = np.asarray(answers["weights"], dtype=float)
    if w.shape != (3,):
        return False, f"weights has shape {w.shape}, expected (3,)"
    # Recompute the quality on held-out data instead of trusting anything the notebook printed.
    rng = np.random.default_rng(12345)
    X = rng.normal(size=(200, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    mse = float(np.mean((X @ w - y) ** 2))
    return mse < 1e-6, f"held-out MSE {mse:.3g} (needs < 1e-6)"
