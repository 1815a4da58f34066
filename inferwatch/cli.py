"""The `inferwatch` command: one subcommand per part, imported only when used.

Lazy imports keep `inferwatch generate` and `inferwatch exporter` free of torch start-up cost.
Each subcommand module provides `add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> help; the code is inferwatch/commands/<name>.py
COMMANDS: dict[str, str] = {
    "serve": "run the OpenAI-compatible service",
    "engine": "run the engine alone on a sample workload",
    "exporter": "standalone GPU/host exporter",
    "generate": "write (or --check) the generated rules, configs and docs",
    "bench": "load generator for any OpenAI-compatible server, per-priority figures",
    "stack": "stack up: service, exporter, Prometheus and Alertmanager on loopback",
    "report": "a picture of an incident window, drawn from Prometheus (PNG + HTML)",
}


def _usage() -> str:
    lines = ["usage: inferwatch COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, help_ in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"inferwatch: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"inferwatch.commands.{name}")
    parser = argparse.ArgumentParser(prog=f"inferwatch {name}", description=COMMANDS[name])
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
