"""The options of one demo run (``rtformer demo``'s command line as a typed record)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ['DemoOptions']


@dataclass(frozen=True)
class DemoOptions:
    """See ``rtformer demo --help``.

    Attributes:
        video: a video file (None: vtest.avi, or ``bag``).
        bag: a rosbag2 to take frames from instead of a video.
        image_topic: the bag's camera topic (default: ``/camera/image_raw`` or the only camera topic).
        model: exported .onnx path or a name in the package's models/ folder (None: the node's default).
        providers: the node's ``providers`` parameter.
        out: folder for the files.
        max_frames: at most this many frames (0: all).
        realtime: publish at the video's rate instead of lockstep.
        timeout_s: lockstep: give up on a frame after this long; realtime: wait this long for the last one.
        wait_s: how long the node may take to start and answer a first frame.
        progress: tqdm bar (None: only on a terminal).
    """

    video: Path | None = None
    bag: Path | None = None
    image_topic: str | None = None
    model: str | None = None
    providers: str = 'auto'
    out: Path = Path('out/demo')
    max_frames: int = 0
    realtime: bool = False
    timeout_s: float = 20.0
    wait_s: float = 120.0
    progress: bool | None = None
