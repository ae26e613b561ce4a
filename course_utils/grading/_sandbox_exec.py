"""Puts itself into a submission's cgroups and sets its file-size limit, then becomes COMMAND.

    python -I -S _sandbox_exec.py '{"cgroups": [PROCS_FILE, ...], "fsize": BYTES}' COMMAND...

(``fsize`` optional: a check process, started this way where it cannot be forked, has none.)

A process of its own, so that everything COMMAND starts (bwrap, papermill, the kernel, what
the notebook spawns) is born inside the limits: moving a process in later would let whatever it
forked meanwhile escape. Popen's ``preexec_fn`` could do the same, but it is unsafe in the
grader's threads. ``-I -S`` (no site-packages) keeps the start near 15 ms. Only the standard
library is used, and nothing from the project, for the same reason.

Python ignores SIGXFSZ and exec keeps an ignored signal ignored, so a write past the file-size
limit fails with EFBIG ("File too large") instead of killing the writer.
"""
import json
import os
import resource
import sys


def main() -> None:
    spec = json.loads(sys.argv[1])
    for procs_file in spec["cgroups"]:
        with open(procs_file, "w") as fh:
            fh.write(str(os.getpid()))
    if spec.get("fsize"):
        resource.setrlimit(resource.RLIMIT_FSIZE, (spec["fsize"], spec["fsize"]))
    os.execv(sys.argv[2], sys.argv[2:])


if __name__ == "__main__":
    main()
