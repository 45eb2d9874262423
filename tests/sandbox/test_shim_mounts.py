"""The shim's path rule for volume mount points: symlinks resolve inside the root."""

from __future__ import annotations

import os
from pathlib import Path

from miniorch.sandbox._shim import secure_join


def test_symlinks_in_the_image_stay_inside_its_root(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "usr/share").mkdir(parents=True)
    os.symlink("/usr/share", root / "share")  # absolute: the image's /usr/share
    os.symlink("../../..", root / "usr/share/up")  # climbs past the root
    os.symlink("loop", root / "loop")
    assert secure_join(str(root), "/share/cfg") == f"{root}/usr/share/cfg"
    assert secure_join(str(root), "/usr/share/up/etc") == f"{root}/etc"
    assert secure_join(str(root), "/a/./b/../c") == f"{root}/a/c"
    try:
        secure_join(str(root), "/loop/x")
    except OSError as exc:
        assert "too many symlinks" in str(exc)
    else:
        raise AssertionError("a symlink loop must fail")
