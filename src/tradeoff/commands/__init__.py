"""Command-line subcommands, one module per pipeline stage; each defines ``register(subparsers)``."""

MODULES = [
    "tradeoff.commands.core",
    "tradeoff.commands.figures",
]
