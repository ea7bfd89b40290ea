#!/usr/bin/env bash
# Run the tests on both tested ROS 2 distributions, each in its own venv (created or updated by scripts/setup_env.sh):
# everything under test/ on Kilted (.venv), then the tests marked `ros` (rclpy, messages, node processes) again on
# Jazzy (.venv-jazzy, no torch). Fails when either run fails or tests nothing.
#
#   ./scripts/test.sh                                  # both runs
#   ./scripts/test.sh test/test_lint.py -x             # paths and options go to pytest; without a path, test/ is run
#   ./scripts/test.sh --distro jazzy test/test_node.py # one distribution only (kilted, jazzy or all)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

distros=(kilted jazzy)
if [[ ${1:-} == --distro ]]; then
  case "${2:-}" in
    all) ;;
    kilted|jazzy) distros=("$2") ;;
    *) echo "test.sh: error: --distro takes kilted, jazzy or all, not '${2:-}'" >&2; exit 2 ;;
  esac
  shift 2
fi

targets=(test)
for arg in "$@"; do
  [[ $arg != -* && -e ${arg%%::*} ]] && targets=()
done

results=()
failed=0
for distro in "${distros[@]}"; do
  venv=.venv
  selection=()
  if [[ $distro != kilted ]]; then
    venv=.venv-$distro
    selection=(-m ros)  # the full suite ran on Kilted; here what depends on the ROS 2 release
  fi
  bash scripts/setup_env.sh --distro "$distro"
  command=("$venv/bin/python" -m pytest -q "${selection[@]}" "${targets[@]}" "$@")
  printf '\n===== ROS 2 %s: %s =====\n' "$distro" "${command[*]}"
  status=0
  "${command[@]}" || status=$?
  if [[ $status == 5 && ${#distros[@]} -gt 1 && ${#targets[@]} == 0 && -n ${selection[*]} ]]; then
    # The paths given hold no ROS test: nothing of them depends on the distribution.
    results+=("$distro: no test marked ros among the given paths")
    continue
  fi
  if [[ $status == 5 ]]; then
    # pytest's "no tests collected" is a failure here: a run that tests nothing must not pass.
    results+=("$distro: error, pytest collected no tests")
    failed=1
  elif [[ $status != 0 ]]; then
    results+=("$distro: FAILED (pytest exit $status)")
    failed=1
  else
    results+=("$distro: passed")
  fi
done

printf '\n===== test.sh: %s =====\n' "$(IFS=';'; echo "${results[*]}" | sed 's/;/; /g')"
exit "$failed"
