#!/usr/bin/env bash
# The course's two commands (see README.md):
#   bash course.sh run   [--fast] ...   set up, then execute every notebook headless and summarise
#   bash course.sh test                 set up, then run the whole test suite (pytest + nbval + grader)
#   bash course.sh results              set up, run every benchmark (the course at FAST and full
#                                       settings included) and regenerate docs/RESULTS.md (~20 min)
#   bash course.sh site                 set up, then build the course website in out/site/ (index.html)
#                                       from the executed notebooks in out/ (runs the course --fast first
#                                       when there are none)
#   bash course.sh setup                only set up (.venv/, requirements, the course package, and the
#                                       headless Chromium the site's browser test needs)
# Setup is idempotent: it reinstalls only when requirements.txt or pyproject.toml change.
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv
PY="$VENV/bin/python"

torch_spec() {
  # This machine type has these builds on local disk; other platforms take what pip offers.
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64)  echo "torch==2.14.1 torchvision==0.29.1" ;;
    Linux-aarch64) echo "torch==2.9.1 torchvision==0.24.1" ;;
    *)             echo "torch torchvision" ;;
  esac
}

setup() {
  [ -x "$PY" ] || python3 -m venv "$VENV"
  local stamp="$VENV/.course-installed" want
  want=$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  echo "setup: installing into $VENV (first time takes a few minutes) ..."
  "$PY" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
  "$PY" -c "import torch, torchvision" 2>/dev/null || "$PY" -m pip install -q --disable-pip-version-check $(torch_spec)
  "$PY" -m pip install -q --disable-pip-version-check -r requirements.txt
  # An editable install of this flat layout makes setuptools end with an "Editable installation"
  # note (a folder named course_utils in the current directory could shadow the install). Here
  # that folder is the installed source itself, so the note tells a learner nothing; it is
  # filtered by its message and module only, every other warning still shows.
  PYTHONWARNINGS="${PYTHONWARNINGS:+$PYTHONWARNINGS,}ignore:Editable installation::setuptools.command.editable_wheel" \
    "$PY" -m pip install -q --disable-pip-version-check --no-deps -e .
  "$PY" -c "import course_utils.backbones as b; b.lite0_weights_path()"
  echo "$want" > "$stamp"
  echo "setup: done"
}

setup_browser() {
  # The site's browser test (tests/test_site.py) drives headless Chromium: Debian's chromium and
  # chromium-driver. Installed only when missing, with apt-get (sudo when not root).
  command -v chromedriver >/dev/null && { command -v chromium >/dev/null || command -v chromium-browser >/dev/null; } && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if command -v apt-get >/dev/null; then
    echo "setup: installing chromium + chromium-driver (apt-get) for the site's browser test ..."
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver; } \
      >/dev/null 2>&1 || echo "setup: could not install chromium + chromium-driver; tests/test_site.py will fail until they are installed" >&2
  else
    echo "setup: install Chromium and chromedriver for the site's browser test (no apt-get here)" >&2
  fi
}

cmd="${1:-}"; shift || true
case "$cmd" in
  setup) setup; setup_browser ;;
  run)
    setup
    "$VENV/bin/course" run "$@" ;;
  results)
    setup
    "$VENV/bin/course" results "$@" ;;
  site)
    setup
    "$VENV/bin/course" site "$@" ;;
  test)
    setup
    setup_browser
    # The suite in two pytest processes side by side on the 2 cores: the grading tests (they share the
    # session's graded batches and check that no grader process is left over, so they stay together in one
    # process) and everything else, every notebook and worked solution under nbval in FAST mode included.
    # COURSE_TEST_WORKERS=1 runs them one after the other. pytest exits 5 when it collected no tests:
    # that must fail CI, and it does when neither part collected any.
    export COURSE_FAST=1 MPLBACKEND=Agg
    grading=(tests/test_grading_*.py tests/test_exercises.py)
    ignore=(); for f in "${grading[@]}"; do ignore+=(--ignore="$f"); done
    log=$(mktemp)
    set +e
    "$PY" -m pytest "${grading[@]}" -p no:cacheprovider "$@" >"$log" 2>&1 &
    pid=$!
    [ "${COURSE_TEST_WORKERS:-2}" -gt 1 ] || wait "$pid"   # one worker: the grading part first, alone
    "$PY" -m pytest tests notebooks --nbval-lax -p no:cacheprovider "${ignore[@]}" "$@"
    rc_rest=$?
    wait "$pid"
    rc_grading=$?
    set -e
    echo "---- the grading tests (run beside the rest) ----"
    cat "$log"; rm -f "$log"
    # exit 5 (nothing collected) in one part is fine when the other part ran tests
    [ $rc_grading -eq 5 ] && [ $rc_rest -ne 5 ] && rc_grading=0
    [ $rc_rest -eq 5 ] && [ $rc_grading -ne 5 ] && rc_rest=0
    rc=$(( rc_rest > rc_grading ? rc_rest : rc_grading ))
    [ $rc -eq 5 ] && echo "course.sh test: pytest collected no tests - failing on purpose" >&2
    exit $rc ;;
  *)
    echo "usage: bash course.sh {run [--fast] | test | results | site | setup}" >&2
    exit 2 ;;
esac
