"""`image build|ls|tag|rm|push|pull|login`: Docker's grammar and output over `miniorch.images`.

The image store lives at `<state-dir>/images` (the same one the nodes run pods from),
so `image build -t kubia sample_app` then `run kubia --image=kubia` works without a
registry.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from miniorch.cli.context import Context
from miniorch.cli.errors import CliError
from miniorch.cli.tabwriter import TabWriter

if TYPE_CHECKING:
    from miniorch.images import ImageStore
    from miniorch.images.progress import TransferProgress


def _store(ctx: Context) -> ImageStore:
    from miniorch.images.errors import ImageError
    from miniorch.images.regconfig import open_store

    try:
        return open_store(ctx.home)
    except ImageError as exc:  # a malformed registries.json / auth.json
        raise CliError(str(exc)) from None


def human_size(size: float) -> str:
    """go-units HumanSizeWithPrecision(size, 3): decimal units, 3 significant digits."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.3g}{units[i]}"


def human_duration(seconds: float) -> str:
    """go-units HumanDuration (docker's CREATED column, before " ago")."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def _created(text: str) -> str:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return "N/A"
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return human_duration((datetime.now(UTC) - when).total_seconds()) + " ago"


def _image_error(exc: Exception) -> CliError:
    return CliError(str(exc))


def cmd_build(ctx: Context, args: argparse.Namespace) -> int:
    from miniorch.images import ImageError, build

    store = _store(ctx)
    tags: list[str] = list(args.tag)
    context = Path(args.context)
    dockerfile = args.file or "Dockerfile"
    if args.file and Path(args.file).is_absolute():
        try:
            dockerfile = str(Path(args.file).resolve().relative_to(context.resolve()))
        except ValueError:
            raise CliError(f"the Dockerfile ({args.file}) must be inside the build context"
                           ) from None
    try:
        image = build(store, context, tag=tags[0], dockerfile=dockerfile,
                      progress=lambda line: ctx.out(line + "\n"))
        for extra in tags[1:]:
            store.tag(image.id, extra)
            ctx.out(f"Successfully tagged {extra}\n")
    except ImageError as exc:
        raise _image_error(exc) from None
    return 0


def cmd_ls(ctx: Context, args: argparse.Namespace) -> int:
    rows = _store(ctx).list()
    if args.quiet:
        seen: list[str] = []
        for row in rows:
            short = row.id.removeprefix("sha256:")[:12]
            if short not in seen:
                seen.append(short)
        ctx.out("".join(f"{s}\n" for s in seen))
        return 0
    # docker's table writer: minwidth 10, padding 3
    writer = TabWriter(minwidth=10, padding=3)
    writer.write("REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\n")
    for row in rows:
        writer.write(f"{row.repository}\t{row.tag}\t{row.id.removeprefix('sha256:')[:12]}\t"
                     f"{_created(row.created)}\t{human_size(row.size)}\n")
    ctx.out(writer.flush())
    return 0


def cmd_tag(ctx: Context, args: argparse.Namespace) -> int:
    from miniorch.images import ImageError

    try:
        _store(ctx).tag(args.source, args.target)
    except ImageError as exc:
        raise _image_error(exc) from None
    return 0


def cmd_rm(ctx: Context, args: argparse.Namespace) -> int:
    from miniorch.containers import ContainerEngine
    from miniorch.images import ImageError

    store = _store(ctx)
    engine = ContainerEngine(ctx.home, images=store)
    failed = False
    for ref in args.images:
        try:
            for line in store.remove(ref, force=args.force,
                                     in_use=lambda image: engine.image_in_use(image.id)):
                ctx.out(line + "\n")
        except ImageError as exc:
            ctx.err(f"Error response from daemon: {exc}\n")
            failed = True
    return 1 if failed else 0


def _transfer_progress(ctx: Context, quiet: bool) -> TransferProgress:
    """Docker's per-layer bars on a terminal, one line per status change otherwise."""
    from miniorch.images.progress import BarRenderer, LineRenderer, no_progress

    if quiet:
        return no_progress
    if ctx.stdout.isatty():
        return BarRenderer(ctx.stdout)
    return LineRenderer(ctx.out)


def cmd_push(ctx: Context, args: argparse.Namespace) -> int:
    import time

    from miniorch.images import ImageError, parse_reference, registry
    from miniorch.images.regconfig import load_config

    store = _store(ctx)
    try:
        config = load_config(ctx.home)
        ref = parse_reference(args.reference)
        where = config.locate(ref)
        if where is not None and not args.quiet:
            ctx.out(f"The push refers to repository [{where[0]}/{where[1]}]\n")
        began = time.monotonic()
        result = registry.push(store, args.reference, insecure=args.insecure, config=config,
                               progress=_transfer_progress(ctx, args.quiet))
    except ImageError as exc:
        raise _image_error(exc) from None
    took = time.monotonic() - began
    ctx.out(f"{result.reference.tag}: digest: {result.digest} size: {result.size}\n")
    if not args.quiet:
        ctx.err(f"pushed {len(result.uploaded)} blobs, {len(result.existing)} already there, "
                f"{len(result.mounted)} mounted in {took:.2f}s\n")
    return 0


def cmd_pull(ctx: Context, args: argparse.Namespace) -> int:
    from miniorch.images import ImageError, parse_reference, registry
    from miniorch.images.regconfig import load_config

    store = _store(ctx)
    try:
        config = load_config(ctx.home)
        ref = parse_reference(args.reference)
        before = store.resolve(str(ref))
        if not args.quiet and ref.digest is None:
            ctx.out(f"{ref.tag}: Pulling from {ref.familiar_repository}\n")
        image = registry.pull(store, ref, insecure=args.insecure, config=config,
                              progress=_transfer_progress(ctx, args.quiet))
    except ImageError as exc:
        raise _image_error(exc) from None
    if not args.quiet:
        fresh = before is None or before.manifest.digest != image.manifest.digest
        ctx.out(f"Digest: {image.manifest.digest}\n")
        ctx.out(f"Status: {'Downloaded newer image' if fresh else 'Image is up to date'} "
                f"for {ref.familiar}\n")
    ctx.out(f"{ref}\n")
    return 0


def cmd_login(ctx: Context, args: argparse.Namespace) -> int:
    """Check the credentials against the registry's `/v2/`, then store them (0600)."""
    import getpass
    import sys

    from miniorch.images import ImageError
    from miniorch.images.reference import DEFAULT_DOMAIN
    from miniorch.images.regconfig import (
        DOCKER_HUB_HOST,
        Credentials,
        is_loopback,
        load_config,
        registry_key,
        save_auth,
    )
    from miniorch.images.registry import RegistryClient

    registry_host = registry_key(args.registry)
    # Docker Hub's credentials are checked where its API lives (and stored under
    # Docker's key for it, https://index.docker.io/v1/).
    check_host = DOCKER_HUB_HOST if registry_host == DEFAULT_DOMAIN else registry_host
    username = args.username
    if username is None:
        if not sys.stdin.isatty() or args.password_stdin:
            raise CliError("login: --username is required when not on a terminal")
        username = input("Username: ")
    if args.password_stdin:
        if args.password:
            raise CliError("login: --password and --password-stdin are mutually exclusive")
        password = sys.stdin.read().rstrip("\r\n")
    elif args.password is not None:
        ctx.err("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
        password = args.password
    else:
        password = getpass.getpass("Password: ")
    if not username or not password:
        raise CliError("login: username and password must not be empty")
    creds = Credentials(username, password)
    try:
        config = load_config(ctx.home)
        if config.offline and not is_loopback(check_host):
            raise CliError(f"login: offline (MINIORCH_OFFLINE): not contacting {check_host}")
        client = RegistryClient(check_host,
                                insecure=args.insecure or config.is_insecure(check_host),
                                auth=creds)
        try:
            resp = client.request("GET", "/v2/", scope="")
        finally:
            client.close()
        if resp.status != 200:
            raise client.fail(resp, f"login to {registry_host}")
    except ImageError as exc:
        raise CliError(f"Error response from registry: {exc}") from None
    path = save_auth(ctx.home, registry_host, creds)
    ctx.out(f"Credentials stored in {path} (unencrypted; mode 0600)\nLogin Succeeded\n")
    return 0
