"""ONNX files in ONNX Runtime, on the execution providers asked for."""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from onnxparity.backends import provider_name
from onnxparity.errors import BackendUnavailable, InputError
from onnxparity.machine import physical_cores
from onnxparity.models import ModelRef


def resolve_providers(names: list[str] | None) -> list[str]:
    """The providers for a session, in order: aliases expanded (``"cuda"``), TensorRT backed by CUDA
    where the build has it (as ORT advises), the CPU last for the nodes an accelerator cannot take.

    Raises :class:`BackendUnavailable` naming a provider the installed build lacks; ORT itself would
    only warn and run on the CPU under the accelerator's name.
    """
    from onnxparity.gpu import prepare_onnxruntime

    prepare_onnxruntime(names)  # CUDA libraries in before ORT's first import, where a GPU is asked for
    import onnxruntime as ort

    wanted = [provider_name(p) for p in (names or ["CPUExecutionProvider"])]
    available = ort.get_available_providers()
    missing = [p for p in wanted if p not in available]
    if missing:
        raise BackendUnavailable(f"{ort_build()} has no {', '.join(missing)} (available: {', '.join(available)})")
    if wanted[0] == "TensorrtExecutionProvider" and "CUDAExecutionProvider" in available \
            and "CUDAExecutionProvider" not in wanted:
        wanted.insert(1, "CUDAExecutionProvider")
    if "CPUExecutionProvider" not in wanted:
        wanted.append("CPUExecutionProvider")
    return wanted


def check_started(session, wanted) -> None:
    """Raise :class:`BackendUnavailable` when ORT quietly fell back from the first provider asked for."""
    first, started = _provider_of(wanted[0]), session.get_providers()[0]
    if started != first:
        raise BackendUnavailable(f"{first} is in {ort_build()} but did not start (session fell back to {started})")


def make_session(path: str | os.PathLike, providers: list[str] | None = None, sess_options=None, *,
                 tuned: bool = False, nchwc_block: int | None = None, profile_prefix: str | None = None):
    """The one place where the toolkit creates ONNX Runtime sessions (through :class:`~onnxparity.onnx_model.OnnxModel`).

    Plain by default: ORT on the file as it is, as Triton's ORT backend or a user's own session runs
    it; that is what parity judges. ``tuned`` gives whatever the caller left at ORT's defaults the
    toolkit's measured settings (:func:`tune_options`) and, on the CPU, the exact rewrites of
    :mod:`~onnxparity.runners.cpu_graph` for ``nchwc_block`` (this CPU's by default), listed in the
    session's ``graph_rewrites``; the file is not changed. Serve and bench use it (docs/bench.md).
    ``profile_prefix`` turns on ORT's profiler, whose trace names the provider each node ran on.
    """
    providers = providers or ["CPUExecutionProvider"]
    if _provider_of(providers[0]) in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        preload_cuda_libraries()
    import onnxruntime as ort

    source, rewrites = str(path), []
    if tuned:
        sess_options = tune_options(sess_options)
        source, rewrites = _cpu_rewritten(path, providers, nchwc_block)
    if profile_prefix is not None:
        sess_options = sess_options or ort.SessionOptions()
        sess_options.enable_profiling = True
        sess_options.profile_file_prefix = profile_prefix
    try:
        session = ort.InferenceSession(source, sess_options=sess_options, providers=providers)
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
        raise InputError(f"{path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:200]})") from None
    session.graph_rewrites = rewrites  # what cpu_graph changed, for reports
    return session


def _provider_of(entry) -> str:
    """A providers-list entry's name: ``"CUDAExecutionProvider"`` or ``("CUDAExecutionProvider", {...})``."""
    return entry[0] if isinstance(entry, tuple) else entry


def preload_cuda_libraries() -> None:
    """See :func:`onnxparity.gpu.preload_cuda_libraries` (torch's CUDA libraries, then ORT's preload)."""
    from onnxparity.gpu import preload_cuda_libraries as preload

    preload()


def _cpu_rewritten(path, providers, block: int | None = None) -> tuple[str | bytes, list[str]]:
    """The model with :mod:`~onnxparity.runners.cpu_graph`'s exact rewrites when CPU runs it first.

    Returns the path unchanged (ORT reads the file itself) when nothing applies, the provider is
    not the CPU, the file keeps its weights outside (external data) or onnx cannot parse it (then
    ORT's own error is the one reported).
    """
    if _provider_of(providers[0]) != "CPUExecutionProvider":
        return str(path), []
    import onnx

    from onnxparity.runners.cpu_graph import rewrite_for_cpu

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - not a readable ONNX file: let ORT say why
        return str(path), []
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        return str(path), []
    rewrites = rewrite_for_cpu(model, block)
    return (model.SerializeToString(), rewrites) if rewrites else (str(path), [])


def tune_options(options=None):
    """The toolkit's session settings, applied only where ``options`` holds ORT's defaults.

    - intra-op threads: one per physical core this process may use, a cgroup CPU quota included
      (ORT's own default cannot see a container's quota and then oversubscribes it);
    - graph optimisation stays ``ORT_ENABLE_ALL``: on CPU it rewrites Conv/MaxPool into MLAS's
      blocked NCHWc kernels and folds a Keras graph's NHWC->NCHW transposes into the reorders
      (``ORT_ENABLE_EXTENDED`` keeps plain NCHW Conv: 0.77-0.96x on the Keras CNN in 8 of 9 rows);
    - bounded spinning: idle intra-op threads spin at most 1 ms (backing off) before they sleep.
      Side by side with ORT's default session it measured 0.87-1.19x, median 1.00 (19 rows,
      load 1.3-5.2 on 2 cores), where no spinning at all ranged 0.73-3.3x and one thread
      0.54-3.2x with the neighbours' load: the choice that never swings far.
    The measurements are in docs/bench.md.
    """
    import onnxruntime as ort

    options = options or ort.SessionOptions()
    if options.intra_op_num_threads == 0:
        options.intra_op_num_threads = physical_cores()
    if not _has_entry(options, "session.intra_op.allow_spinning") and \
            not _has_entry(options, "session.intra_op.spin_duration_us"):
        for key, value in SPIN_SETTINGS.items():
            options.add_session_config_entry(key, value)
    return options


# Bounded spinning (ORT 1.26+ reads these; older versions ignore unknown entries).
SPIN_SETTINGS = {"session.intra_op.spin_duration_us": "1000", "session.intra_op.spin_backoff_max": "8"}


def _has_entry(options, key: str) -> bool:
    try:
        options.get_session_config_entry(key)
        return True
    except Exception:  # noqa: BLE001 - ORT raises when the entry was never set
        return False


def ort_build() -> str:
    """Which onnxruntime distribution is installed, e.g. ``"onnxruntime-gpu 1.31.1"``."""
    from importlib import metadata

    import onnxruntime as ort

    for dist in ("onnxruntime-gpu", "onnxruntime", "onnxruntime-openvino", "onnxruntime-directml"):
        try:
            metadata.version(dist)
            return f"{dist} {ort.__version__}"
        except metadata.PackageNotFoundError:
            continue
    return f"onnxruntime {ort.__version__}"


def _options(intra_op_threads: int = 0, spinning: bool = True):
    """Session options: intra-op threads (0: ORT's choice) and whether idle threads spin.

    Spinning wins latency when a session has the cores to itself and wastes them when it shares
    (the parity matrix runs several workers at once), so parity turns it off.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


class OnnxRuntimeRunner:
    """An ONNX file in an ORT session whose first provider is the one asked for (CPU fallback kept).

    ``tuned``: the toolkit's serving session (options and CPU rewrites) instead of plain ORT on the
    file. A provider missing from the installed build, or one that fails to start (ORT then quietly
    falls back to the next), raises :class:`BackendUnavailable` with the reason instead of running
    on CPU under a GPU label.
    """

    def __init__(self, ref: ModelRef, providers: list[str] | None = None, intra_op_threads: int = 0,
                 spinning: bool = True, tuned: bool = False, nchwc_block: int | None = None):
        from onnxparity.onnx_model import OnnxModel

        wanted = resolve_providers(providers)
        self.model = OnnxModel(ref.path)
        self.path = ref.path
        self.providers = wanted
        self.session = self.model.session(wanted, _options(intra_op_threads, spinning), tuned=tuned,
                                          nchwc_block=nchwc_block)
        check_started(self.session, wanted)
        self.spec = self.model.spec
        self.signature = self.model.signature
        self._dtypes = {t.name: np.dtype(t.dtype) for t in self.signature.inputs}
        self.name = "onnxruntime" if wanted[0] == "CPUExecutionProvider" else f"onnxruntime-{wanted[0]}"

    def feed(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Inputs by name, each cast to the dtype the graph declares."""
        missing = [n for n in self._dtypes if n not in feeds]
        if missing:
            raise InputError(f"{self.path}: no data for input {', '.join(missing)} (given: {', '.join(feeds)})")
        return {n: np.asarray(feeds[n]).astype(dt, copy=False) for n, dt in self._dtypes.items()}

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = self.signature.output_names
        return dict(zip(names, self.session.run(names, self.feed(feeds))))

    def node_placement(self, feeds: dict[str, np.ndarray]) -> dict[str, int]:
        """How many graph nodes ran on each provider, from ORT's profiler, for one run of ``feeds``."""
        with tempfile.TemporaryDirectory(prefix="onnxparity-profile-") as tmp:
            session = self.model.session(self.providers, _options(1, False), profile_prefix=str(Path(tmp) / "ort"))
            session.run(None, self.feed(feeds))
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
        d = {"onnxruntime": ort_build(), "providers": self.session.get_providers()}
        if self.session.graph_rewrites:
            d["graph_rewrites"] = self.session.graph_rewrites
        return d
