"""``chexplain view DIR``: browse a result folder (explain, compare, audit, demo) in the
browser (:mod:`chexplain.view`)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "view", help="browse a result folder (explain, compare, audit, demo) in the browser",
        description="Serve a local web viewer over a result folder of chexplain explain, "
                    "compare, audit or demo. The folder is only read. Ctrl-C stops the server.")
    p.add_argument("dir", metavar="DIR", help="the result folder (e.g. runs/demo)")
    p.add_argument("--port", type=int, default=8765,
                   help="port to serve on (default 8765; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1, this machine only)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.set_defaults(func=cmd_view)


def cmd_view(args: argparse.Namespace) -> int:
    from ..view.server import ViewOptions, serve
    from .allocator import return_freed_memory

    return_freed_memory()  # a server that holds little: its memory follows what it holds
    serve(args.dir, ViewOptions(host=args.host, port=args.port), open_browser=not args.no_browser)
    return 0
