import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _threads():
    # The CI machine has 2 cores; more threads only add contention.
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread (and OMP_NUM_THREADS=1 for subprocesses) for a test module of many small ops: on a busy
    2-core machine a second OpenMP thread mostly spins waiting for the first (measured: 105 s vs 13 s for the effdet
    parity file under load). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before, env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
    if env is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = env


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def image_folder(tmp_path):
    from data_writers import write_image_folder

    return write_image_folder(tmp_path / "shapes")


@pytest.fixture
def cifar_dir(tmp_path):
    from data_writers import write_cifar10

    return write_cifar10(tmp_path / "cifar-10-batches-py")


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """One run of each task, trained for one batch on tiny synthetic data in its true format: for the commands that
    take a checkpoint. ``{"classify": run folder, "detect": …, "sequence": …, "data": {task: data path}}``."""
    from backbonekit.cli import main
    from backbonekit.detection.synth import synthesize_shapes
    from backbonekit.sequence.synth import synthesize_seqdeepfake
    from data_writers import write_image_folder

    root = tmp_path_factory.mktemp("tiny_runs")
    data = {"classify": write_image_folder(root / "folder", per_class=4, size=16),
            "detect": root / "shapes", "sequence": root / "seqdeepfake"}
    synthesize_shapes(data["detect"], "coco", num_images=6, seed=0, image_size=(64, 64))
    synthesize_seqdeepfake(data["sequence"], "facial_components", num_images=12, seed=0, image_size=32)
    fast = ["--epochs", "1", "--batch-size", "4", "--limit-train-batches", "1", "--limit-val-batches", "1",
            "--progress", "lines", "--out", str(root / "runs"), "--name", "t"]
    commands = {"classify": ["--model", "resnet18", "--image-size", "16"],
                "detect": ["--image-size", "64", "--warmup-epochs", "0"],
                "sequence": ["--backbone", "resnet18", "--image-size", "32"]}
    runs = {"data": data}
    for task, options in commands.items():
        assert main(["train", task, "--data", str(data[task]), *options, *fast]) == 0
        runs[task] = root / "runs" / task / "t"
    return runs
