import math
import time
from dataclasses import dataclass

import pytest

from course_utils.sweep import mean_std, run_seeds, summarize, winners


@dataclass
class _Res:
    accuracy: float
    trainable: int = 10


def _runs():
    return {"a": lambda s: _Res(0.5 + 0.1 * s), "b": lambda s: {"accuracy": 0.9, "trainable": 3}}


def test_run_seeds_rows_and_labels():
    seen = []
    df = run_seeds(_runs(), [0, 1, 2], on_result=seen.append, domain="far")
    assert len(df) == 6 == len(seen)
    assert set(df.columns) >= {"domain", "method", "seed", "accuracy", "trainable", "wall_s"}
    assert (df["domain"] == "far").all()


def test_wall_time_is_each_runs_own():
    """wall_s measures the call: a run that sleeps 50 ms reports at least that, an instant one less."""
    df = run_seeds({"sleeps": lambda s: (time.sleep(0.05), _Res(0.5))[1], "instant": lambda s: _Res(0.5)}, [0])
    wall = df.set_index("method")["wall_s"]
    assert wall["sleeps"] >= 0.05 and wall["instant"] < 0.05


def test_summarize_mean_std_and_single_seed():
    table = summarize(run_seeds(_runs(), [0, 1, 2]))
    a = table.set_index("method").loc["a"]
    assert math.isclose(a["accuracy_mean"], 0.6) and math.isclose(a["accuracy_std"], 0.1)
    assert a["seeds"] == 3 and a["trainable"] == 10 and a["accuracy"] == "0.600 ± 0.100"
    one = summarize(run_seeds(_runs(), [0])).set_index("method")
    assert one.loc["a", "accuracy_std"] == 0.0 and one.loc["a", "accuracy"] == "0.500"


def test_winners_per_group():
    df = run_seeds(_runs(), [0, 1], q="x")
    best = winners(summarize(df, by=["q", "method"]), by=["q"])
    row = best.iloc[0]
    assert row["q"] == "x" and row["winner"] == "b" and row["runner_up"] == "a"
    assert math.isclose(row["margin"], 0.9 - 0.55) and bool(row["clear"])
    single = winners(summarize(run_seeds(_runs(), [0]), by=["method"]))
    assert single.iloc[0]["clear"] is None


def test_errors_are_clear():
    with pytest.raises(ValueError, match="at least one run"):
        run_seeds({}, [0])
    with pytest.raises(ValueError, match="accuracy"):
        run_seeds({"bad": lambda s: {"acc": 1}}, [0])
    assert mean_std(0.5, float("nan")) == "0.500" and mean_std(0.81, 0.0) == "0.810 ± 0.000"
