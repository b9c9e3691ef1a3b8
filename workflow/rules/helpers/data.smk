# The data stage's constants, paths and helpers (its rules: workflow/rules/data.smk).


TORCHVISION_DATASETS = ("mnist", "cifar10", "cifar100")
DOWNLOAD_MANIFEST = f"{config['data']['root']}/{{dataset}}/download.json"  # the data-download stage's output


def download_manifest(dataset):
    """The data-download stage's manifest of a torchvision dataset (none for the embedded and synthetic data)."""
    if dataset in TORCHVISION_DATASETS:
        return [DOWNLOAD_MANIFEST.format(dataset=dataset)]
    return []


def dataset_params(dataset):
    """The `data` section of `dataset`, with the download settings of the torchvision datasets."""
    section = dict(config["data"].get(dataset, {}))
    if dataset in TORCHVISION_DATASETS:
        section.update(root=config["data"]["root"], download=config["data"]["download"])
    return section
