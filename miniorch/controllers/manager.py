"""The controller manager: every control loop of the cluster process, in one task group.

    ControllerManager.run ─┬─ scheduler                (binds pending pods)
                           ├─ replication-controller   (pods per RC)
                           ├─ replicaset-controller    (pods per ReplicaSet)
                           ├─ deployment-controller    (ReplicaSets per Deployment)
                           ├─ daemonset-controller     (a pod per fitting node)
                           ├─ statefulset-controller   (ordered, named pods)
                           ├─ job-controller           (pods per Job, to completion)
                           ├─ cronjob-controller       (Jobs per CronJob, on schedule)
                           ├─ endpoints-controller     (Endpoints per Service)
                           ├─ garbage-collector        (dependents of deleted owners)
                           ├─ serviceaccounts          (`default` in every namespace)
                           ├─ namespace-controller     (Terminating namespaces, once empty)
                           └─ node-lifecycle           (dead nodes, eviction)

The loops share one `SharedInformerFactory` (the cluster's, passed in, so the kubelets
and the proxy share the same watches; or the manager's own, run first): the pods the
scheduler, the RC controller, the endpoints controller and the garbage collector all
follow cost one list and one watch. Each loop keeps its own work queue.

Each loop is started with `await tg.start(...)`, so `run` reports started only once
every mapper has seen the informers' caches and every worker is running. Cancelling
the manager stops them all (structured concurrency: nothing outlives it).
"""

from __future__ import annotations

import anyio
import structlog
from anyio.abc import TaskStatus

from miniorch.api.registry import Registry
from miniorch.controllers.cronjob import cronjob_controller
from miniorch.controllers.daemonset import daemonset_controller
from miniorch.controllers.deployment import deployment_controller
from miniorch.controllers.endpoints import endpoints_controller
from miniorch.controllers.garbage_collector import garbage_collector
from miniorch.controllers.job import job_controller
from miniorch.controllers.namespaces import namespace_controller
from miniorch.controllers.node_lifecycle import NodeLifecycleController
from miniorch.controllers.replicaset import replica_set_controller
from miniorch.controllers.replication import replication_controller
from miniorch.controllers.scheduler import scheduler
from miniorch.controllers.serviceaccounts import service_accounts_controller
from miniorch.controllers.statefulset import statefulset_controller
from miniorch.core.clock import Clock, SystemClock
from miniorch.core.settings import Settings
from miniorch.machinery.informer import SharedInformerFactory

log = structlog.get_logger(__name__)


class ControllerManager:
    def __init__(self, registry: Registry, settings: Settings,
                 clock: Clock | None = None, *, node_check_period: float = 1.0,
                 informers: SharedInformerFactory | None = None) -> None:
        self.registry = registry
        self.settings = settings
        self.clock = clock or SystemClock()
        self.informers = informers or SharedInformerFactory(registry)
        self._own_informers = informers is None
        shared = self.informers
        self.scheduler = scheduler(registry, clock=self.clock, informers=shared,
                                   default_max_pods=settings.max_pods_per_node)
        self.replication = replication_controller(registry, clock=self.clock, informers=shared)
        self.replica_sets = replica_set_controller(registry, clock=self.clock, informers=shared)
        self.deployments = deployment_controller(registry, clock=self.clock, informers=shared)
        self.daemonsets = daemonset_controller(registry, clock=self.clock, informers=shared)
        self.statefulsets = statefulset_controller(registry, clock=self.clock, informers=shared)
        self.jobs = job_controller(registry, clock=self.clock, informers=shared)
        self.cronjobs = cronjob_controller(registry, clock=self.clock, informers=shared)
        self.endpoints = endpoints_controller(registry, informers=shared)
        self.garbage_collector = garbage_collector(registry, informers=shared)
        self.service_accounts = service_accounts_controller(
            registry, informers=shared, ca_path=settings.tls_dir / "ca.crt")
        self.namespaces = namespace_controller(registry, informers=shared)
        self.node_lifecycle = NodeLifecycleController(registry, settings, self.clock,
                                                      period=node_check_period)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:
            if self._own_informers:
                await tg.start(self.informers.run)
            # The scheduler first: pods the RC controller creates at start-up are
            # bound as soon as they appear.
            await tg.start(self.scheduler.run)
            await tg.start(self.replication.run)
            await tg.start(self.replica_sets.run)
            await tg.start(self.deployments.run)
            await tg.start(self.daemonsets.run)
            await tg.start(self.statefulsets.run)
            await tg.start(self.jobs.run)
            await tg.start(self.cronjobs.run)
            await tg.start(self.endpoints.run)
            await tg.start(self.garbage_collector.run)
            await tg.start(self.service_accounts.run)
            await tg.start(self.namespaces.run)
            await tg.start(self.node_lifecycle.run)
            log.info("controllers started")
            task_status.started()
