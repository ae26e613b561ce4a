"""A papermill engine that caps how much output a submission can pile up.

A student printing 100 MB in a loop must not fill the worker's memory or the executed notebook,
so every output message is measured as it arrives and whatever is over budget is dropped,
leaving one note per cell. Budgets count what a cell currently shows (a ``clear_output``
gives it back), and there is a cap for the whole notebook too.
"""
from __future__ import annotations

from nbformat.v4 import new_output
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines

ENGINE_NAME = "course-grade"
CELL_LIMIT = 100_000  # characters of output one cell may show
NOTEBOOK_LIMIT = 1_000_000  # characters of output in the whole executed notebook
ERROR_TEXT_LIMIT = 20_000  # traceback characters kept for one error

# The notebook being executed, so the worker can still save it when told to stop (timeout).
CURRENT: dict = {}


def _size(content: dict) -> int:
    if "text" in content:
        return len(content["text"])
    data = content.get("data") or {}
    return sum(len(v) if isinstance(v, str) else len(str(v)) for v in data.values())


def _note(limit: int) -> dict:
    return new_output(
        "stream", name="stderr",
        text=f"\n[output truncated by the grader: more than {limit} characters]\n",
    )


class LimitedOutputClient(PapermillNotebookClient):
    """nbclient with per-cell and per-notebook output budgets."""

    def reset_execution_trackers(self):
        super().reset_execution_trackers()
        self._shown: dict[int, int] = {}
        self._truncated: set[int] = set()
        self._total = 0

    def output(self, outs, msg, display_id, cell_index):
        if self.clear_before_next_output or not outs:
            self._release(cell_index)  # the pending clear_output (or a fresh cell) frees budget
        content = msg["content"]
        if msg["msg_type"] == "error":
            _shorten_error(content)
        size = _size(content)
        room = min(CELL_LIMIT - self._shown.get(cell_index, 0), NOTEBOOK_LIMIT - self._total)
        if size > room:
            if msg["msg_type"] == "stream" and room > 0:
                content["text"] = content["text"][:room]
                size = room
            elif msg["msg_type"] != "error":
                return self._truncate(outs, cell_index)
        out = super().output(outs, msg, display_id, cell_index)
        self._shown[cell_index] = self._shown.get(cell_index, 0) + size
        self._total += size
        if size >= room:
            self._truncate(outs, cell_index)
        return out

    def clear_output(self, outs, msg, cell_index):
        if not msg["content"].get("wait"):
            self._release(cell_index)
        super().clear_output(outs, msg, cell_index)

    def _release(self, cell_index):
        self._total -= self._shown.pop(cell_index, 0)
        self._truncated.discard(cell_index)

    def _truncate(self, outs, cell_index):
        if cell_index not in self._truncated:
            self._truncated.add(cell_index)
            outs.append(_note(CELL_LIMIT))
        return None


def _shorten_error(content: dict) -> None:
    content["evalue"] = str(content.get("evalue", ""))[:2000]
    kept, used = [], 0
    for line in content.get("traceback") or []:
        if used + len(line) > ERROR_TEXT_LIMIT:
            kept.append("[traceback truncated by the grader]")
            break
        kept.append(line)
        used += len(line)
    content["traceback"] = kept


class LimitedOutputEngine(NBClientEngine):
    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                 stderr_file=None, start_timeout=60, execution_timeout=None,
                                 **kwargs):
        CURRENT["nb"] = nb_man.nb
        kwargs.pop("input_path", None)
        client = LimitedOutputClient(
            nb_man, kernel_name=kernel_name, timeout=execution_timeout,
            startup_timeout=start_timeout, log_output=log_output,
            stdout_file=stdout_file, stderr_file=stderr_file,
            # no polite shutdown wait: the kernel's state is worthless once the answers are
            # written, and the parent kills whatever is left anyway
            shutdown_kernel="immediate", **kwargs,
        )
        return client.execute()


papermill_engines.register(ENGINE_NAME, LimitedOutputEngine)
