"""One module per `inferwatch` subcommand, each with `add_arguments(parser)` and `run(args)`."""
