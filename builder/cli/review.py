"""Review a build by hand, like the paper: healthy synthetics, automatic masks, lesion maps and semantic images.

Serves a keyboard-driven page on 127.0.0.1 (`builder.published.review.server`); every decision is
appended and fsynced to one CSV (id,decision,criterion,reviewer,note,time) before the page moves on,
so killing the server, the browser or the machine loses nothing. `build --decisions FILE` honours it.
`--flags-only` writes the automatic flags as CSV and exits without serving.
"""
from __future__ import annotations

import argparse
import getpass
from pathlib import Path

from builder.cli.common import add_build_out, layout_of


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--version", required=True, help="the built version to review, e.g. 1.1")
    add_build_out(p)
    p.add_argument("--decisions", type=Path, default=None,
                   help="decisions CSV to append to (default: <build-out>/.review/<version>.csv, outside the "
                        "work folder a rebuild may reset); pass it to `build --decisions`")
    p.add_argument("--reviewer", default=None, help="your name in the decisions file (default: the login name)")
    p.add_argument("--port", type=int, default=8765, help="port to serve on (0: any free port; default: %(default)s)")
    p.add_argument("--host", default=None,
                   help="serve on this interface instead of 127.0.0.1; a random token is then required on "
                        "every request (printed in the URL)")
    p.add_argument("--all", action="store_true", dest="all_items",
                   help="every lesion map and semantic image (default: a seeded sample of --sample each)")
    p.add_argument("--sample", type=int, default=50, help="sample size for lesion maps and semantic images")
    p.add_argument("--seed", type=int, default=0, help="seed of that sample (default: %(default)s)")
    p.add_argument("--flags-only", action="store_true",
                   help="write the automatic flags as CSV (id,queue,flag,value,threshold,fired) and exit")
    p.add_argument("--flags-out", type=Path, default=None,
                   help="where --flags-only writes (default: <build-out>/.work/<version>/review_flags.csv)")


def run(args: argparse.Namespace) -> int:
    from builder.core.errors import ConfigError
    from builder.core.progress import say
    from builder.published.review.queues import Queues, flags_csv

    layout = layout_of(args)
    if args.sample < 1 or not 0 <= args.port <= 65535:
        raise ConfigError(f"--sample {args.sample} must be >= 1 and --port {args.port} in 0-65535")
    queues = Queues(layout.work, sample=args.sample, seed=args.seed, all_items=args.all_items)
    if args.flags_only:
        out = args.flags_out or layout.work / "review_flags.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        text = flags_csv(queues)
        out.write_text(text)
        fired = sum(line.endswith(",1") for line in text.splitlines())
        print(f"{fired} flags fired over {sum(len(v) for v in queues.items.values())} items -> {out}")
        return 0
    return serve(args, layout, queues, say)


def serve(args: argparse.Namespace, layout, queues, say) -> int:
    from builder.published.review.server import Review, make_server

    decisions = args.decisions or layout.root / ".review" / f"{layout.version}.csv"
    reviewer = args.reviewer or getpass.getuser() or "reviewer"
    review = Review(queues, decisions, reviewer)
    server, url = make_server(review, host=args.host, port=args.port)
    counts = ", ".join(f"{q} {len(v)}" for q, v in queues.items.items())
    say(f"reviewing v{layout.version} ({counts}) as {reviewer}; decisions -> {decisions}")
    print(f"open {url}  (Ctrl-C stops; every decision is already on disk)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print(f"stopped; build with: python -m builder build --version {layout.version} --decisions {decisions}")
    return 0
