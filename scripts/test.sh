#!/usr/bin/env bash
# Run the tests in the project's venv (created or updated first by scripts/setup_env.sh).
#
#   ./scripts/test.sh                        # everything under test/
#   ./scripts/test.sh test/test_lint.py -x   # paths and options go to pytest; without a path, test/ is run
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh

targets=(test)
for arg in "$@"; do
  [[ $arg != -* && -e ${arg%%::*} ]] && targets=()
done

status=0
.venv/bin/python -m pytest -q "${targets[@]}" "$@" || status=$?
if [[ $status == 5 ]]; then
  # pytest's "no tests collected" is a failure here: a run that tests nothing must not pass.
  echo 'test.sh: error: pytest collected no tests' >&2
  exit 1
fi
exit "$status"
