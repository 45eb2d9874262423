"""Standalone containers, as Docker runs them (`miniorch container ...`).

Public surface:

    ContainerEngine(home, *, images=None, settings=None)   the verbs (engine.py)
      .create(RunOptions) -> ContainerConfig   .start_detached(config)
      .run_attached(config, Attach) -> exit code
      .list(all=) / .get(ref) / .inspect(ref) / .log_lines(ref, follow=)
      .stop(ref, timeout=) / .remove(ref, force=) / .exec_target(ref) / .cleanup()
      .image_in_use(image_id)
    RunOptions, Attach, ContainerSettings, Container, ContainerConfig, ContainerState,
    PortBinding, ContainerError, NoSuchContainer, StartError

Layering: beside the node layer; uses sandbox, images and core, never the API. There is
no daemon: each running container has its own supervisor process (supervisor.py) that
owns its sandbox, logs, published ports and state; every other verb works on the files
under `$MINIORCH_HOME/containers/` (state.py) and on the app's pid and cgroup.

    miniorch container run -d ─► engine.create ─► supervisor process ─► PodSandbox(init=False)
                                                    │  app = PID 1, hostname = short id
    curl 127.0.0.1:8080 ─► supervisor's forwarder ─► 10.88.x.y:8080 on bridge mo-docker0
"""

from miniorch.containers.engine import (
    ContainerEngine,
    ContainerError,
    NoSuchContainer,
    RunOptions,
    parse_port,
)
from miniorch.containers.state import (
    Container,
    ContainerConfig,
    ContainerSettings,
    ContainerState,
    PortBinding,
)
from miniorch.containers.supervisor import Attach, StartError

__all__ = [
    "Attach",
    "Container",
    "ContainerConfig",
    "ContainerEngine",
    "ContainerError",
    "ContainerSettings",
    "ContainerState",
    "NoSuchContainer",
    "PortBinding",
    "RunOptions",
    "StartError",
    "parse_port",
]
