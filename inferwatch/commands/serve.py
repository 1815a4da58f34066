"""`inferwatch serve`: the OpenAI-compatible service on uvicorn (one process, one worker).

One process on purpose: the engine owns the accelerator, and prometheus-client's multiprocess
mode supports neither custom collectors nor exemplars. Every flag can also come from
INFERWATCH_<NAME> (e.g. INFERWATCH_PORT); a flag given on the command line wins.
"""

from __future__ import annotations

import argparse
import logging
import sys

from inference.settings import Settings, option_fields
from inferwatch.commands.options import add_options, given

log = logging.getLogger("inferwatch.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, option_fields())


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings.resolve(given(args, option_fields()))


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from inference.api.app import build_app
    from inference.service import build_service
    from inference.telemetry.logs import configure_logging

    try:
        settings = settings_from_args(args)
        configure_logging(settings.log_level)
        app = build_app(build_service(settings))
    except (ValueError, OSError) as exc:  # bad setting, missing checkpoint, no CUDA device
        print(f"inferwatch serve: {exc}", file=sys.stderr)
        return 2
    log.info(
        "serving",
        extra={
            "fields": {
                "host": settings.host,
                "port": settings.port,
                "model": app.state.backend.model_name,
            }
        },
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        workers=1,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return 0
