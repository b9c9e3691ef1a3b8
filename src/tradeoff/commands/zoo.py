"""Zoo stage: a RobustBench model as a classifier JSON of kind ``zoo`` (usable as mixing.accurate/robust)."""

from __future__ import annotations

import argparse
import logging

from ..classifiers import weights_path
from ..io import provenance, save_torch, write_json
from .common import json_arg

log = logging.getLogger("tradeoff")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help="download a RobustBench model once and write it as a classifier")
    p.add_argument("--dataset", required=True, help="cifar10 | cifar100")
    p.add_argument("--name", required=True, help="classifier id in the pipeline")
    p.add_argument("--entry", type=json_arg, required=True,
                   help='the config entry (JSON): {"name": <RobustBench name>, "threat_model": "Linf", '
                        '"sha256": <weights digest> | null, "features": [<module>, <module>] | null}')
    p.add_argument("--model-dir", required=True, help="RobustBench's download cache")
    p.add_argument("--out", required=True, help="classifier JSON; weights go to the same name with .pt")
    p.set_defaults(func=cmd_zoo_fetch)


def cmd_zoo_fetch(args: argparse.Namespace) -> None:
    from ..zoo import DATASETS, INPUT_SHAPE, ZooClassifier, ZooUnavailable, architecture, fetch

    entry = args.entry
    rb_name, threat_model = str(entry["name"]), str(entry.get("threat_model", "Linf"))
    try:
        state, info = fetch(rb_name, args.dataset, threat_model, args.model_dir, entry.get("sha256"))
        model = ZooClassifier(architecture(rb_name, args.dataset, threat_model), entry.get("features"))
    except (ZooUnavailable, ValueError) as exc:
        log.error("%s: %s", args.name, exc)
        raise SystemExit(2) from None
    model.net.load_state_dict(state)
    if not entry.get("sha256"):
        log.warning("%s: no sha256 pinned in the config; this download's weights digest is %s (pin it as "
                    "zoo.models.%s.sha256 to refuse any other weights)", args.name, info["weights_digest"],
                    args.name)
    digest = save_torch(state, weights_path(args.out))
    write_json(args.out, {
        "kind": "zoo", "name": args.name, "dataset": args.dataset, "num_classes": DATASETS[args.dataset],
        "input_shape": list(INPUT_SHAPE), "robustbench": {"name": rb_name, "threat_model": threat_model},
        "features": list(model.feature_names) if model.feature_names else None, "sha256": digest, **info,
        **provenance({"entry": entry, "model_dir": args.model_dir}, None),
    })
    log.info("%s: RobustBench %s (%s, %s), weights digest %s", args.name, rb_name, args.dataset, threat_model,
             info["weights_digest"])
