"""`image build|ls|tag|rm`: Docker's grammar and output over `miniorch.images`.

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


def _store(ctx: Context) -> ImageStore:
    from miniorch.images import ImageStore

    return ImageStore(ctx.home / "images")


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
    from miniorch.images import ImageError

    store = _store(ctx)
    failed = False
    for ref in args.images:
        try:
            for line in store.remove(ref, force=args.force):
                ctx.out(line + "\n")
        except ImageError as exc:
            ctx.err(f"Error response from daemon: {exc}\n")
            failed = True
    return 1 if failed else 0
