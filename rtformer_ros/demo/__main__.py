"""``python -m rtformer_ros.demo``: the same as ``rtformer demo``."""

import sys

from rtformer_ros.demo.command import main

sys.exit(main())
