"""The article's PyTorch Net, trained natively with its ``train()`` / ``test()`` loop.

Checkpoint folder: the article's ``model.pth`` and ``optimizer.pth`` state dicts, ``spec.json``
and ``history.json`` (epochs done, metrics). Resuming rebuilds Net and SGD and loads both state
dicts, as the article's ``continued_network`` does, so momentum carries over.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from onnxparity._io import atomic_path, write_text
from onnxparity.data import Digits, load_digits
from onnxparity.models import checkpoint
from onnxparity.models.config import preset
from onnxparity.models.torch_io import load_state
from onnxparity.signature import BATCH, Signature, TensorSpec
from onnxparity.spec import ModelSpec

MODEL_FILE = "model.pth"
OPTIMIZER_FILE = "optimizer.pth"
MEAN, STD = 0.1307, 0.3081

SPEC = ModelSpec(name="torch_net", framework="torch", input_shape=(1, 28, 28), layout="NCHW",
                 scale=1.0 / 255.0, mean=MEAN, std=STD, output="log_probabilities",
                 architecture="onnxparity.models.torch_net:Net",
                 signature=Signature((TensorSpec("input", "float32", (BATCH, 1, 28, 28)),),
                                     (TensorSpec("log_probabilities", "float32", (BATCH, 10)),)))


class Net(nn.Module):
    """The article's network, layer for layer (``log_softmax(dim=1)`` is the one modern fix)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.view(-1, 320)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, training=self.training)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


class DigitsDataset(torch.utils.data.Dataset):
    """Raw digits seen through the article's torchvision transforms.

    The transforms are deterministic (no augmentation), so each digit is transformed once up
    front instead of once per epoch: the same tensors, 40% less training time here.
    """

    def __init__(self, digits: Digits):
        import torchvision

        transform = torchvision.transforms.Compose(
            [torchvision.transforms.ToTensor(), torchvision.transforms.Normalize((MEAN,), (STD,))]
        )
        self.inputs = torch.stack([transform(image) for image in digits.images])
        self.targets = torch.from_numpy(digits.labels)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.inputs[i], self.targets[i]


def loader(digits: Digits, batch_size: int, shuffle: bool, seed: int = 1) -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(DigitsDataset(digits), batch_size=batch_size, shuffle=shuffle,
                                       generator=generator)


def train_epoch(network, optimizer, train_loader, epoch: int, log_interval: int, loss_fn=F.nll_loss) -> None:
    """The article's ``train(epoch)``; ``loss_fn`` fits the model's output kind (NLL for log-probabilities)."""
    network.train()
    n = len(train_loader.dataset)
    for batch_idx, (data, target) in enumerate(train_loader):
        optimizer.zero_grad()
        output = network(data)
        loss = loss_fn(output, target)
        loss.backward()
        optimizer.step()
        if log_interval and batch_idx % log_interval == 0:
            seen = batch_idx * len(data)
            print(f"Train Epoch: {epoch} [{seen}/{n} ({100.0 * batch_idx / len(train_loader):.0f}%)]"
                  f"\tLoss: {loss.item():.6f}", flush=True)


def test(network, test_loader, loss_fn=F.nll_loss) -> tuple[float, float]:
    """The article's ``test()``: average loss (summed NLL / n) and accuracy."""
    network.eval()
    test_loss, correct = 0.0, 0
    with torch.no_grad():
        for data, target in test_loader:
            output = network(data)
            test_loss += loss_fn(output, target, reduction="sum").item()
            correct += int(output.argmax(dim=1).eq(target).sum())
    n = len(test_loader.dataset)
    test_loss /= n
    print(f"\nTest set: Avg. loss: {test_loss:.4f}, Accuracy: {correct}/{n} ({100.0 * correct / n:.0f}%)\n",
          flush=True)
    return test_loss, correct / n


def train(out_dir: str | Path, data: str | None = None, epochs: int | None = None, preset_name: str = "default",
          resume: bool = False, n_train: int | None = None, log_interval: int | None = None) -> dict:
    """Train (or resume) the article's Net into ``out_dir``; returns a summary with test accuracy.

    Both state dicts are saved at the end of every epoch (:mod:`onnxparity.models.checkpoint`),
    so an interrupt keeps the finished epochs and ``resume`` continues from them exactly.
    """
    out = Path(out_dir)
    config = preset("torch", preset_name)
    done, to_run = checkpoint.start(out, MODEL_FILE, resume, epochs, config.epochs)
    config = config.with_overrides(epochs=to_run, log_interval=log_interval)
    torch.manual_seed(config.seed)  # the initial weights
    train_digits = load_digits(data, "train").head(n_train)
    train_loader = loader(train_digits, config.batch_size, shuffle=True, seed=config.seed)
    test_loader = loader(load_digits(data, "test"), config.test_batch_size, shuffle=False)

    network = Net()
    optimizer = torch.optim.SGD(network.parameters(), lr=config.learning_rate, momentum=config.momentum)
    if resume:
        network.load_state_dict(load_state(out / MODEL_FILE))
        optimizer.load_state_dict(load_state(out / OPTIMIZER_FILE))
    planned = done + config.epochs
    summary = {"framework": "torch", "checkpoint": str(out / MODEL_FILE), "epochs_done": done,
               "epochs_planned": planned, "train_digits": len(train_loader.dataset),
               "test_digits": len(test_loader.dataset), "config": config.__dict__}

    def write_weights() -> None:
        for obj, name in ((network, MODEL_FILE), (optimizer, OPTIMIZER_FILE)):
            with atomic_path(out / name) as tmp:
                torch.save(obj.state_dict(), tmp)

    started = time.perf_counter()
    try:
        for epoch in range(done + 1, planned + 1):
            # Seeding per epoch makes a resumed run repeat an uninterrupted one exactly.
            torch.manual_seed(config.seed + epoch)
            train_loader.generator.manual_seed(config.seed + epoch)
            train_epoch(network, optimizer, train_loader, epoch, config.log_interval)
            loss, accuracy = test(network, test_loader)
            summary.update(epochs_done=epoch, test_loss=loss, test_accuracy=accuracy,
                           train_seconds=round(time.perf_counter() - started, 2))
            checkpoint.save_epoch(out, write_weights, SPEC.with_classes(train_digits.class_names), summary)
    except KeyboardInterrupt as exc:
        raise checkpoint.interrupted(exc, out, "torch", summary["epochs_done"], planned) from None
    return summary


def loss_for(output: str):
    """The article's NLL loss for a model's output kind: log-probabilities as they are, probabilities
    through a log, logits through log-softmax (cross-entropy)."""
    if output == "log_probabilities":
        return F.nll_loss
    if output == "probabilities":
        return lambda p, target, reduction="mean": F.nll_loss(torch.log(p.clamp_min(1e-12)), target, reduction=reduction)
    return F.cross_entropy


def train_from(src: str | Path, out: str | Path, data: str | None = None, epochs: int | None = None,
               preset_name: str = "default", n_train: int | None = None, log_interval: int | None = None,
               trust=None) -> dict:
    """Continue training any PyTorch checkpoint folder (a migrated one too) with the article's loop.

    The module is rebuilt from the folder's spec (``architecture``), fed through the spec's own
    preprocessing, trained with the preset's SGD for ``epochs`` (default 1) more epochs; the optimizer's
    state carries over when the folder has a fitting ``optimizer.pth``. ``out`` gets a complete folder.
    """
    import shutil

    from onnxparity._io import atomic_dir
    from onnxparity.trust import is_file_architecture
    from onnxparity.models.torch_io import load_module

    src, out = Path(src), Path(out)
    spec = ModelSpec.load(src)
    config = preset("torch", preset_name).with_overrides(log_interval=log_interval)
    config = config.with_overrides(epochs=epochs or 1)
    train_digits, test_digits = load_digits(data, "train").head(n_train), load_digits(data, "test")
    network = load_module(src / MODEL_FILE, spec.architecture, kwargs=spec.torch_kwargs, trust=trust)
    _check_classifier(network, spec, spec.preprocess(test_digits.images[:2]))
    optimizer = torch.optim.SGD(network.parameters(), lr=config.learning_rate, momentum=config.momentum)
    if (src / OPTIMIZER_FILE).is_file():
        try:
            optimizer.load_state_dict(load_state(src / OPTIMIZER_FILE))
        except (ValueError, KeyError, RuntimeError):
            pass  # another optimizer's state (or another model's): start SGD afresh
    done = _epochs_done(src)
    torch.manual_seed(config.seed)
    train_loader = _spec_loader(spec, train_digits, config.batch_size, shuffle=True, seed=config.seed)
    test_loader = _spec_loader(spec, test_digits, config.test_batch_size, shuffle=False)
    loss_fn = loss_for(spec.output)

    started = time.perf_counter()
    for epoch in range(done + 1, done + config.epochs + 1):
        torch.manual_seed(config.seed + epoch)
        train_loader.generator.manual_seed(config.seed + epoch)
        train_epoch(network, optimizer, train_loader, epoch, config.log_interval, loss_fn)
        loss, accuracy = test(network, test_loader, loss_fn)
    seconds = time.perf_counter() - started

    summary = {
        "framework": "torch", "from": str(src), "checkpoint": str(out / MODEL_FILE), "epochs_done": done + config.epochs,
        "train_digits": len(train_digits), "test_digits": len(test_digits), "test_loss": loss,
        "test_accuracy": accuracy, "train_seconds": round(seconds, 2), "config": config.__dict__,
    }
    with atomic_dir(out) as folder:
        if is_file_architecture(spec.architecture or ""):
            shutil.copy2(src / spec.architecture[2:].partition(":")[0], folder)
        torch.save(network.state_dict(), folder / MODEL_FILE)
        torch.save(optimizer.state_dict(), folder / OPTIMIZER_FILE)
        spec.save(folder)
        write_text(folder / checkpoint.HISTORY_FILE, json.dumps(summary, indent=2) + "\n")
    return summary


def _check_classifier(network, spec: ModelSpec, sample) -> None:
    from onnxparity.errors import InputError

    network.eval()
    with torch.no_grad():
        out = network(torch.from_numpy(sample))
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[1] != len(spec.labels):
        raise InputError(f"{spec.name}: train continues single-output classifiers of {len(spec.labels)} classes; "
                         "this model returns something else")


def _spec_loader(spec: ModelSpec, digits: Digits, batch_size: int, shuffle: bool, seed: int = 1):
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(spec.preprocess(digits.images)),
                                             torch.from_numpy(digits.labels.astype("int64")))
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       generator=torch.Generator().manual_seed(seed))


def _epochs_done(folder: Path) -> int:
    try:
        return int(json.loads((folder / checkpoint.HISTORY_FILE).read_text()).get("epochs_done", 0))
    except (FileNotFoundError, ValueError, AttributeError):
        return 0
