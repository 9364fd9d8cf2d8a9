"""ONNX files in ONNX Runtime, on the execution provider asked for (sessions from :mod:`.sessions`)."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from onnxparity.models import ModelRef
from onnxparity.runners import typed_feeds
from onnxparity.runners.sessions import check_started, ort_build, resolve_providers, session_options, session_settings


class OnnxRuntimeRunner:
    """An ONNX file in an ORT session whose first provider is the one asked for (CPU fallback kept).

    ``tuned``: the toolkit's session (options and CPU rewrites; ``rewrites=False``: the options alone)
    instead of plain ORT on the file. A provider missing from the installed build, or one that fails
    to start (ORT then quietly falls back to the next), raises
    :class:`~onnxparity.errors.BackendUnavailable` with the reason instead of running on CPU under a
    GPU label. For the bench: ``provider_options`` go with the first provider, and ``io_binding``
    keeps a bound batch and its outputs on the GPU.
    """

    def __init__(self, ref: ModelRef, providers: list[str] | None = None, intra_op_threads: int = 0,
                 spinning: bool = True, tuned: bool = False, rewrites: bool | None = None,
                 nchwc_block: int | None = None, provider_options: dict | None = None, io_binding: bool = False):
        from onnxparity.onnx_model import OnnxModel

        wanted: list = resolve_providers(providers)
        self.name = "onnxruntime" if wanted[0] == "CPUExecutionProvider" else f"onnxruntime-{wanted[0]}"
        if provider_options:
            wanted[0] = (wanted[0], provider_options)
        self.model = OnnxModel(ref.path)
        self.path = ref.path
        self.providers = wanted
        self.io_binding = io_binding
        self.session = self.model.session(wanted, session_options(intra_op_threads, spinning), tuned=tuned,
                                          rewrites=rewrites, nchwc_block=nchwc_block)
        check_started(self.session, wanted)
        self.spec = self.model.spec
        self.signature = self.model.signature

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = self.signature.output_names
        return dict(zip(names, self.session.run(names, typed_feeds(self.signature, feeds, self.path))))

    def bind(self, feeds: dict[str, np.ndarray]):
        """One call on this batch, for timing: ``session.run`` on numpy; with ``io_binding`` the batch
        and preallocated outputs live on the GPU, so a call is the graph alone."""
        session = self.session
        feeds = {k: np.ascontiguousarray(v) for k, v in typed_feeds(self.signature, feeds, self.path).items()}
        if not self.io_binding:
            return lambda: session.run(None, feeds)
        import onnxruntime as ort

        probe = session.run(None, {k: v[:1] if self.signature.batched else v for k, v in feeds.items()})
        n = len(next(iter(feeds.values())))
        binding = session.io_binding()
        keep = []
        for name, x in feeds.items():
            keep.append(ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
            binding.bind_ortvalue_input(name, keep[-1])
        for t, y in zip(self.signature.outputs, probe):
            shape = [n, *y.shape[1:]] if self.signature.batched else list(y.shape)
            keep.append(ort.OrtValue.ortvalue_from_shape_and_type(shape, y.dtype, "cuda", 0))
            binding.bind_ortvalue_output(t.name, keep[-1])

        def run(binding=binding, keep=keep):  # the device buffers live as long as the callable
            session.run_with_iobinding(binding)
            binding.synchronize_outputs()
            return keep[-1]

        return run

    def node_placement(self, feeds: dict[str, np.ndarray]) -> dict[str, int]:
        """How many graph nodes ran on each provider, from ORT's profiler, for one run of ``feeds``."""
        with tempfile.TemporaryDirectory(prefix="onnxparity-profile-") as tmp:
            session = self.model.session(self.providers, session_options(1, False),
                                         profile_prefix=str(Path(tmp) / "ort"))
            session.run(None, typed_feeds(self.signature, feeds, self.path))
            trace = json.loads(Path(session.end_profiling()).read_text())
        counts: Counter[str] = Counter()
        seen = set()
        for event in trace:
            args = event.get("args") or {}
            if event.get("cat") == "Node" and "provider" in args and event["name"] not in seen:
                seen.add(event["name"])
                counts[args["provider"]] += 1
        return dict(counts)

    def details(self) -> dict:
        return {"onnxruntime": ort_build(), "providers": self.session.get_providers(),
                "settings": session_settings(self.session)}

    @property
    def configuration(self) -> dict:
        """Everything that decides this session's outputs: two runners that agree on it compute the
        same numbers (a tuned session no rewrite applied to, with the plain one's options, is the plain one)."""
        return {"path": str(self.path), "providers": self.providers, **self.details()}


RUNNERS = {"onnxruntime": OnnxRuntimeRunner}
