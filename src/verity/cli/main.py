"""``verity`` entry point.

Each sub-command lives in its own module of :mod:`verity.cli` exposing ``register(subparsers)``;
modules import nothing heavy at top level so that ``verity --help`` is instant.

Exit codes: 0 success; 1 internal error; 2 usage error; 3 one or more inputs could not be read
(the others are still processed); 4 a required optional dependency or data is missing;
130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from verity.exit_codes import (  # noqa: F401  (re-exported for the sub-commands)
    EXIT_ERROR,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_MISSING,
    EXIT_OK,
    EXIT_USAGE,
)

#: sub-command modules, in the order ``--help`` lists them
COMMANDS = (
    "analyze", "scan", "demo", "detectors", "eval", "train", "corpus", "lab", "index", "identity", "provenance", "watermark", "serve",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


#: the arguments being parsed, so that sub-commands can skip costly set-up when not invoked
CURRENT_ARGV: list[str] = []


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    from verity import __version__

    CURRENT_ARGV[:] = list(sys.argv[1:] if argv is None else argv)

    p = _Parser(
        prog="verity",
        description="Offline deepfake and synthetic-media forensics: is this image authentic, "
        "AI-generated, edited or face-manipulated, and where?",
        epilog="Exit codes: 0 ok, 1 internal error, 2 usage error, 3 some inputs unreadable, "
        "4 missing optional dependency or data, 5 `verify --require` not met, 130 interrupted.",
    )
    p.add_argument("--version", action="version", version=f"verity {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"verity.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"verity.cli.{name}":
                continue  # sub-command not built yet
            raise
        mod.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    from verity.core.errors import VerityError

    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        sys.stderr.write("verity: interrupted\n")
        return EXIT_INTERRUPTED
    except VerityError as e:
        sys.stderr.write(f"verity {args.command}: {e}\n")
        return getattr(e, "exit_code", EXIT_ERROR)
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    # run the imported module's main, not this __main__ copy's: sub-commands read CURRENT_ARGV from
    # verity.cli.main, which would otherwise be a second, empty module object
    from verity.cli.main import main as _imported_main

    raise SystemExit(_imported_main())
