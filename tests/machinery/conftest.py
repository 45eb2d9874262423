"""The in-memory API and actor runner of the controller tests, reused here."""

from tests.controllers.conftest import cluster, run_actors

__all__ = ["cluster", "run_actors"]
