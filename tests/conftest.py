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

