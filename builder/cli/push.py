"""Push a built version to the Hugging Face Hub: one commit of the manifest's files, tagged v<version>.

The token is read from HF_TOKEN or `hf auth login` and never printed. A tag that already exists
with other content is refused (published versions are immutable). --dry-run prints the plan.
"""
from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_OUT = "out"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--version", required=True, help="version to push, e.g. 1.1 (tag v1.1)")
    p.add_argument("--repo-id", required=True, help="target dataset repo, ORG/NAME")
    p.add_argument("--out", default=DEFAULT_OUT, help="build output root holding <version>/ (default: %(default)s)")
    p.add_argument("--folder", default=None, help="the built version folder itself (overrides --out)")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--dry-run", action="store_true", help="print the planned operations, change nothing")


def run(args: argparse.Namespace) -> int:
    from builder.published.push import PublishError, push_version

    if args.repo_id.count("/") != 1:
        raise PublishError(f"--repo-id {args.repo_id!r} must be ORG/NAME, e.g. my-lab/cgddi")
    from builder.core.layout import check_version_name

    check_version_name(args.version)
    folder = Path(args.folder) if args.folder else Path(args.out) / args.version
    plan = push_version(folder, args.version, args.repo_id, private=args.private, dry_run=args.dry_run)
    if args.dry_run:
        from builder.core.progress import say

        lines = plan.describe(args.private)
        say("dry run: planned operations", *lines)
        print(f"dry run: {len(lines)} planned operations for {args.repo_id}; nothing was changed")
    else:
        print(f"pushed {len(plan.files)} files to {args.repo_id} at tag {plan.tag} "
              f"(commit {plan.tag_commit}); load with "
              f"datasets.load_dataset({args.repo_id!r}, revision={plan.tag!r})")
    return 0
