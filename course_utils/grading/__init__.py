"""Autograder for the course exercises (``course-grade``); see docs/GRADING.md.

Modules: ``spec`` (exercise format), ``release`` (student notebooks and their metadata),
``guide`` (what students are told about each question: the release notebook's metadata),
``kit`` (``course-grade kit``: the instructor's private kit and its per-term secret),
``submissions`` (finding and validating notebooks), ``runner`` (one submission: worker +
checks), ``batch`` (a folder, or ``--only`` one student, through a pool), ``results`` (what a
batch writes), ``outdir`` (OUT_DIR written all at once), ``deadlines`` (late penalties,
totals.csv), ``overrides``, ``similarity`` (similarity.csv), ``report`` (report.html/.md),
``export`` (Canvas/Moodle CSVs), ``feedback`` (OUT_DIR/feedback/STUDENT.md),
``worker``/``checker`` (the subprocess entry points), ``checkserver`` (warm check processes),
``answers`` (what crosses from the kernel, and its size), ``engine`` (output caps), ``procs``
(timeouts and process-tree cleanup), ``sandbox`` (bubblewrap isolation), ``mounts`` (the
allow-listed file system), ``hide`` (what a submission must not see), ``limits``
(per-submission limits: cgroups and watchdogs), ``redact`` (the graded objects kept out of the
kernel), ``toolkit`` (helpers for hidden tests), ``cluster``/``cluster_task`` (grading on a
Dask cluster, ``--scheduler``: the client's side and the workers'), ``selfcheck``
(``course-grade check``), ``cli``.
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
