"""Progress bars: a widget in JupyterLab (and Colab), plain text everywhere else, never a warning.

``tqdm.auto`` already chooses well: the widget bar inside a Jupyter kernel with ipywidgets, the
text bar in a terminal, and the text bar in a kernel without ipywidgets, where it also warns
"IProgress not found. Please update jupyter and ipywidgets". That fallback is what we want; the
warning only alarms students, so it is silenced for this one import. Headless runs (papermill,
nbval) get the widget bar's text/plain form, which tqdm renders as the text bar.
"""
import warnings

from tqdm import TqdmWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm

__all__ = ["tqdm"]
