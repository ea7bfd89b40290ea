"""``python -m rtformer_ros.demo``: the same as ``rtformer demo``."""

import sys

from rtformer_ros.cli import main

sys.exit(main(['demo', *sys.argv[1:]]))
