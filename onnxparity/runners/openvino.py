"""ONNX files in OpenVINO: ``Core().read_model`` reads the file itself, no conversion step.

The model is compiled for the device with its dynamic batch axis kept, and in float32: OpenVINO's
CPU plugin would otherwise pick bfloat16 on CPUs that have it, and parity compares float32 with
float32. ``threads`` caps its inference threads (0: OpenVINO's choice).
"""

from __future__ import annotations

import threading

import numpy as np

from onnxparity.errors import BackendUnavailable, InputError, first_line
from onnxparity.models import ModelRef
from onnxparity.runners import typed_feeds


class OpenVinoRunner:
    def __init__(self, ref: ModelRef, device: str = "cpu", threads: int = 0):
        try:
            import openvino as ov
        except ImportError as exc:
            raise BackendUnavailable(f"openvino cannot be imported ({exc})") from None
        from onnxparity.onnx_model import OnnxModel

        self.model = OnnxModel(ref.path)
        self.path, self.device = ref.path, device.upper()
        self.spec, self.signature = self.model.spec, self.model.signature
        core = ov.Core()
        if self.device not in core.available_devices:
            raise BackendUnavailable(f"OpenVINO {ov.__version__} has no {self.device} device "
                                     f"(available: {', '.join(core.available_devices)})")
        config = {"INFERENCE_PRECISION_HINT": "f32", **({"INFERENCE_NUM_THREADS": int(threads)} if threads else {})}
        try:
            self.compiled = core.compile_model(core.read_model(str(ref.path)), self.device, config)
        except RuntimeError as exc:  # an op or a graph the plugin does not take
            raise InputError(f"{ref.path}: OpenVINO cannot compile it ({first_line(exc, with_type=False)})") from None
        self.request = self.compiled.create_infer_request()
        self._local = threading.local()
        self._outputs = [(name, self.compiled.output(name)) for name in self.signature.output_names]
        self.name = "openvino" if self.device == "CPU" else f"openvino-{self.device}"
        self._version = ov.__version__

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self.request.infer(typed_feeds(self.signature, feeds, self.path))
        return {name: np.array(results[port]) for name, port in self._outputs}

    def run(self, output_names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """As ONNX Runtime's ``session.run``, and as safe from several threads at once (one infer request
        per thread), so that a server can hold this runner in place of a session."""
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        results = request.infer(feeds)
        return [np.array(results[self.compiled.output(name)]) for name in output_names]

    def bind(self, feeds: dict[str, np.ndarray]):
        """One call on this batch, numpy in (shared, not copied) and out, as ``session.run`` is."""
        request = self.request
        feeds = {k: np.ascontiguousarray(v) for k, v in typed_feeds(self.signature, feeds, self.path).items()}
        return lambda: request.infer(feeds, share_inputs=True)

    def details(self) -> dict:
        c = self.compiled
        return {"openvino": self._version, "device": self.device,
                "precision": c.get_property("INFERENCE_PRECISION_HINT").get_type_name(),
                "threads": int(c.get_property("INFERENCE_NUM_THREADS"))}


RUNNERS = {"openvino": OpenVinoRunner}
