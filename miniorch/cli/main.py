"""`miniorch`: argparse grammar, global options and dispatch.

    argv ─► build_parser(verb_of(argv)) ─► Namespace ─► Context(state dir, kubeconfig, namespace)
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


def _cmd(function: str, module: str = "miniorch.cli.commands") -> Handler:
    """A handler imported when it runs: a command imports only its own module (and
    `up`, `exec`, `container run` pull in much heavier ones than `get`)."""

    def handler(ctx: Context, args: argparse.Namespace) -> int:
        import importlib

        fn: Handler = getattr(importlib.import_module(module), function)
        return fn(ctx, args)

    handler.__name__ = function
    return handler


Sub = Any
"""argparse's subparsers action (its type is private)."""


def _up(sub: Sub, parent: argparse.ArgumentParser) -> None:
    p = _add(sub, "up", _cmd("cmd_up", "miniorch.cli.cluster_cmds"),
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


def _down(sub: Sub, parent: argparse.ArgumentParser) -> None:
    _add(sub, "down", _cmd("cmd_down", "miniorch.cli.cluster_cmds"),
         "stop a detached cluster", parent)


def _dashboard(sub: Sub, parent: argparse.ArgumentParser) -> None:
    p = _add(sub, "dashboard", _cmd("cmd_dashboard", "miniorch.cli.cluster_cmds"),
             "print (and open) a one-time login link to the dashboard", parent)
    p.add_argument("--no-browser", "--url", dest="no_browser", action="store_true",
                   help="only print the link, do not open a browser")


def _cluster_info(sub: Sub, parent: argparse.ArgumentParser) -> None:
    p = _add(sub, "cluster-info", _cmd("cmd_cluster_info"),
             "show the control plane's address", parent)
    p.add_argument("rest", nargs="*", help=argparse.SUPPRESS)


def _get(sub: Sub, parent: argparse.ArgumentParser) -> None:
    p = _add(sub, "get", _cmd("cmd_get"), "display one or many resources", parent)
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


def _describe(sub: Sub, parent: argparse.ArgumentParser) -> None:
    p = _add(sub, "describe", _cmd("cmd_describe"), "show details of resources", parent)
    p.add_argument("args", nargs="+", metavar="KIND [NAME...]")
    p.add_argument("-l", "--selector")
    p.add_argument("--show-events", default="true", help=argparse.SUPPRESS)
    _all_namespaces(p)


def _run(sub: Sub, parent: argparse.ArgumentParser) -> None:
    p = _add(sub, "run", _cmd("cmd_run"),
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


def _create_or_apply(verb: str, text: str) -> Callable[[Sub, argparse.ArgumentParser], None]:
    def add(sub: Sub, parent: argparse.ArgumentParser) -> None:
        p = _add(sub, verb, _cmd(f"cmd_{verb}"), text, parent)
        p.add_argument("-f", "--filename", action="append", metavar="FILE|DIR|-")
        p.add_argument("-R", "--recursive", action="store_true")
        p.add_argument("-o", "--output")
        p.add_argument("--validate", default="strict", help=argparse.SUPPRESS)
        p.add_argument("--save-config", action="store_true", help=argparse.SUPPRESS)
        if verb == "create":
            p.add_argument("args", nargs="*", help="namespace NAME")
        else:
            p.set_defaults(args=[])

    return add


def _expose(sub: Sub, parent: argparse.ArgumentParser) -> None:
    p = _add(sub, "expose", _cmd("cmd_expose"),
             "expose an rc, pod or service as a new Service", parent)
    p.add_argument("args", nargs="+", metavar="KIND NAME")
    p.add_argument("--type", help="ClusterIP|NodePort|LoadBalancer")
    p.add_argument("--name", dest="svc_name", help="the new service's name")
    p.add_argument("--port")
    p.add_argument("--target-port")
    p.add_argument("--protocol")
    p.add_argument("--selector")
    p.add_argument("-l", "--labels")


def _scale(sub: Sub, parent: argparse.ArgumentParser) -> None:
    p = _add(sub, "scale", _cmd("cmd_scale"), "set a replication controller's replicas",
             parent)
    p.add_argument("args", nargs="+", metavar="rc NAME")
    p.add_argument("--replicas", type=int, required=True)
    p.add_argument("--current-replicas", type=int)


def _delete(sub: Sub, parent: argparse.ArgumentParser) -> None:
    p = _add(sub, "delete", _cmd("cmd_delete"), "delete resources", parent)
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


def _label_or_annotate(verb: str) -> Callable[[Sub, argparse.ArgumentParser], None]:
    def add(sub: Sub, parent: argparse.ArgumentParser) -> None:
        p = _add(sub, verb, _cmd(f"cmd_{verb}"), f"update the {verb}s of resources", parent)
        p.add_argument("args", nargs="+", metavar="KIND NAME KEY=VAL|KEY-")
        p.add_argument("--overwrite", action="store_true")
        p.add_argument("--all", action="store_true")

    return add


def _logs(sub: Sub, parent: argparse.ArgumentParser) -> None:
    p = _add(sub, "logs", _cmd("cmd_logs"), "print a pod's container logs", parent)
    p.add_argument("pod", metavar="POD")
    p.add_argument("-c", "--container")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--tail", type=int, default=-1)
    p.add_argument("--timestamps", action="store_true")
    p.add_argument("-p", "--previous", action="store_true")
    p.add_argument("--since")
    p.add_argument("--limit-bytes", type=int)


def _exec(sub: Sub, parent: argparse.ArgumentParser) -> None:
    p = _add(sub, "exec", _cmd("cmd_exec", "miniorch.cli.exec_"),
             "run a command in a container", parent)
    p.add_argument("pod", metavar="POD")
    p.add_argument("cmd", nargs="*", metavar="-- COMMAND")
    p.add_argument("-c", "--container")
    p.add_argument("-i", "--stdin", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")


def _completion(sub: Sub, parent: argparse.ArgumentParser) -> None:
    p = _add(sub, "completion", _cmd("cmd_completion", "miniorch.cli.completion"),
             "print a shell completion script (bash|zsh)", parent)
    p.add_argument("shell", choices=["bash", "zsh"])


def _version(sub: Sub, parent: argparse.ArgumentParser) -> None:
    p = _add(sub, "version", _cmd("cmd_version", "miniorch.cli.version"),
             "print client and server versions", parent)
    p.add_argument("--client", action="store_true")
    p.add_argument("-o", "--output")


def _api_resources(sub: Sub, parent: argparse.ArgumentParser) -> None:
    p = _add(sub, "api-resources", _cmd("cmd_api_resources"),
             "list the served resource types", parent)
    p.add_argument("--namespaced", choices=["true", "false"])
    p.add_argument("-o", "--output")


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
    p = _add(isub, "build", _cmd("cmd_build", "miniorch.cli.image_cmds"),
             "build an image from a Dockerfile", parent)
    p.add_argument("-t", "--tag", action="append", required=True, help="NAME[:TAG]")
    p.add_argument("-f", "--file", help="Dockerfile path (default DIR/Dockerfile)")
    p.add_argument("context", metavar="DIR")
    p = _add(isub, "ls", _cmd("cmd_ls", "miniorch.cli.image_cmds"), "list images", parent)
    p.add_argument("-q", "--quiet", action="store_true")
    p = _add(isub, "tag", _cmd("cmd_tag", "miniorch.cli.image_cmds"),
             "give an image another name", parent)
    p.add_argument("source")
    p.add_argument("target")
    p = _add(isub, "rm", _cmd("cmd_rm", "miniorch.cli.image_cmds"), "remove images", parent)
    p.add_argument("images", nargs="+")
    p.add_argument("-f", "--force", action="store_true")
    for name, help_text in (("push", "upload an image to a registry"),
                            ("pull", "download an image from a registry")):
        p = _add(isub, name, _cmd(f"cmd_{name}", "miniorch.cli.image_cmds"), help_text,
                 parent)
        p.add_argument("--insecure", action="store_true",
                       help="plain HTTP (loopback registries only)")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
        p.add_argument("reference", metavar="NAME[:TAG]")
    p = _add(isub, "login", _cmd("cmd_login", "miniorch.cli.image_cmds"),
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
    p = _add(csub, "run", _cmd("cmd_run", mod), "run a command in a new container", parent)
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
        p = _add(csub, verb, _cmd("cmd_ls", mod), "list containers", parent)
        p.add_argument("-a", "--all", action="store_true",
                       help="show all containers (default shows just running)")
        p.add_argument("-q", "--quiet", action="store_true", help="only display IDs")
    p = _add(csub, "inspect", _cmd("cmd_inspect", mod),
             "display detailed information on containers", parent)
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p = _add(csub, "exec", _cmd("cmd_exec", mod), "run a command in a running container",
             parent)
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("-e", "--env", action="append", metavar="KEY=VALUE")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")
    p = _add(csub, "logs", _cmd("cmd_logs", mod), "fetch the logs of a container", parent)
    p.add_argument("-f", "--follow", action="store_true", help="follow log output")
    p.add_argument("container", metavar="CONTAINER")
    p = _add(csub, "stop", _cmd("cmd_stop", mod), "stop running containers", parent)
    p.add_argument("-t", "--time", type=float, default=10.0,
                   help="seconds to wait after SIGTERM before SIGKILL (default 10)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p = _add(csub, "rm", _cmd("cmd_rm", mod), "remove containers", parent)
    p.add_argument("-f", "--force", action="store_true",
                   help="force the removal of a running container (uses SIGKILL)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    _add(csub, "cleanup", _cmd("cmd_cleanup", mod),
         "remove what killed container supervisors left (netns, veths, cgroups)", parent)


def _group_help(parser: argparse.ArgumentParser) -> Handler:
    def handler(ctx: Context, args: argparse.Namespace) -> int:
        parser.print_help(ctx.stderr)
        return NOT_IMPLEMENTED_EXIT

    return handler


# Every verb's parser, in `miniorch --help` order: only the verb on the command line is
# built (argparse spends ~0.3 ms per sub-parser, mostly in gettext lookups).
VERBS: dict[str, Callable[[Sub, argparse.ArgumentParser], None]] = {
    "up": _up, "down": _down, "dashboard": _dashboard, "cluster-info": _cluster_info,
    "get": _get, "describe": _describe, "run": _run,
    "create": _create_or_apply("create", "create resources from files"),
    "apply": _create_or_apply("apply", "apply a configuration (client-side apply)"),
    "expose": _expose, "scale": _scale, "delete": _delete,
    "label": _label_or_annotate("label"), "annotate": _label_or_annotate("annotate"),
    "logs": _logs, "exec": _exec, "completion": _completion, "version": _version,
    "api-resources": _api_resources,
    "image": _image_parsers, "container": _container_parsers,
}
_VALUED_GLOBALS = ("--state-dir", "--kubeconfig", "-n", "--namespace")


def verb_of(argv: Sequence[str]) -> str | None:
    """The verb in `argv` (global options may come first), or None when there is none
    or it is unknown: then the whole grammar is built, for help or argparse's error."""
    tokens = iter(argv)
    for token in tokens:
        if token in _VALUED_GLOBALS:
            next(tokens, None)
        elif not token.startswith("-"):
            return token if token in VERBS else None
        elif token in ("-h", "--help", "--"):
            return None
    return None


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The grammar of `verb` alone (all of it when None): `main` builds only what the
    command line names, so a command pays for one sub-parser, not forty."""
    parent = _globals_parser(suppress=True)
    parser = argparse.ArgumentParser(
        prog="miniorch", parents=[_globals_parser(suppress=False)],
        description="miniorch: a small Kubernetes on one Linux machine "
                    "(kubectl grammar; `image`/`container` for the Docker half)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, add in VERBS.items():
        if verb is None or name == verb:
            add(sub, parent)
    return parser


def make_context(args: argparse.Namespace, *, stdout: IO[str], stderr: IO[str]) -> Context:
    from miniorch.core.home import default_home

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
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(verb_of(argv))
    args = parser.parse_args(argv)
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
