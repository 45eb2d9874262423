"""Where miniorch keeps its state: `$MINIORCH_HOME`, else `~/.miniorch`.

Apart from `settings` (which re-exports it) so that every CLI command can find the
state directory without building the cluster's `Settings` classes.
"""

from __future__ import annotations

import os
from pathlib import Path


def default_home() -> Path:
    """`$MINIORCH_HOME`, else `~/.miniorch` (design.md, "State")."""
    env = os.environ.get("MINIORCH_HOME")
    return Path(env).expanduser() if env else Path.home() / ".miniorch"
