"""Progress bars: widgets inside a Jupyter kernel, plain text without ipywidgets, and no warning.

Each case runs in a fresh interpreter: tqdm chooses its bar once, when it is first imported.
Importing ipykernel's shell is what makes tqdm believe it runs inside a Jupyter kernel.
"""
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent("""
    import sys, warnings
    if {block_ipywidgets}:
        sys.modules["ipywidgets"] = None   # makes `import ipywidgets` fail
    import ipykernel.zmqshell             # noqa: F401  "inside a Jupyter kernel"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from {module} import tqdm
    from tqdm.notebook import tqdm_notebook
    print("widget" if issubclass(tqdm, tqdm_notebook) else "text")
    print("warnings:", [str(w.message) for w in caught if "tqdm" in w.filename or "IProgress" in str(w.message)])
    for _ in tqdm(range(3), desc="epochs", disable={disable}):
        pass
""")


def _probe(module, block_ipywidgets, disable=False):
    code = PROBE.format(module=module, block_ipywidgets=block_ipywidgets, disable=disable)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    kind, warned = done.stdout.splitlines()[:2]
    return kind, warned, done.stderr


def test_without_ipywidgets_the_bar_is_text_and_nothing_warns():
    kind, warned, stderr = _probe("course_utils.progress", block_ipywidgets=True)
    assert kind == "text" and warned == "warnings: []"
    assert "epochs: 100%" in stderr and "IProgress" not in stderr


def test_the_probe_really_hits_tqdms_warning():
    """Control: plain tqdm.auto in the same setting warns, so the test above tests something."""
    kind, warned, _ = _probe("tqdm.auto", block_ipywidgets=True, disable=True)
    assert kind == "text" and "IProgress not found" in warned


def test_in_a_kernel_with_ipywidgets_the_bar_is_a_widget():
    kind, warned, _ = _probe("course_utils.progress", block_ipywidgets=False, disable=True)
    assert kind == "widget" and warned == "warnings: []"


def test_fit_shows_a_bar_named_after_the_run_only_when_asked(capfd):
    import torch

    from course_utils.train import fit

    x, y = torch.randn(8, 3), torch.arange(8) % 2
    model = torch.nn.Linear(3, 2)
    fit(model, (x, y), 2, torch.optim.SGD(model.parameters(), lr=0.1), progress=True, label="probe run")
    shown = capfd.readouterr().err
    fit(model, (x, y), 2, torch.optim.SGD(model.parameters(), lr=0.1), progress=False, label="probe run")
    assert "probe run" in shown and "/2 " in shown and "probe run" not in capfd.readouterr().err
