"""The served model: a checkpoint (or an exported ``.onnx``) loaded once through the runtime layer, wrapped by its
task's ``serving`` (the task registry's: a task from a plug-in is served as a built-in one is)."""
from __future__ import annotations

import threading
from pathlib import Path

from backbonekit.errors import ConfigError
from backbonekit.serve.options import ServeOptions

# Run-record settings /v1/model shows: how the model was trained, not where its files were (no paths leave).
RECORD_KEYS = ("model", "backbone", "stem", "norm", "image_size", "subset", "epochs", "batch_size", "optimizer", "lr",
               "scheduler", "precision", "seed")


def checkpoint_task(path: Path) -> str | None:
    """The task a trained file or an exported ONNX file records."""
    if path.suffix == ".onnx":
        from backbonekit.io.onnx_export import read_metadata

        return read_metadata(path).get("backbonekit_task")
    from backbonekit.training.task_io import recorded_config

    return recorded_config(path).get("task")


def resolved_runtime(path: Path, spec, options: ServeOptions) -> str:
    """The runtime ``load_for_inference`` will use, named (``auto`` measured here, as it would be there)."""
    from backbonekit.training.inference import choose_runtime

    runtime = options.runtime
    if runtime == "auto":
        runtime = choose_runtime(path, spec, options.device, options.max_batch) if options.precision == "fp32" \
            else "openvino"
    return "onnxruntime" if runtime == "torch" and path.suffix == ".onnx" else runtime


class ServedModel:
    """``run(prepared)``: a batch of prepared images → one JSON row each; ``explain(image)``: the task's maps."""

    def __init__(self, options: ServeOptions):
        from backbonekit.tasks import all_tasks
        from backbonekit.training.inference import RUNTIMES, load_for_inference
        from backbonekit.training.task_spec import get_task

        path = Path(options.checkpoint)
        if not path.is_file():
            raise ConfigError(f"--checkpoint {path}: {'a folder' if path.is_dir() else 'no such file'}")
        if options.runtime not in RUNTIMES:
            raise ConfigError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {options.runtime!r}")
        all_tasks()
        self.spec = get_task(checkpoint_task(path), path)
        if self.spec.serving is None:
            raise ConfigError(f"--checkpoint {path}: the {self.spec.name} task cannot be served (no serving)")
        self.path, self.options = path, options
        self.runtime = resolved_runtime(path, self.spec, options)
        model, self.device = load_for_inference(path, self.spec, options.device, self.runtime, options.precision,
                                                options.max_batch)
        self.serving = self.spec.serving(model, self.device, options)
        self.task = self.spec.name
        self.path_field = getattr(self.serving, "path_field", "path")  # the image's field in predict's rows
        self._explainer = None
        self._explain_lock = threading.Lock()  # CAM hooks on one model: one explanation at a time

    def describe(self) -> dict:
        from backbonekit.training.run_record import recorded_settings

        settings = (recorded_settings(self.path) if self.path.suffix != ".onnx" else None) or {}
        run = {k: settings[k] for k in RECORD_KEYS if k in settings}
        return {"task": self.spec.name, **self.serving.describe(), "runtime": self.runtime,
                "precision": self.options.precision, "device": str(self.device), "checkpoint": self.path.name,
                "explain": self.can_explain(), "run": run,
                "batching": {"max_batch": self.options.max_batch, "max_wait_ms": self.options.max_wait_ms}}

    def can_explain(self) -> bool:
        return self.spec.explain is not None and self.path.suffix != ".onnx" and hasattr(self.serving, "explain")

    def prepare(self, image):
        return self.serving.prepare(image)

    def run(self, prepared: list) -> list[dict]:
        return self.serving.run(prepared)

    def explain(self, image) -> tuple:
        """(picture, [(caption, map)], what the maps are), from the PyTorch model as trained (not fused: the maps
        hook its layers), loaded on the first call."""
        if not self.can_explain():
            raise ConfigError(f"{self.path.name}: no explanations for this model (an exported ONNX file has no "
                              "layers to hook; serve the checkpoint)")
        with self._explain_lock:
            if self._explainer is None:
                from backbonekit.training.inference import pick_device

                self._explainer = self.spec.load(self.path, fuse=False).to(pick_device(self.options.device))
            return self.serving.explain(self._explainer, image)
