import math
import time
from dataclasses import dataclass

import pytest

import numpy as np

from course_utils.sweep import compare_methods, item_matrix, mean_std, run_seeds, summarize


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
    assert math.isnan(one.loc["a", "accuracy_std"]) and one.loc["a", "accuracy"] == "0.500"  # one seed: no spread


def test_item_scores_go_through_the_table_to_compare():
    items = {"a": lambda s: {"accuracy": 0.6, "items": np.r_[np.ones(6), np.zeros(4)] if s else np.ones(10)},
             "b": lambda s: {"accuracy": 0.2, "items": np.r_[np.zeros(8), np.ones(2)]}}
    df = run_seeds(items, [1, 0])
    assert item_matrix(df, "a").tolist()[0] == [1.0] * 10   # seed order, not run order
    got = compare_methods(df, "a", "b")
    assert got.word == "beats" and got.seeds == 2 and got.items == 10
    with pytest.raises(ValueError, match="no runs of 'c'"):
        item_matrix(df, "c")
    with pytest.raises(ValueError, match="carry no 'items'"):
        item_matrix(run_seeds(_runs(), [0]), "a")


def test_errors_are_clear():
    with pytest.raises(ValueError, match="at least one run"):
        run_seeds({}, [0])
    with pytest.raises(ValueError, match="accuracy"):
        run_seeds({"bad": lambda s: {"acc": 1}}, [0])
    assert mean_std(0.5, float("nan")) == "0.500" and mean_std(0.81, 0.0) == "0.810 ± 0.000"
