"""The controller manager: every control loop of the cluster process, in one task group.

    ControllerManager.run ─┬─ scheduler                (binds pending pods)
                           ├─ replication-controller   (pods per RC)
                           ├─ job-controller           (pods per Job, to completion)
                           ├─ cronjob-controller       (Jobs per CronJob, on schedule)
                           ├─ endpoints-controller     (Endpoints per Service)
                           ├─ garbage-collector        (dependents of deleted owners)
                           └─ node-lifecycle           (dead nodes, eviction)

Each loop is started with `await tg.start(...)`, so `run` reports started only once
every informer has listed and every worker is running. Cancelling the manager stops
them all (structured concurrency: nothing outlives it).
"""

from __future__ import annotations

import anyio
import structlog
from anyio.abc import TaskStatus

from miniorch.api.registry import Registry
from miniorch.controllers.cronjob import cronjob_controller
from miniorch.controllers.endpoints import endpoints_controller
from miniorch.controllers.garbage_collector import garbage_collector
from miniorch.controllers.job import job_controller
from miniorch.controllers.node_lifecycle import NodeLifecycleController
from miniorch.controllers.replication import replication_controller
from miniorch.controllers.scheduler import scheduler
from miniorch.core.clock import Clock, SystemClock
from miniorch.core.settings import Settings

log = structlog.get_logger(__name__)


class ControllerManager:
    def __init__(self, registry: Registry, settings: Settings,
                 clock: Clock | None = None, *, node_check_period: float = 1.0) -> None:
        self.registry = registry
        self.settings = settings
        self.clock = clock or SystemClock()
        self.scheduler = scheduler(registry, clock=self.clock,
                                   default_max_pods=settings.max_pods_per_node)
        self.replication = replication_controller(registry, clock=self.clock)
        self.jobs = job_controller(registry, clock=self.clock)
        self.cronjobs = cronjob_controller(registry, clock=self.clock)
        self.endpoints = endpoints_controller(registry)
        self.garbage_collector = garbage_collector(registry)
        self.node_lifecycle = NodeLifecycleController(registry, settings, self.clock,
                                                      period=node_check_period)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:
            # The scheduler first: pods the RC controller creates at start-up are
            # bound as soon as they appear.
            await tg.start(self.scheduler.run)
            await tg.start(self.replication.run)
            await tg.start(self.jobs.run)
            await tg.start(self.cronjobs.run)
            await tg.start(self.endpoints.run)
            await tg.start(self.garbage_collector.run)
            await tg.start(self.node_lifecycle.run)
            log.info("controllers started")
            task_status.started()
