"""The node's latest-frame hand-off: a newer frame replaces the pending one, cameras are served in turn."""

from __future__ import annotations

import threading

from rtformer_ros.ros.slots import LatestFrameSlots


def test_node_slots_replace_the_pending_frame_and_return_the_stale_one() -> None:
    slots: LatestFrameSlots[int] = LatestFrameSlots(['cam'])
    assert slots.put('cam', 1) is None
    assert slots.put('cam', 2) == 1  # 1 is stale now
    assert slots.put('cam', 3) == 2
    assert slots.take(timeout=0) == ('cam', 3)
    assert slots.take(timeout=0.01) is None  # nothing queued behind it


def test_node_slots_serve_cameras_with_pending_frames_round_robin() -> None:
    slots: LatestFrameSlots[str] = LatestFrameSlots(['front', 'left', 'rear'])
    served = []
    for frame in range(6):  # 'front' always has a frame; 'left' and 'rear' only every other round
        slots.put('front', f'f{frame}')
        if frame % 2 == 0:
            slots.put('left', f'l{frame}')
            slots.put('rear', f'r{frame}')
        job = slots.take(timeout=0)
        assert job is not None
        served.append(job[0])
    # A camera with a frame waits at most one turn of the others: 'front' never starves 'left' or 'rear'.
    assert served == ['front', 'left', 'rear', 'front', 'left', 'rear']


def test_node_slots_wake_a_waiting_worker_on_put_and_on_close() -> None:
    slots: LatestFrameSlots[int] = LatestFrameSlots(['cam'])
    results: list[object] = []
    taken = threading.Event()

    def work() -> None:
        results.append(slots.take())
        taken.set()
        results.append(slots.take())  # blocks until close()

    worker = threading.Thread(target=work)
    worker.start()
    slots.put('cam', 7)
    assert taken.wait(timeout=5)
    slots.close()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert results == [('cam', 7), None]
