"""`provision`: the technician's command line (python -m provisioning).

One error boundary: a ProvisionError prints `provision: <message>` on stderr and exits 1; the commands
close their connection to the board on every path (commands.py), so nothing is left open.
"""

from __future__ import annotations

import sys
from typing import TextIO

from provisioning import batch, commands, sync
from provisioning.cli import build_parser
from provisioning.errors import ProvisionError

HANDLERS = {"list": commands.do_list, "device": commands.do_device, "batch": batch.do_batch, "sync": sync.do_sync}


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        args = build_parser().parse_args(argv)
        return HANDLERS[args.command](args, out)
    except ProvisionError as exc:
        print(f"provision: {exc}", file=err, flush=True)
        return 1
    except KeyboardInterrupt:
        print("provision: interrupted", file=err, flush=True)
        return 1
