"""`miniorch`: argparse grammar, global options and dispatch.

    argv ─► build_parser() ─► Namespace ─► Context(state dir, kubeconfig, namespace)
         ─► handler(ctx, args) ─► exit code;  CliError ─► stderr, exit 1

Global options (`--state-dir`, `--kubeconfig`, `-n`, `-A`) are accepted before or after
the verb, as kubectl accepts them anywhere: they live on a parent parser whose defaults
are SUPPRESSed in subcommands so a value given before the verb is not reset after it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from miniorch.cli.context import Context
from miniorch.cli.errors import CliError, ExitCode

Handler = Callable[[Context, argparse.Namespace], int]

NOT_IMPLEMENTED_EXIT = 2


def _globals_parser(*, suppress: bool) -> argparse.ArgumentParser:
    default: Any = argparse.SUPPRESS if suppress else None
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("global options")
    g.add_argument("--state-dir", metavar="DIR", default=default,
                   help="miniorch's state directory (default: $MINIORCH_HOME or ~/.miniorch)")
    g.add_argument("--kubeconfig", metavar="PATH", default=default,
                   help="kubeconfig to use (default: <state-dir>/kubeconfig)")
    g.add_argument("-n", "--namespace", metavar="NS", default=default,
                   help="the namespace for this request")
    return p


def _all_namespaces(p: argparse.ArgumentParser) -> None:
    p.add_argument("-A", "--all-namespaces", action="store_true",
                   help="list across all namespaces")


def _add(sub: Any, name: str, handler: Handler | None, help_text: str,
         globals_parent: argparse.ArgumentParser, **kwargs: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text,
                                                parents=[globals_parent], **kwargs)
    if handler is not None:
        p.set_defaults(handler=handler)
    return p


def _lazy(module: str, function: str) -> Handler:
    """A handler imported on use: `exec`, `completion`, `up` pull in heavier modules."""

    def handler(ctx: Context, args: argparse.Namespace) -> int:
        import importlib

        fn: Handler = getattr(importlib.import_module(module), function)
        return fn(ctx, args)

    handler.__name__ = function
    return handler


def build_parser() -> argparse.ArgumentParser:
    from miniorch.cli import commands as c

    parent = _globals_parser(suppress=True)
    parser = argparse.ArgumentParser(
        prog="miniorch", parents=[_globals_parser(suppress=False)],
        description="miniorch: a small Kubernetes on one Linux machine "
                    "(kubectl grammar; `image`/`container` for the Docker half)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    # cluster lifecycle
    p = _add(sub, "up", _lazy("miniorch.cli.cluster_cmds", "cmd_up"),
             "start a cluster (foreground unless --detach)", parent)
    p.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    p.add_argument("--no-demo", action="store_true", help="do not deploy the kubia demo")
    p.add_argument("--hollow-nodes", type=int, default=0, metavar="N",
                   help="N more nodes that run no processes and only move their pods "
                        "through Pending → Running → Ready (for scale tests; tainted "
                        "miniorch.io/hollow=true:NoSchedule)")
    p.add_argument("--hollow-profile", default=None, metavar="KEY=VALUE,...",
                   help="hollow pods' timing, e.g. start=0.2-1,ready=0-0.5,fail=0.05,seed=1 "
                        "(also complete, stop, backoff, cpu, memory, pods, taint=0)")
    p.add_argument("--detach", action="store_true",
                   help="run in the background; return once the cluster is Ready")
    p.add_argument("--api-port", type=int, default=6443, help="API server port (default 6443)")
    p.add_argument("--dashboard-port", type=int, default=6444,
                   help="the dashboard's loopback HTTP port (default 6444; 0: any free port)")
    p.add_argument("--sandbox-mode", choices=("auto", "userns", "plain"), default="auto",
                   help="auto (default): root sandboxes as root, else user namespaces, "
                        "else plain processes; or force userns / plain")
    p.add_argument("--lb-cidr", default=None,
                   help="LoadBalancer EXTERNAL-IP pool, loopback (default 127.0.100.0/24)")
    p.add_argument("--service-cidr", default=None,
                   help="ClusterIP range (default 10.96.0.0/16; 127.0.96.0/22 without root)")
    p.add_argument("--node-port-range", default=None, metavar="LOW-HIGH",
                   help="NodePort range (default 30000-32767)")
    p.add_argument("--dns-upstream", action="append", default=None, metavar="IP[:PORT]",
                   help="where cluster DNS forwards names outside the cluster (repeatable; "
                        "default: the host's /etc/resolv.conf; `none`: nowhere, SERVFAIL)")
    _add(sub, "down", _lazy("miniorch.cli.cluster_cmds", "cmd_down"),
         "stop a detached cluster", parent)
    p = _add(sub, "dashboard", _lazy("miniorch.cli.cluster_cmds", "cmd_dashboard"),
             "print (and open) a one-time login link to the dashboard", parent)
    p.add_argument("--no-browser", "--url", dest="no_browser", action="store_true",
                   help="only print the link, do not open a browser")

    p = _add(sub, "cluster-info", c.cmd_cluster_info, "show the control plane's address",
             parent)
    p.add_argument("rest", nargs="*", help=argparse.SUPPRESS)

    # get
    p = _add(sub, "get", c.cmd_get, "display one or many resources", parent)
    p.add_argument("args", nargs="*", metavar="KIND [NAME...]")
    p.add_argument("-o", "--output", help="wide|json|yaml|name|jsonpath=TEMPLATE")
    p.add_argument("-w", "--watch", action="store_true", help="watch for changes")
    p.add_argument("--watch-only", action="store_true", help="watch without listing first")
    p.add_argument("-l", "--selector", help="label selector, e.g. run=kubia")
    p.add_argument("--field-selector", help="field selector, e.g. status.phase=Running")
    p.add_argument("--show-labels", action="store_true", help="add a LABELS column")
    p.add_argument("--no-headers", action="store_true", help="omit the header row")
    p.add_argument("--ignore-not-found", action="store_true")
    p.add_argument("--chunk-size", type=int, default=500, help=argparse.SUPPRESS)
    _all_namespaces(p)

    p = _add(sub, "describe", c.cmd_describe, "show details of resources", parent)
    p.add_argument("args", nargs="+", metavar="KIND [NAME...]")
    p.add_argument("-l", "--selector")
    p.add_argument("--show-events", default="true", help=argparse.SUPPRESS)
    _all_namespaces(p)

    p = _add(sub, "run", c.cmd_run,
             "run an image as a ReplicationController (label run=NAME)", parent)
    p.add_argument("name", metavar="NAME")
    p.add_argument("cmd", nargs="*", metavar="-- COMMAND/ARGS")
    p.add_argument("--image", required=True)
    p.add_argument("--port", type=int)
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("-l", "--labels", help="comma-separated labels (default run=NAME)")
    p.add_argument("--env", action="append", help="KEY=VALUE (repeatable)")
    p.add_argument("--command", action="store_true",
                   help="the arguments after -- are the command, not args")
    p.add_argument("--generator", help=argparse.SUPPRESS)
    p.add_argument("--restart", help=argparse.SUPPRESS)
    p.add_argument("--dry-run", nargs="?", const="client", default=None,
                   help="client: print the object without creating it")
    p.add_argument("-o", "--output")

    for verb, handler, text in (("create", c.cmd_create, "create resources from files"),
                                ("apply", c.cmd_apply,
                                 "apply a configuration (client-side apply)")):
        p = _add(sub, verb, handler, text, parent)
        p.add_argument("-f", "--filename", action="append", metavar="FILE|DIR|-")
        p.add_argument("-R", "--recursive", action="store_true")
        p.add_argument("-o", "--output")
        p.add_argument("--validate", default="strict", help=argparse.SUPPRESS)
        p.add_argument("--save-config", action="store_true", help=argparse.SUPPRESS)
        if verb == "create":
            p.add_argument("args", nargs="*", help="namespace NAME")
        else:
            p.set_defaults(args=[])

    p = _add(sub, "expose", c.cmd_expose, "expose an rc, pod or service as a new Service",
             parent)
    p.add_argument("args", nargs="+", metavar="KIND NAME")
    p.add_argument("--type", help="ClusterIP|NodePort|LoadBalancer")
    p.add_argument("--name", dest="svc_name", help="the new service's name")
    p.add_argument("--port")
    p.add_argument("--target-port")
    p.add_argument("--protocol")
    p.add_argument("--selector")
    p.add_argument("-l", "--labels")

    p = _add(sub, "scale", c.cmd_scale, "set a replication controller's replicas", parent)
    p.add_argument("args", nargs="+", metavar="rc NAME")
    p.add_argument("--replicas", type=int, required=True)
    p.add_argument("--current-replicas", type=int)

    p = _add(sub, "delete", c.cmd_delete, "delete resources", parent)
    p.add_argument("args", nargs="*", metavar="KIND [NAME...]")
    p.add_argument("-f", "--filename", action="append")
    p.add_argument("-R", "--recursive", action="store_true")
    p.add_argument("-l", "--selector")
    p.add_argument("--field-selector")
    p.add_argument("--all", action="store_true")
    p.add_argument("--grace-period", type=int, default=-1)
    p.add_argument("--now", action="store_true", help="--grace-period=1")
    p.add_argument("--force", action="store_true")
    p.add_argument("--wait", type=_bool_flag, nargs="?", const=True, default=True)
    p.add_argument("--timeout", type=float, default=0)
    p.add_argument("--cascade", default="background")
    p.add_argument("--ignore-not-found", action="store_true")
    _all_namespaces(p)

    for verb, handler in (("label", c.cmd_label), ("annotate", c.cmd_annotate)):
        p = _add(sub, verb, handler, f"update the {verb}s of resources", parent)
        p.add_argument("args", nargs="+", metavar="KIND NAME KEY=VAL|KEY-")
        p.add_argument("--overwrite", action="store_true")
        p.add_argument("--all", action="store_true")

    p = _add(sub, "logs", c.cmd_logs, "print a pod's container logs", parent)
    p.add_argument("pod", metavar="POD")
    p.add_argument("-c", "--container")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--tail", type=int, default=-1)
    p.add_argument("--timestamps", action="store_true")
    p.add_argument("-p", "--previous", action="store_true")
    p.add_argument("--since")
    p.add_argument("--limit-bytes", type=int)

    p = _add(sub, "exec", _lazy("miniorch.cli.exec_", "cmd_exec"),
             "run a command in a container", parent)
    p.add_argument("pod", metavar="POD")
    p.add_argument("cmd", nargs="*", metavar="-- COMMAND")
    p.add_argument("-c", "--container")
    p.add_argument("-i", "--stdin", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")

    p = _add(sub, "completion", _lazy("miniorch.cli.completion", "cmd_completion"),
             "print a shell completion script (bash|zsh)", parent)
    p.add_argument("shell", choices=["bash", "zsh"])

    p = _add(sub, "version", c.cmd_version, "print client and server versions", parent)
    p.add_argument("--client", action="store_true")
    p.add_argument("-o", "--output")

    p = _add(sub, "api-resources", c.cmd_api_resources, "list the served resource types",
             parent)
    p.add_argument("--namespaced", choices=["true", "false"])
    p.add_argument("-o", "--output")

    _image_parsers(sub, parent)
    _container_parsers(sub, parent)
    return parser


def _bool_flag(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}")


def _not_implemented(what: str) -> Handler:
    def handler(ctx: Context, args: argparse.Namespace) -> int:
        ctx.err(f"miniorch {what}: not implemented yet\n")
        return NOT_IMPLEMENTED_EXIT

    return handler


def _image_parsers(sub: Any, parent: argparse.ArgumentParser) -> None:
    image = _add(sub, "image", None, "build and manage images (docker's half)", parent)
    isub = image.add_subparsers(dest="image_command", metavar="COMMAND")
    image.set_defaults(handler=_group_help(image))
    p = _add(isub, "build", _lazy("miniorch.cli.image_cmds", "cmd_build"),
             "build an image from a Dockerfile", parent)
    p.add_argument("-t", "--tag", action="append", required=True, help="NAME[:TAG]")
    p.add_argument("-f", "--file", help="Dockerfile path (default DIR/Dockerfile)")
    p.add_argument("context", metavar="DIR")
    p = _add(isub, "ls", _lazy("miniorch.cli.image_cmds", "cmd_ls"), "list images", parent)
    p.add_argument("-q", "--quiet", action="store_true")
    p = _add(isub, "tag", _lazy("miniorch.cli.image_cmds", "cmd_tag"),
             "give an image another name", parent)
    p.add_argument("source")
    p.add_argument("target")
    p = _add(isub, "rm", _lazy("miniorch.cli.image_cmds", "cmd_rm"), "remove images", parent)
    p.add_argument("images", nargs="+")
    p.add_argument("-f", "--force", action="store_true")
    for name, help_text in (("push", "upload an image to a registry"),
                            ("pull", "download an image from a registry")):
        p = _add(isub, name, _lazy("miniorch.cli.image_cmds", f"cmd_{name}"), help_text,
                 parent)
        p.add_argument("--insecure", action="store_true",
                       help="plain HTTP (loopback registries only)")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
        p.add_argument("reference", metavar="NAME[:TAG]")
    p = _add(isub, "login", _lazy("miniorch.cli.image_cmds", "cmd_login"),
             "store credentials for a registry in $MINIORCH_HOME/auth.json", parent)
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password", help="insecure: prefer --password-stdin")
    p.add_argument("--password-stdin", action="store_true")
    p.add_argument("--insecure", action="store_true",
                   help="check the credentials over plain HTTP (loopback only)")
    p.add_argument("registry", metavar="REGISTRY", nargs="?", default="docker.io",
                   help="default: Docker Hub (docker.io), as `docker login`")


def _container_parsers(sub: Any, parent: argparse.ArgumentParser) -> None:
    container = _add(sub, "container", None, "run and manage containers (docker's half)",
                     parent)
    csub = container.add_subparsers(dest="container_command", metavar="COMMAND")
    container.set_defaults(handler=_group_help(container))
    mod = "miniorch.cli.container_cmds"
    p = _add(csub, "run", _lazy(mod, "cmd_run"), "run a command in a new container", parent)
    p.add_argument("--name", help="assign a name to the container")
    p.add_argument("-p", "--publish", action="append", metavar="[IP:]HOST:CONTAINER",
                   help="publish a container port on 127.0.0.1 (repeatable)")
    p.add_argument("-d", "--detach", action="store_true",
                   help="run in the background and print the container ID")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("-e", "--env", action="append", metavar="KEY=VALUE",
                   help="set an environment variable (repeatable)")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")
    for verb in ("ls", "ps"):
        p = _add(csub, verb, _lazy(mod, "cmd_ls"), "list containers", parent)
        p.add_argument("-a", "--all", action="store_true",
                       help="show all containers (default shows just running)")
        p.add_argument("-q", "--quiet", action="store_true", help="only display IDs")
    p = _add(csub, "inspect", _lazy(mod, "cmd_inspect"),
             "display detailed information on containers", parent)
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p = _add(csub, "exec", _lazy(mod, "cmd_exec"), "run a command in a running container",
             parent)
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("-e", "--env", action="append", metavar="KEY=VALUE")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")
    p = _add(csub, "logs", _lazy(mod, "cmd_logs"), "fetch the logs of a container", parent)
    p.add_argument("-f", "--follow", action="store_true", help="follow log output")
    p.add_argument("container", metavar="CONTAINER")
    p = _add(csub, "stop", _lazy(mod, "cmd_stop"), "stop running containers", parent)
    p.add_argument("-t", "--time", type=float, default=10.0,
                   help="seconds to wait after SIGTERM before SIGKILL (default 10)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p = _add(csub, "rm", _lazy(mod, "cmd_rm"), "remove containers", parent)
    p.add_argument("-f", "--force", action="store_true",
                   help="force the removal of a running container (uses SIGKILL)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    _add(csub, "cleanup", _lazy(mod, "cmd_cleanup"),
         "remove what killed container supervisors left (netns, veths, cgroups)", parent)


def _group_help(parser: argparse.ArgumentParser) -> Handler:
    def handler(ctx: Context, args: argparse.Namespace) -> int:
        parser.print_help(ctx.stderr)
        return NOT_IMPLEMENTED_EXIT

    return handler


def make_context(args: argparse.Namespace, *, stdout: IO[str], stderr: IO[str]) -> Context:
    from miniorch.core.settings import default_home

    state_dir = getattr(args, "state_dir", None)
    home = Path(state_dir).expanduser() if state_dir else default_home()
    kubeconfig = getattr(args, "kubeconfig", None)
    return Context(home=home,
                   kubeconfig=Path(kubeconfig).expanduser() if kubeconfig
                   else home / "kubeconfig",
                   namespace_flag=getattr(args, "namespace", None),
                   all_namespaces=bool(getattr(args, "all_namespaces", False)),
                   stdout=stdout, stderr=stderr)


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] | None = None,
         stderr: IO[str] | None = None) -> int:
    """Run one CLI command; returns the process exit code."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(err)
        return NOT_IMPLEMENTED_EXIT
    ctx = make_context(args, stdout=out, stderr=err)
    try:
        return handler(ctx, args)
    except ExitCode as exc:
        return exc.code
    except CliError as exc:
        err.write(exc.render() + "\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `miniorch get pods | head`: the reader went away; exit quietly like kubectl.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
