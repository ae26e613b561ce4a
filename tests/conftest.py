"""Shared fixtures. The backbone loads once per session: loading is ~1 s, tests use it often."""
import pytest
import torch

# Synthetic submissions live here; some loop forever on purpose, so nbval must never collect them.
collect_ignore = ["grading_fixtures"]
# The graded batches the grading tests share, each made once per session (only when a test asks).
pytest_plugins = ["grading_fixtures.batches"]


@pytest.fixture(scope="session")
def lite0():
    from course_utils.backbones import load_backbone
    return load_backbone("efficientnet_lite0", image_size=64)


@pytest.fixture(autouse=True)
def _seed_and_cache(tmp_path, monkeypatch):
    """Each test gets its own cache folder and a fixed seed."""
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)


def leftover_processes(token: str) -> list[list[str]]:
    """Command lines of processes a grading test left behind: ``token`` on the command line, or the
    grader's marker variable in the environment."""
    import psutil

    from course_utils.grading.procs import MARKER_VAR

    found = []
    for p in psutil.process_iter():
        try:
            if token in " ".join(p.cmdline()) or MARKER_VAR in p.environ():
                found.append(p.cmdline())
        except (psutil.Error, OSError):
            continue
    return found



# `bash course.sh test` runs two pytest-xdist workers with --dist loadgroup: each group runs in order on one
# worker. A notebook's cells share one kernel and must run in order, so a notebook is a group. The grading tests
# form one group: several share the session's graded batches (grading_fixtures/batches.py), made once per worker,
# and some assert that no grader process is left running, which a grading on the other worker would break.
def _group(name: str) -> str:
    return "grading" if name.startswith("test_grading_") or name == "test_exercises.py" else name


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item.path.name)))
