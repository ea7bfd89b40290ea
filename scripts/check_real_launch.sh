#!/usr/bin/env bash
# Run launch/rtformer.launch.py under the real launch and launch_ros packages, which have no wheels (so CI cannot):
# in a throwaway venv with one distribution's ROS wheels, after `pip install .` and again after `colcon build`.
#
#   bash scripts/check_real_launch.sh jazzy  SRC/launch SRC/launch_ros   # checkouts of their `jazzy` branches
#   bash scripts/check_real_launch.sh kilted SRC/launch SRC/launch_ros   # of `kilted` (or `rolling`)
#
# SRC/launch and SRC/launch_ros are checkouts (or `git archive`s) of github.com/ros2/launch and ros2/launch_ros.
# Each install runs the real-launch tests of test/test_launch.py (labels served by the plain and the managed node,
# missing params file, cameras, respawn, log level). WORK=dir keeps the venv and workspace (default: a temp dir).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
say() { printf 'check_real_launch: %s\n' "$*"; }
die() { printf 'check_real_launch: error: %s\n' "$*" >&2; exit 1; }

[[ $# == 3 ]] || die 'usage: check_real_launch.sh jazzy|kilted LAUNCH_SRC LAUNCH_ROS_SRC'
distro=$1 launch_src=$2 launch_ros_src=$3
[[ $distro == @(jazzy|kilted) ]] || die "distribution '$distro': jazzy or kilted"
[[ -f $launch_src/launch/package.xml ]] || die "$launch_src/launch/package.xml not found: a ros2/launch checkout?"
[[ -f $launch_ros_src/launch_ros/package.xml ]] || die "$launch_ros_src/launch_ros/package.xml not found"
work=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/rtformer_real_launch.XXXXXX")}
venv=$work/venv-$distro
mkdir -p "$work"

say "venv $venv: the project's pins without torch, ROS 2 $distro wheels, launch and launch_ros from source"
grep -h -v -E '^(#|$|ros-|-r |torch==|onnxscript==)' requirements.txt requirements-dev.txt >"$work/common.txt"
if [[ $distro == kilted ]]; then
  grep '^ros-' requirements.txt >"$work/ros.txt"
else
  cp "requirements-$distro.txt" "$work/ros.txt"
fi
# launch_ros imports composition_interfaces (for composable nodes, unused here), which has no wheel: a stand-in.
standin=$work/composition_interfaces_standin
mkdir -p "$standin/composition_interfaces/srv"
echo '"""Import-only stand-in for launch_ros (no wheel exists); LoadComposableNodes is not used."""' \
  >"$standin/composition_interfaces/__init__.py"
printf 'class LoadNode:\n    class Request:\n        pass\n' >"$standin/composition_interfaces/srv/__init__.py"
printf 'from setuptools import setup\nsetup(name="composition-interfaces-standin", version="0",
      packages=["composition_interfaces", "composition_interfaces.srv"])\n' >"$standin/setup.py"
python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" -r "$work/common.txt" -r "$work/ros.txt" osrf-pycommon==2.0.2 lark==1.3.1
"${pip[@]}" --no-deps "$launch_src/launch" "$launch_ros_src/launch_ros" "$standin"
"$venv/bin/python" -c 'import importlib.metadata as m; print("check_real_launch: launch", m.version("launch"),
  "launch_ros", m.version("launch_ros"), "rclpy", m.version("ros-rclpy"))'

# Its own pytest, not `python -m pytest`: the source tree must not shadow the installed package.
run_tests() {
  say "$1: test/test_launch.py -k real_launch"
  AMENT_PREFIX_PATH=$2 PYTHONPATH=${3:-} "$venv/bin/pytest" -q -rs -p no:cacheprovider test/test_launch.py \
    -k real_launch
}

say 'pip install .'
"${pip[@]}" --no-deps --no-build-isolation .
run_tests "pip install . ($distro)" "$venv"
"$venv/bin/python" -m pip uninstall --quiet -y rtformer_ros

say 'colcon build'
ws=$work/ws-$distro
rm -rf "$ws" && mkdir -p "$ws/src/rtformer_ros"
# What a clean clone holds (tracked or new, not ignored), linked: no .venv, build or copies of the models.
git ls-files --cached --others --exclude-standard | cut -d/ -f1 | sort -u | while read -r name; do
  [[ -e $name ]] && ln -s "$PWD/$name" "$ws/src/rtformer_ros/$name"
done
(cd "$ws" && "$venv/bin/python" -m colcon build --packages-select rtformer_ros >"$ws/build.log" 2>&1) \
  || { tail -n 30 "$ws/build.log" >&2; die "colcon build failed (log: $ws/build.log)"; }
site=$(echo "$ws"/install/rtformer_ros/lib/python3*/site-packages)
run_tests "colcon build ($distro)" "$ws/install/rtformer_ros" "$site"
say "done: $distro passed after pip install . and after colcon build ($work)"
