"""Autograder for the course exercises (``course-grade``); see docs/GRADING.md.

Modules: ``spec`` (exercise format), ``release`` (student notebooks), ``submissions``
(finding and validating notebooks), ``runner`` (one submission: worker + checks), ``batch``
(a folder -> grades.csv/summary.json), ``worker``/``checker`` (the subprocess entry points),
``engine`` (output caps), ``procs`` (timeouts and process-tree cleanup), ``sandbox``
(bubblewrap isolation and per-submission limits), ``cluster``/``cluster_task`` (grading
on a Dask cluster, ``--scheduler``: the client's side and the workers'), ``guide`` (what
students are told about each question, from the release notebook), ``feedback``
(OUT_DIR/feedback/STUDENT.md), ``selfcheck`` (``course-grade check``), ``cli``.
Nothing heavy is imported here, so ``course-grade release`` starts quickly.
"""

import sys as _sys


def skip_slow_optional_imports() -> None:
    """Keep jsonschema (imported by nbformat) from loading the optional ``rfc3987_syntax``.

    That package builds an IRI grammar at import, ~1.5 s of CPU in every grader process when
    it is installed (jupyterlab pulls it in); the notebook schema never uses the "iri" format
    it serves, and jsonschema skips it cleanly on ImportError.
    """
    _sys.modules.setdefault("rfc3987_syntax", None)


# Done on import because every grader entry point (CLI, worker, tests) imports nbformat soon.
skip_slow_optional_imports()
