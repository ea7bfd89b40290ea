#!/usr/bin/env bash
# Create or update a virtual environment of the project and install rtformer_ros into it (editable).
#
#   bash scripts/setup_env.sh                  # development, ROS 2 Kilted wheels, in .venv: requirements-dev.txt
#                                              # (torch CPU, onnx, pytest, ruff, colcon)
#   bash scripts/setup_env.sh --runtime        # robot: requirements.txt only (ONNX Runtime, rclpy, rosbags, ...)
#   bash scripts/setup_env.sh --distro jazzy   # ROS 2 Jazzy wheels (requirements-jazzy.txt) in .venv-jazzy, with the
#                                              # test tools but no torch; scripts/test.sh runs the ROS tests in it
#
# Idempotent and fast when nothing changed: a stamp in the venv holds a hash of the inputs, and pip runs only when it
# differs. Where a sourced ROS 2 install already provides rclpy (ROS_DISTRO set), the venv sees the system packages
# and the ros-* wheels from PyPI are left out. PYTHON picks the interpreter (default python3, 3.11 or newer).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}

say() { printf 'setup_env: %s\n' "$*"; }
die() { printf 'setup_env: error: %s\n' "$*" >&2; exit 1; }

mode=dev
distro=kilted
while (($#)); do
  case "$1" in
    --runtime) mode=runtime ;;
    --distro)
      [[ ${2:-} == @(kilted|jazzy) ]] || die "--distro takes kilted or jazzy, not '${2:-}'"
      distro=$2; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (use --runtime, --distro kilted|jazzy or nothing)" ;;
  esac
  shift
done
requirements=requirements-dev.txt
[[ $mode == runtime ]] && requirements=requirements.txt
# Kilted is the default environment; another distribution gets its own venv, so both can be tested side by side.
VENV=.venv
[[ $distro == kilted ]] || VENV=.venv-$distro

version=$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null) \
  || die "'$PYTHON' does not run; install Python 3.11+ or set PYTHON=/path/to/python3"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "'$PYTHON' is Python $version; 3.11+ is needed (set PYTHON=/path/to/python3.11)"

# A sourced ROS 2 (ROS_DISTRO set and its rclpy importable) wins over the PyPI wheels: mixing both breaks rclpy.
system_ros=no
if [[ -n "${ROS_DISTRO:-}" ]] && "$PYTHON" -c 'import rclpy' >/dev/null 2>&1; then
  system_ros=yes
fi

stamp_file=$VENV/.rtformer_ros-stamp
stamp=$( { echo "$mode $distro $system_ros $version"; cat requirements*.txt setup.py setup.cfg package.xml; } \
  | sha256sum | cut -d' ' -f1)
# The console script proves the editable install is still there (a `pip install --prefix` run with this venv's pip
# without --ignore-installed uninstalls it).
if [[ -x $VENV/bin/python && -x $VENV/bin/rtformer_node && -f $stamp_file && $(cat "$stamp_file") == "$stamp" ]]
then
  say "$VENV is up to date ($mode, $distro)"
  exit 0
fi

log=$(mktemp "${TMPDIR:-/tmp}/rtformer_ros-setup.XXXXXX")
trap 'rm -f "$log"' EXIT
# Run a step quietly; on failure show the tail of its output and what failed.
run() {
  local what=$1; shift
  if ! "$@" >"$log" 2>&1; then
    tail -n 25 "$log" >&2
    die "$what failed (command: $*)"
  fi
}

site=false
[[ $system_ros == yes ]] && site=true
if [[ ! -x $VENV/bin/python ]] || ! grep -qx "include-system-site-packages = $site" "$VENV/pyvenv.cfg"; then
  say "creating $VENV with Python $version (system site packages: $site, ROS_DISTRO=${ROS_DISTRO:-unset})"
  venv_args=()
  [[ $site == true ]] && venv_args+=(--system-site-packages)
  run "creating $VENV" "$PYTHON" -m venv "${venv_args[@]}" "$VENV"
fi

# requirements-dev.txt includes requirements.txt with -r. The ros-* lines of both are Kilted's: a system ROS 2 drops
# them, another distribution replaces them with requirements-<distro>.txt and leaves out the torch-only tools.
pip_reqs=(-r "$requirements")
if [[ $system_ros == yes || $distro != kilted ]]; then
  filtered=$VENV/requirements-resolved.txt
  drop='^(#|$|ros-|-r )'
  [[ $distro == kilted ]] || drop='^(#|$|ros-|-r |torch==|onnxscript==)'
  ros_reqs=requirements-$distro.txt
  if [[ $system_ros == yes ]]; then
    ros_reqs=/dev/null
    say "using rclpy from ROS 2 $ROS_DISTRO; skipping the ros-* wheels"
  fi
  { cat requirements.txt "$requirements" | grep -v -E "$drop"; cat "$ros_reqs"; } | sort -u >"$filtered"
  pip_reqs=(-r "$filtered")
fi
say "installing $requirements for ROS 2 $distro (pip, quiet)"
run "pip install -r $requirements" "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${pip_reqs[@]}"

say "installing rtformer_ros (editable)"
run "pip install -e ." "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
  --no-build-isolation -e .
run "importing rtformer_ros and rclpy in $VENV" "$VENV/bin/python" -c 'import rclpy, rtformer_ros'

echo "$stamp" >"$stamp_file"
say "$VENV ready ($mode, $distro)"
