"""`inferwatch serve`: the OpenAI-compatible service on uvicorn (one process, one worker).

One process on purpose: the engine owns the accelerator, and prometheus-client's multiprocess
mode supports neither custom collectors nor exemplars. Every flag can also come from
INFERWATCH_<NAME> (e.g. INFERWATCH_PORT); a flag given on the command line wins.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from inference.settings import ENV_PREFIX, Settings

log = logging.getLogger("inferwatch.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = ENV_PREFIX
    add = parser.add_argument
    # Defaults are None so "not given" falls through to the environment, then Settings.
    add("--host", help=f"bind address (default 127.0.0.1; {env}HOST)")
    add("--port", type=int, help=f"port (default 8000; {env}PORT)")
    add("--model-path", help=f"local Hugging Face Llama checkpoint dir ({env}MODEL_PATH)")
    add("--device", choices=["cpu", "cuda"], help=f"default cpu ({env}DEVICE)")
    add(
        "--dtype",
        choices=["float32", "float16", "bfloat16"],
        help=f"default float32 ({env}DTYPE)",
    )
    add("--num-kv-blocks", type=int, help=f"KV cache blocks ({env}NUM_KV_BLOCKS)")
    add("--max-num-seqs", type=int, help=f"max running sequences (default 64; {env}MAX_NUM_SEQS)")
    add("--max-waiting", type=int, help=f"queue bound (default 256; {env}MAX_WAITING)")
    add("--model-name", help=f"served model name ({env}MODEL_NAME)")
    add(
        "--log-prompts",
        action="store_true",
        default=None,
        help=f"put prompt and completion text in logs and spans ({env}LOG_PROMPTS)",
    )
    add(
        "--no-telemetry",
        dest="telemetry",
        action="store_false",
        default=None,
        help=f"no metrics observation, tracing or instrumentation ({env}TELEMETRY=0)",
    )
    add("--log-level", help=f"default info ({env}LOG_LEVEL)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    given: dict[str, Any] = {k: v for k, v in vars(args).items() if v is not None}
    return Settings.resolve(given)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from inference.api.app import create_app
    from inference.telemetry.logs import configure_logging

    try:
        settings = settings_from_args(args)
        configure_logging(settings.log_level)
        app = create_app(settings)
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
