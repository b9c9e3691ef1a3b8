# The data stage's constants, paths and helpers (its rules: workflow/rules/data.smk).


def dataset_params(dataset):
    """The `data` section of `dataset`, with the download settings of the torchvision datasets."""
    section = dict(config["data"].get(dataset, {}))
    if dataset in ("mnist", "cifar10", "cifar100"):
        section.update(root=config["data"]["root"], download=config["data"]["download"])
    return section
