"""The default demo video: OpenCV's ``vtest.avi``, taken out of Debian's ``opencv-doc`` and cached.

``apt-get download`` needs no root; only the video is kept in ``~/.cache/rtformer_ros/``.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from rtformer_ros.demo.errors import DemoError
from rtformer_ros.util import cache_dir

__all__ = ['VTEST_MEMBER', 'VTEST_PACKAGE', 'extract_from_deb', 'fetch_vtest']

VTEST_PACKAGE = 'opencv-doc'
VTEST_MEMBER = './usr/share/doc/opencv-doc/examples/data/vtest.avi'


def extract_from_deb(deb: Path, member: str, dest: Path) -> Path:
    """Copy one file out of a Debian package (``dpkg-deb --fsys-tarfile``, read as a tar stream).

    Args:
        deb: the ``.deb`` file.
        member: path inside the package as ``dpkg-deb`` lists it (``./usr/...``; ``usr/...`` works too).
        dest: where the file goes; written to a temporary name first, so a broken run leaves nothing behind.

    Raises:
        DemoError: dpkg-deb is missing or fails, or the package has no such file.
    """
    wanted = member.removeprefix('./')
    partial = dest.with_name(dest.name + '.part')
    try:
        proc = subprocess.Popen(['dpkg-deb', '--fsys-tarfile', str(deb)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    except OSError as err:
        msg = f'{deb}: cannot run dpkg-deb ({err.strerror})'
        raise DemoError(msg) from None
    found = False
    try:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode='r|') as tar:
            for info in tar:
                if info.isfile() and info.name.removeprefix('./') == wanted:
                    source = tar.extractfile(info)
                    assert source is not None
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with partial.open('wb') as out:
                        shutil.copyfileobj(source, out)
                    found = True
                    break
    except tarfile.TarError as err:
        partial.unlink(missing_ok=True)
        msg = f'{deb}: not a readable Debian package ({err})'
        raise DemoError(msg) from None
    finally:
        proc.stdout.close()  # type: ignore[union-attr]
        error = proc.stderr.read().decode(errors='replace').strip() if proc.stderr else ''
        code = proc.wait()
    if not found:
        reason = error.splitlines()[-1] if code and error else f'no file {member} in it'
        msg = f'{deb}: {reason}'
        raise DemoError(msg)
    partial.replace(dest)
    return dest


def fetch_vtest(cache: Path | None = None, package: str = VTEST_PACKAGE) -> Path:
    """``vtest.avi`` in the cache, downloaded (``apt-get download``) and extracted on first use.

    Only the video is kept; the ~96 MB package is deleted once the file is out.

    Raises:
        DemoError: apt-get or dpkg-deb is missing, the download fails (no package lists, no network), or the
            package does not hold the file.
    """
    cache = cache or cache_dir()
    video = cache / Path(VTEST_MEMBER).name
    if video.is_file():
        return video
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix='download-', dir=cache) as tmp:
        print(f'rtformer demo: downloading {package} (Debian package, ~96 MB) for {video.name} ...', flush=True)
        try:
            result = subprocess.run(['apt-get', 'download', package], cwd=tmp, capture_output=True, text=True,
                                    timeout=900)
        except (OSError, subprocess.TimeoutExpired) as err:
            msg = f'apt-get download {package} failed ({getattr(err, "strerror", None) or err})'
            raise DemoError(msg) from None
        debs = sorted(Path(tmp).glob('*.deb'))
        if result.returncode != 0 or not debs:
            lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
            msg = f'apt-get download {package} failed ({lines[-1].strip() if lines else "no .deb"})'
            raise DemoError(msg)
        return extract_from_deb(debs[0], VTEST_MEMBER, video)
