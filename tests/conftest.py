"""Suite-wide guard: no test ever reaches a registry on the internet.

Unqualified image names resolve to Docker Hub (`nginx` → registry-1.docker.io), as
Docker resolves them. `MINIORCH_OFFLINE=1` makes miniorch contact only loopback
registries; it is set here, at import, before any test or cluster process starts, so
it is inherited by every CLI and cluster the suite spawns. Tests that stand a local
registry in for Docker Hub point `docker.io` at it through a loopback mirror in
registries.json, which offline mode still uses.
"""

from __future__ import annotations

import os

os.environ["MINIORCH_OFFLINE"] = "1"
