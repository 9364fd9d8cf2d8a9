"""PyTorch models of other shapes for the "any model" tests, importable by --torch-class."""

from __future__ import annotations

import dataclasses

import torch
import torch.utils._pytree


class TwoInTwoOut(torch.nn.Module):
    """Two named inputs (an image and a feature vector) and two outputs (class logits and a score)."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.meta = torch.nn.Linear(5, width)
        self.head = torch.nn.Linear(4 + width, 6)
        self.score = torch.nn.Linear(4 + width, 1)

    def forward(self, image, meta):
        pooled = torch.relu(self.conv(image)).mean(dim=(2, 3))
        h = torch.cat([pooled, torch.relu(self.meta(meta))], dim=1)
        return self.head(h), torch.sigmoid(self.score(h))


class TokenClassifier(torch.nn.Module):
    """Integer token ids (batch, seq) -> class logits, through an embedding table of 50 rows."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(50, 8)
        self.out = torch.nn.Linear(8, 4)

    def forward(self, ids):
        return self.out(self.embed(ids).mean(dim=1))


# A small ViT (torchvision's VisionTransformer at the size of timm's vit_tiny, on 64-pixel images).
VIT_KWARGS = {"image_size": 64, "patch_size": 8, "num_layers": 6, "num_heads": 3, "hidden_dim": 192, "mlp_dim": 768,
              "num_classes": 10}


def save_torch_state(kind: str, path) -> None:
    """A torch model of ``kind`` with seeded random weights, saved as a state dict."""
    import torchvision

    torch.manual_seed(0)
    module = {"two_io": lambda: TwoInTwoOut(width=6), "tokens": TokenClassifier,
              "mobilenet": lambda: torchvision.models.mobilenet_v3_small(num_classes=10),
              "lstm": SequenceRegressor, "casts": CastsToFloat32, "resnet18": lambda: torchvision.models.resnet18(num_classes=10),
              "vit": lambda: torchvision.models.VisionTransformer(**VIT_KWARGS), "fixed_length": FixedLengthTokens}[kind]()
    if kind == "vit":  # torchvision starts the head at zero: every logit 0, nothing to compare
        torch.nn.init.normal_(module.heads.head.weight, std=0.02)
    torch.save(module.state_dict(), path)


class SequenceRegressor(torch.nn.Module):
    """A float sequence (batch, 12, 5) through a two-layer LSTM -> 3 regression values (element-wise)."""

    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(5, 16, num_layers=2, batch_first=True)
        self.out = torch.nn.Linear(16, 3)

    def forward(self, x):
        return self.out(self.lstm(x)[0][:, -1])


class CastsToFloat32(torch.nn.Module):
    """Casts its input to float32 itself (as defensive user code does): no float64 run is possible."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(6, 4)

    def forward(self, x):
        return self.linear(x.to(torch.float32))


class FixedLengthTokens(torch.nn.Module):
    """Token ids (batch, seq) with position embeddings from ``int(seq)``: any length in PyTorch, but
    an exporter tracing the Python int freezes the length (the static export of pytorch #157621)."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(50, 8)
        self.position = torch.nn.Embedding(64, 8)
        self.out = torch.nn.Linear(8, 4)

    def forward(self, ids):
        positions = torch.arange(int(ids.shape[1]))
        return self.out((self.embed(ids) + self.position(positions)).mean(dim=1))


def save_and_convert(kind: str, pth, onnx_path, **convert_options) -> None:
    """:func:`save_torch_state`, then ``onnxparity convert`` of the saved file, in one process."""
    from onnxparity.convert import convert

    save_torch_state(kind, pth)
    convert(str(pth), str(onnx_path), **convert_options)


@dataclasses.dataclass
class TagScores:
    """A model's outputs as a class, as transformers' ModelOutput: an ExportedProgram returning it loads
    only where this module (which registers it with torch's pytree) is imported."""

    logits: torch.Tensor
    features: torch.Tensor


torch.utils._pytree.register_dataclass(TagScores, serialized_type_name="tests.torch_models.TagScores")


class Tagger(torch.nn.Module):
    """Features (batch, 6) -> TagScores(logits (batch, 3), features (batch, 8))."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(6, 8)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.body(x))
        return TagScores(logits=self.head(h), features=h)


def save_tagger_program(path) -> None:
    """The Tagger, seeded, exported with a dynamic batch and saved as an ExportedProgram (``.pt2``)."""
    torch.manual_seed(0)
    program = torch.export.export(Tagger().eval(), (torch.randn(2, 6),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(path))


class MBConv(torch.nn.Module):
    """EfficientNet's inverted residual: expand 1x1, depthwise 3x3, squeeze-and-excite, project 1x1."""

    def __init__(self, channels: int, expand: int = 4):
        super().__init__()
        wide = channels * expand
        self.expand = torch.nn.Sequential(torch.nn.Conv2d(channels, wide, 1, bias=False), torch.nn.BatchNorm2d(wide),
                                          torch.nn.SiLU())
        self.depthwise = torch.nn.Sequential(torch.nn.Conv2d(wide, wide, 3, padding=1, groups=wide, bias=False),
                                             torch.nn.BatchNorm2d(wide), torch.nn.SiLU())
        self.squeeze = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Conv2d(wide, channels // 2, 1),
                                           torch.nn.SiLU(), torch.nn.Conv2d(channels // 2, wide, 1), torch.nn.Sigmoid())
        self.project = torch.nn.Sequential(torch.nn.Conv2d(wide, channels, 1, bias=False), torch.nn.BatchNorm2d(channels))

    def forward(self, x):
        h = self.depthwise(self.expand(x))
        return x + self.project(h * self.squeeze(h))


class TinyEfficientNet(torch.nn.Module):
    """An EfficientNet-like CNN (3x64x64 -> 10 logits): a strided stem, three MBConv blocks, a 1x1 head."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False),
                                        torch.nn.BatchNorm2d(16), torch.nn.SiLU())
        self.blocks = torch.nn.Sequential(MBConv(16), MBConv(16), MBConv(16))
        self.head = torch.nn.Sequential(torch.nn.Conv2d(16, 64, 1), torch.nn.SiLU(), torch.nn.AdaptiveAvgPool2d(1),
                                        torch.nn.Flatten(), torch.nn.Linear(64, 10))

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


def save_with_inputs(kind: str, folder) -> None:
    """A model of ``kind`` (``vit`` or ``efficientnet``) with seeded random weights and running statistics,
    saved as ``model.pth``, with ``images.npz``: 96 seeded images, preprocessed, to calibrate and judge on."""
    import numpy as np

    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    if kind == "vit":
        save_torch_state("vit", folder / "model.pth")
        side = VIT_KWARGS["image_size"]
    else:
        model = TinyEfficientNet()
        for m in model.modules():  # statistics a wrong conversion would show
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
        torch.save(model.state_dict(), folder / "model.pth")
        side = 64
    pixels = np.random.default_rng(0).integers(0, 256, (96, 3, side, side)).astype(np.float32)
    np.savez(folder / "images.npz", input=((pixels / 255 - 0.45) / 0.225).astype(np.float32))
