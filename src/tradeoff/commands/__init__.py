"""Command-line subcommands, one module per pipeline stage; each defines ``register(subparsers)``."""

MODULES = [
    "tradeoff.commands.core",
    "tradeoff.commands.figures",
    "tradeoff.commands.era",
    "tradeoff.commands.certify",
    "tradeoff.commands.mixing",
    "tradeoff.commands.probabilistic",
    "tradeoff.commands.theory",
    "tradeoff.commands.zoo",
    "tradeoff.commands.claims",
    "tradeoff.commands.readme",
    "tradeoff.commands.points",
    "tradeoff.commands.download",
    "tradeoff.commands.resources",
]

# Which module defines each subcommand (lets the CLI import only the stage a job runs; a subcommand
# missing here still works, at the cost of importing every module).
COMMANDS = {
    "prepare-data": "tradeoff.commands.core", "train": "tradeoff.commands.core",
    "evaluate": "tradeoff.commands.core", "evaluate-merge": "tradeoff.commands.core",
    "summarize": "tradeoff.commands.core",
    "check-env": "tradeoff.commands.core", "figure": "tradeoff.commands.figures",
    "robustness": "tradeoff.commands.era", "era-composite-spec": "tradeoff.commands.era",
    "era-composite": "tradeoff.commands.era", "certify-shard": "tradeoff.commands.certify",
    "certify-merge": "tradeoff.commands.certify", "mix-spec": "tradeoff.commands.mixing",
    "fit-mixnet": "tradeoff.commands.mixing", "adaptive-eval": "tradeoff.commands.mixing",
    "robust-margins": "tradeoff.commands.mixing", "mix-temperatures": "tradeoff.commands.mixing",
    "certify-prob": "tradeoff.commands.probabilistic",
    "certify-prob-merge": "tradeoff.commands.probabilistic", "theory-evaluate": "tradeoff.commands.theory",
    "zoo-fetch": "tradeoff.commands.zoo", "worst": "tradeoff.commands.core", "sanity": "tradeoff.commands.core",
    "claims": "tradeoff.commands.claims", "readme": "tradeoff.commands.readme",
    "merge-points": "tradeoff.commands.points", "download": "tradeoff.commands.download",
    "resources": "tradeoff.commands.resources",
}
