"""ONNX Runtime sessions: the one place the toolkit creates them, below the runners and the file's facade.

:func:`make_session` opens a file (plain, or the toolkit's ``tuned`` session); :func:`resolve_providers`
turns the providers asked for into the list a session takes and says which the installed build
lacks; :func:`check_started` catches ORT quietly falling back to the CPU. The ONNX Runtime runner
(:mod:`onnxparity.runners.onnxruntime`), :class:`~onnxparity.onnx_model.OnnxModel`, serve, locate,
migrate and quantize all open their sessions here.
"""

from __future__ import annotations

import os

from onnxparity.errors import BackendUnavailable, InputError, first_line
from onnxparity.gpu import NVIDIA_PROVIDERS
from onnxparity.machine import physical_cores

# Short names for the execution providers; any other full name works too.
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "dml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
}
# Bounded spinning (ORT 1.26+ reads these; older versions ignore unknown entries).
SPIN_SETTINGS = {"session.intra_op.spin_duration_us": "1000", "session.intra_op.spin_backoff_max": "8"}


def provider_name(name: str) -> str:
    """``"cuda"`` -> ``"CUDAExecutionProvider"``; full names pass through."""
    return PROVIDER_ALIASES.get(name.lower(), name)


def short_provider(provider: str) -> str:
    return provider.replace("ExecutionProvider", "").lower()


def resolve_providers(names: list[str] | None) -> list[str]:
    """The providers for a session, in order: aliases expanded (``"cuda"``), TensorRT backed by CUDA
    where the build has it (as ORT advises), the CPU last for the nodes an accelerator cannot take.

    Raises :class:`BackendUnavailable` naming a provider the installed build lacks; ORT itself would
    only warn and run on the CPU under the accelerator's name.
    """
    from onnxparity.gpu import prepare_onnxruntime

    wanted = [provider_name(p) for p in (names or ["CPUExecutionProvider"])]
    prepare_onnxruntime(wanted)  # CUDA libraries in before ORT's first import, where a GPU is asked for
    import onnxruntime as ort

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
                 tuned: bool = False, rewrites: bool | None = None, nchwc_block: int | None = None,
                 profile_prefix: str | None = None):
    """An ONNX Runtime session on ``path``, whose first provider is the first of ``providers``.

    Plain by default: ORT on the file as it is, as Triton's ORT backend or a user's own session runs
    it; that is what parity judges. ``tuned`` gives whatever the caller left at ORT's defaults the
    toolkit's measured settings (:func:`tune_options`) and, on the CPU, the exact rewrites of
    :mod:`~onnxparity.runners.cpu_graph` for ``nchwc_block`` (this CPU's by default), listed in the
    session's ``graph_rewrites``; the file is not changed (``rewrites=False``: the options alone). Which
    of these pays on a CPU is measured, not assumed: :mod:`~onnxparity.runners.fastest` (docs/bench.md).
    ``profile_prefix`` turns on ORT's profiler, whose trace names the provider each node ran on.
    """
    providers = providers or ["CPUExecutionProvider"]
    if _provider_of(providers[0]) in NVIDIA_PROVIDERS:
        from onnxparity.gpu import preload_cuda_libraries

        preload_cuda_libraries()
    import onnxruntime as ort

    source, done = str(path), []
    if tuned:
        sess_options = tune_options(sess_options)
    if tuned if rewrites is None else rewrites:
        source, done = _cpu_rewritten(path, providers, nchwc_block)
    if profile_prefix is not None:
        sess_options = sess_options or ort.SessionOptions()
        sess_options.enable_profiling = True
        sess_options.profile_file_prefix = profile_prefix
    try:
        session = ort.InferenceSession(source, sess_options=sess_options, providers=providers)
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
        raise InputError(f"{path}: ONNX Runtime cannot load it ({first_line(exc, with_type=False)})") from None
    session.graph_rewrites = done  # what cpu_graph changed, for reports
    return session


def session_options(intra_op_threads: int = 0, spinning: bool = True):
    """Session options: intra-op threads (0: ORT's choice) and whether idle threads spin.

    Spinning wins latency when a session has the cores to itself and wastes them when it shares
    (the parity matrix runs several workers at once), so parity turns it off. The defaults are
    ORT's own.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def tune_options(options=None):
    """The toolkit's session settings, applied only where ``options`` holds ORT's defaults.

    - intra-op threads: one per physical core this process may use, a cgroup CPU quota included
      (ORT's own default cannot see a container's quota and then oversubscribes it);
    - graph optimisation stays ``ORT_ENABLE_ALL``: on CPU it rewrites Conv/MaxPool into MLAS's
      blocked NCHWc kernels and folds a Keras graph's NHWC->NCHW transposes into the reorders
      (``ORT_ENABLE_EXTENDED`` keeps plain NCHW Conv, which was slower on the Keras CNN);
    - bounded spinning: idle intra-op threads spin at most 1 ms (backing off) before they sleep,
      the choice that never swings far from ORT's default with the neighbours' load, where no
      spinning at all or a single thread do.
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


def session_settings(session) -> dict:
    """The options a session runs with, and the graph rewrites it got, as reports show them."""
    import onnxruntime as ort

    o = session.get_session_options()
    levels = {v: k for k, v in ort.GraphOptimizationLevel.__members__.items()}
    entries = {}
    for key in ("session.intra_op.allow_spinning", "session.intra_op.spin_duration_us",
                "session.intra_op.spin_backoff_max"):
        try:
            entries[key] = o.get_session_config_entry(key)
        except Exception:  # noqa: BLE001 - ORT raises when the entry was never set
            entries[key] = "default"
    return {"intra_op_num_threads": o.intra_op_num_threads, "inter_op_num_threads": o.inter_op_num_threads,
            "graph_optimization_level": levels.get(o.graph_optimization_level, str(o.graph_optimization_level)),
            "execution_mode": str(o.execution_mode).rsplit(".", 1)[-1], "enable_cpu_mem_arena": o.enable_cpu_mem_arena,
            **entries, "graph_rewrites": list(getattr(session, "graph_rewrites", []))}


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


def _provider_of(entry) -> str:
    """A providers-list entry's name: ``"CUDAExecutionProvider"`` or ``("CUDAExecutionProvider", {...})``."""
    return entry[0] if isinstance(entry, tuple) else entry


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


def _has_entry(options, key: str) -> bool:
    try:
        options.get_session_config_entry(key)
        return True
    except Exception:  # noqa: BLE001 - ORT raises when the entry was never set
        return False
