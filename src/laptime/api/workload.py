"""The Workload contract: data + model + loss + metric + target + budget.

A workload knows nothing of algorithms or clocks. The runner asks it for a model, for training
batches (the *input queue*) and for evaluations; algorithms call its ``model_fn`` and ``loss_fn``.
Names and meanings follow AlgoPerf's PyTorch workloads.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import inspect
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from laptime.api.types import Batch, ForwardPassMode, LossType, ParameterType, ShapeTuple
from laptime.errors import UsageError

Direction = Literal["max", "min"]


@dataclasses.dataclass(frozen=True)
class Target:
    """A target on one metric. ``direction='max'`` means higher is better (accuracy, AUC)."""

    metric: str
    direction: Direction
    validation: float
    test: float

    def __post_init__(self) -> None:
        if self.direction not in ("max", "min"):
            raise ValueError(f"direction must be 'max' or 'min', got {self.direction!r}")

    def reached(self, value: float, split: str = "validation") -> bool:
        """Inclusive comparison, used everywhere in laptime (runner, scoring, reports).

        A value equal to the target counts as reached; NaN never does.
        """
        goal = self.validation if split == "validation" else self.test
        if value is None or not math.isfinite(float(value)):
            return False
        return float(value) >= goal if self.direction == "max" else float(value) <= goal


@dataclasses.dataclass(frozen=True)
class WorkloadSpec:
    """Everything that fixes a workload's identity and its rules, independent of any model object."""

    name: str
    variant: str
    config: str  # e.g. "cpu" (small, for tests and the smoke suite) or "gpu" (the lite suite)
    version: str  # bumped whenever data, model, target or budget change: results are not comparable across versions
    dataset: str  # identity of the data source, e.g. "tinyshakespeare@md5:6fb458f1..."
    loss_type: LossType
    target: Target
    max_allowed_runtime_sec: float
    eval_period_time_sec: float
    step_hint: int
    num_train_examples: int
    num_validation_examples: int
    num_test_examples: int
    description: str = ""
    #: Where the target and budget come from: the command, machine and date of their calibration.
    calibration: str = ""
    #: True while the target and budget are placeholders (from the literature or another machine),
    #: not yet calibrated by ``laptime calibrate`` on this configuration's reference hardware.
    provisional: bool = False
    #: The budget in steps used by step-budget mode; ``None``: ``step_hint``, as AlgoPerf's budgets
    #: are the target-setting run's steps (the self-tuning ruleset multiplies it like the time budget).
    step_budget: int | None = None
    #: Steps between evals in step-budget mode; ``None``: as many evals per budget as in time mode,
    #: ``step budget × eval_period_time_sec / max_allowed_runtime_sec`` (at least 1).
    eval_period_steps: int | None = None

    def __post_init__(self) -> None:
        if self.step_budget is not None and int(self.step_budget) < 1:
            raise ValueError(f"{self.key}: step_budget must be >= 1")
        if self.eval_period_steps is not None and int(self.eval_period_steps) < 1:
            raise ValueError(f"{self.key}: eval_period_steps must be >= 1")

    @property
    def max_allowed_steps(self) -> int:
        """The step budget of step-budget mode (before any ruleset factor)."""
        return int(self.step_budget) if self.step_budget is not None else int(self.step_hint)

    @property
    def eval_period_steps_or_default(self) -> int:
        if self.eval_period_steps is not None:
            return int(self.eval_period_steps)
        runs = self.max_allowed_steps * self.eval_period_time_sec / max(self.max_allowed_runtime_sec, 1e-9)
        return max(1, round(runs))

    @property
    def key(self) -> str:
        """A short unique name, e.g. ``mnist1d/cnn@cpu``."""
        return f"{self.name}/{self.variant}@{self.config}"


class Workload(abc.ABC):
    """Base class of every workload. Subclasses fill in the abstract methods and ``spec``.

    ``variant`` picks one of ``variants`` (they share the data); ``config`` picks a size
    (``"cpu"`` or ``"gpu"``); ``device`` is where data and model live.
    """

    #: Name of the workload family, e.g. ``"mnist1d"``.
    name: str = ""
    #: Variant names; the first is the base workload.
    variants: Sequence[str] = ("base",)
    #: Configurations (sizes) this workload provides.
    configs: Sequence[str] = ("cpu",)
    #: Names of the ``laptime.data`` sources this workload reads; they are made ready (copied from a
    #: local source or downloaded, md5-checked) before any trial starts.
    datasets: Sequence[str] = ()
    #: The nearest AlgoPerf workload (e.g. ``"mnist"``): the name an AlgoPerf submission's
    #: ``get_batch_size`` is asked about, since submissions only know AlgoPerf's names
    #: (``docs/algoperf.md`` gives the mapping and its reasons). ``None``: ask with laptime's key.
    algoperf_workload: str | None = None
    #: The reference batch size per configuration (the one the targets were calibrated with;
    #: ``"default"`` for configurations not listed): used when an algorithm has no batch size for
    #: this workload (an AlgoPerf submission that does not know :attr:`algoperf_workload`).
    default_batch_sizes: Mapping[str, int] = {"default": 128}

    def __init__(self, variant: str | None = None, config: str | None = None, device: str | torch.device = "cpu"):
        variant = variant or self.variants[0]
        config = config or self.configs[0]
        if variant not in self.variants:
            raise UsageError(
                f"workload {self.name!r} has no variant {variant!r}; variants: {', '.join(self.variants)}"
            )
        if config not in self.configs:
            raise UsageError(
                f"workload {self.name!r} has no configuration {config!r}; configurations: {', '.join(self.configs)}"
            )
        self.variant = variant
        self.config = config
        self.device = torch.device(device)
        self._param_types: dict[str, ParameterType] | None = None
        self._param_shapes: dict[str, ShapeTuple] | None = None
        self._output_params: frozenset[str] | None = None
        #: AlgoPerf's logger slot: ``None`` or an object with ``append_scalar_metrics(metrics,
        #: global_step)``; the AlgoPerf adapter attaches a no-op one (see :meth:`attach_metrics_logger`).
        self.metrics_logger: Any = None
        self._step_hint_override: int | None = None
        self._warmed_up_batch: int | None = None  # the batch size warm_up last ran with
        #: ``torch.compile`` options of :meth:`model_fn`'s forward pass; ``None``: eager (see :meth:`set_compile`)
        self.compile_options: dict[str, Any] | None = None
        self._compiled: dict[int, tuple[nn.Module, Callable[..., Any]]] = {}

    # ----------------------------------------------------------------- identity and rules
    @property
    @abc.abstractmethod
    def spec(self) -> WorkloadSpec:
        """The workload's identity, target and budget for this variant and configuration."""

    @property
    def loss_type(self) -> LossType:
        return self.spec.loss_type

    @property
    def target(self) -> Target:
        return self.spec.target

    @property
    def target_metric_name(self) -> str:
        return self.spec.target.metric

    @property
    def validation_target_value(self) -> float:
        return self.spec.target.validation

    @property
    def test_target_value(self) -> float:
        return self.spec.target.test

    @property
    def max_allowed_runtime_sec(self) -> float:
        return self.spec.max_allowed_runtime_sec

    @property
    def eval_period_time_sec(self) -> float:
        return self.spec.eval_period_time_sec

    @property
    def step_hint(self) -> int:
        """The spec's ``step_hint``, unless ``override_step_hint`` set another (calibration runs)."""
        return self.spec.step_hint if self._step_hint_override is None else self._step_hint_override

    def override_step_hint(self, steps: int | None) -> None:
        """Make :attr:`step_hint` (what algorithms size their schedules by) ``steps`` for this
        instance; ``None`` restores the spec's. Used by ``laptime calibrate --step-hint``."""
        if steps is not None and int(steps) < 1:
            raise UsageError("step_hint must be >= 1")
        self._step_hint_override = None if steps is None else int(steps)

    @property
    def num_train_examples(self) -> int:
        return self.spec.num_train_examples

    @property
    def num_validation_examples(self) -> int:
        return self.spec.num_validation_examples

    @property
    def num_test_examples(self) -> int:
        return self.spec.num_test_examples

    @property
    def default_batch_size(self) -> int:
        """The reference batch size of this configuration (:attr:`default_batch_sizes`)."""
        sizes = self.default_batch_sizes
        return int(sizes.get(self.config, sizes.get("default", 128)))

    def attach_metrics_logger(self, metrics_logger: Any) -> None:
        """Set :attr:`metrics_logger` (AlgoPerf's name; submissions log through it)."""
        self.metrics_logger = metrics_logger

    def has_reached_validation_target(self, eval_result: Mapping[str, float]) -> bool:
        return self.target.reached(eval_result[f"validation/{self.target_metric_name}"], "validation")

    def has_reached_test_target(self, eval_result: Mapping[str, float]) -> bool:
        key = f"test/{self.target_metric_name}"
        return key in eval_result and self.target.reached(eval_result[key], "test")

    # ----------------------------------------------------------------- model
    @abc.abstractmethod
    def build_model(self) -> nn.Module:
        """Return a freshly initialised model (the global torch RNG is already seeded)."""

    def init_model_fn(self, rng: int) -> tuple[nn.Module, Any]:
        """Build the model on ``self.device`` from seed ``rng``; returns ``(model, model_state)``.

        In PyTorch the model state (e.g. batch-norm statistics) lives inside the module, so
        ``model_state`` is ``None`` unless a workload needs more.
        """
        torch.manual_seed(int(rng))
        self._compiled.clear()  # a new trial: the previous one's models are released
        model = self.build_model().to(self.device)
        self._param_types = self.parameter_types(model)
        self._param_shapes = {name: ShapeTuple(p.shape) for name, p in model.named_parameters()}
        self._output_params = frozenset(self.output_parameter_names(model))
        return model, None

    def parameter_types(self, model: nn.Module) -> dict[str, ParameterType]:
        """Tags for every parameter; override to tag attention projections and the like."""
        return infer_parameter_types(model)

    @property
    def model_params_types(self) -> dict[str, ParameterType]:
        if self._param_types is None:
            raise RuntimeError("model_params_types is known after init_model_fn()")
        return self._param_types

    @property
    def param_shapes(self) -> dict[str, ShapeTuple]:
        """Every parameter's shape by name, as AlgoPerf's PyTorch workloads give it."""
        if self._param_shapes is None:
            raise RuntimeError("param_shapes is known after init_model_fn()")
        return self._param_shapes

    def output_parameter_names(self, model: nn.Module) -> list[str]:
        """The output layer's parameters: those of the last ``nn.Linear`` (in registration order),
        else of the last module that owns parameters. Override when the head is elsewhere."""
        owners = [(name, module) for name, module in model.named_modules()
                  if any(True for _ in module.parameters(recurse=False))]
        linear = [(name, module) for name, module in owners if isinstance(module, nn.Linear)]
        chosen = (linear or owners)[-1:] if owners else []
        names = set(dict(model.named_parameters()))  # shared (tied) parameters appear once, under their first name
        return [full for prefix, module in chosen
                for local, _ in module.named_parameters(recurse=False)
                if (full := f"{prefix}.{local}" if prefix else local) in names]

    def is_output_params(self, param_key: str) -> bool:
        """Whether ``param_key`` names a parameter of the output layer (AlgoPerf's question)."""
        if self._output_params is None:
            raise RuntimeError("is_output_params is known after init_model_fn()")
        return param_key in self._output_params

    def model_fn(
        self,
        params: nn.Module,
        augmented_and_preprocessed_input_batch: Batch,
        model_state: Any,
        mode: ForwardPassMode,
        rng: Any = None,
        update_batch_norm: bool = True,
        dropout_rate: float | None = None,
    ) -> tuple[torch.Tensor, Any]:
        """Forward pass; returns ``(logits, model_state)``.

        ``mode`` picks train/eval behaviour (dropout, batch-norm). In train mode with
        ``update_batch_norm=False`` batch-norm layers normalise with the batch's statistics, as in
        training, but leave their running statistics unchanged (AlgoPerf's PyTorch meaning); in
        eval mode they use the running statistics.

        ``dropout_rate`` (AlgoPerf v0.6's argument) is accepted and ignored: in laptime dropout is
        part of the workload's definition (fixed per variant and configuration, like the rest of
        the model), so every algorithm trains the same model. Algorithms cannot tune it.
        """
        del rng, dropout_rate
        model = params
        # by name, so AlgoPerf's own ForwardPassMode (from a ported submission) works too
        training = mode == ForwardPassMode.TRAIN or getattr(mode, "name", None) == "TRAIN"
        set_train_mode(model, training)
        inputs = augmented_and_preprocessed_input_batch["inputs"]
        with self.autocast(), torch.set_grad_enabled(training and torch.is_grad_enabled()), \
                _frozen_batch_norm_statistics(model, training and not update_batch_norm):
            logits = self.compiled(model)(inputs)
        return logits, model_state

    def set_compile(self, backend: str | Callable[..., Any] | None = "inductor", **options: Any) -> None:
        """Run :meth:`model_fn`'s forward passes through ``torch.compile(model, backend=backend,
        **options)``; ``backend=None`` switches compilation off (the default: eager).

        Compilation is paid outside the clock: the runner's untimed :meth:`warm_up` (run again after
        this call) pushes a throwaway model of the same class through the compiled forward and
        backward, and TorchDynamo reuses that code for the trial's model, whose parameters are
        inputs of the graph rather than constants (checked in ``tests/test_compile.py`` by counting
        the backend's compilations). The speed probe's batch size may trigger one recompilation
        with a dynamic batch dimension, also outside the clock. Evaluation stays as each workload
        writes it (eager where it calls the model directly). Algorithms that call the model
        themselves rather than through :meth:`model_fn` run it eagerly.
        """
        self.compile_options = None if backend is None else {"backend": backend, **options}
        self._compiled.clear()
        self._warmed_up_batch = None

    def compiled(self, model: nn.Module) -> Callable[..., Any]:
        """``model``, or its ``torch.compile`` wrapper when :meth:`set_compile` asked for one (one
        wrapper per model, kept for the trial's model and one other, e.g. the speed probe's)."""
        if self.compile_options is None:
            return model
        entry = self._compiled.get(id(model))
        if entry is None or entry[0] is not model:
            if len(self._compiled) >= 2:
                self._compiled.pop(next(iter(self._compiled)))
            entry = self._compiled[id(model)] = (model, torch.compile(model, **self.compile_options))
        return entry[1]

    #: Mixed precision: on CUDA the forward pass runs under ``torch.autocast`` with this dtype
    #: (e.g. ``torch.bfloat16`` in the lite suite's gpu configurations). ``None``: full fp32. It is
    #: part of the workload's definition, the same for every algorithm; the loss is computed in
    #: fp32 by :meth:`loss_fn` either way.
    cuda_autocast_dtype: torch.dtype | None = None

    def autocast(self):
        """The autocast context of this workload's forward passes (a no-op off CUDA or in fp32)."""
        if self.device.type == "cuda" and self.cuda_autocast_dtype is not None:
            return torch.autocast("cuda", dtype=self.cuda_autocast_dtype)
        return contextlib.nullcontext()

    #: Seed of the warm-up's and the speed probe's own batch iterators (never a trial's data seed stream).
    WARM_UP_SEED = 2**31 - 1

    #: Batch size of the speed probe's reference pass. The same for every algorithm, so that work
    #: counted in reference passes compares across algorithms (see :mod:`laptime.runner.workmeter`).
    probe_batch_size: int = 128

    @contextlib.contextmanager
    def _rng_preserved(self):
        """Run a block without leaving a trace in the global RNG states (CPU and this CUDA device)."""
        cpu_state = torch.get_rng_state()
        cuda_states = torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None
        try:
            yield
        finally:
            torch.set_rng_state(cpu_state)
            if cuda_states is not None:
                torch.cuda.set_rng_state_all(cuda_states)

    def _reference_pass(self, model: nn.Module, batch: Batch) -> None:
        """One forward (train mode) and backward pass of ``model`` on ``batch``; device synchronised."""
        logits, _ = self.model_fn(model, batch, None, ForwardPassMode.TRAIN)
        logits.float().mean().backward()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def warm_up(self, batch_size: int) -> None:
        """Untimed warm-up, once per instance: forward + backward of a throwaway model.

        The runner calls it before a trial's clock starts. It builds a model, runs one training
        batch of ``batch_size`` through ``model_fn`` in train mode, back-propagates, and
        synchronises the device. The global RNG states (CPU and CUDA) are restored afterwards,
        so trials are identical with or without it. Workloads whose model is expensive to build
        may override it (or make it a no-op).
        """
        if self._warmed_up_batch == batch_size:
            return
        with self._rng_preserved():
            model = self.build_model().to(self.device)
            self._reference_pass(model, next(iter(self.train_batches(batch_size, self.WARM_UP_SEED))))
        self._warmed_up_batch = batch_size

    def speed_probe(self) -> Callable[[], None]:
        """The speed probe of the robust time: a function that runs one *reference pass*.

        Built once per trial, outside the clock: a throwaway model and one training batch of
        :attr:`probe_batch_size`. Each call runs a forward (train mode) and backward pass on it and
        synchronises the device; the global RNG states are restored after building and after each
        call, so a trial's numbers are the same with or without probes.
        """
        with self._rng_preserved():
            model = self.build_model().to(self.device)
            batch = next(iter(self.train_batches(self.probe_batch_size, self.WARM_UP_SEED)))

        def reference_pass() -> None:
            with self._rng_preserved():
                self._reference_pass(model, batch)
            model.zero_grad(set_to_none=True)

        return reference_pass

    # ----------------------------------------------------------------- loss
    def loss_fn(
        self,
        label_batch: torch.Tensor,
        logits_batch: torch.Tensor,
        mask_batch: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> dict[str, torch.Tensor]:
        """Per-example loss, its masked sum and the number of valid examples (AlgoPerf's shape).

        ``n_valid_examples`` is a tensor when a mask is given, else a plain ``int``.
        """
        if self.loss_type == LossType.SOFTMAX_CROSS_ENTROPY:
            logits, labels = logits_batch, label_batch
            if logits.ndim != 2:  # [B, T, V] → [B·T, V]; a 2-D input is used as is (no extra autograd node)
                logits, labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
            per_example = F.cross_entropy(logits.float(), labels, reduction="none", label_smoothing=label_smoothing)
        elif self.loss_type == LossType.SIGMOID_CROSS_ENTROPY:
            targets = label_batch.float()
            if label_smoothing:
                targets = targets * (1 - label_smoothing) + 0.5 * label_smoothing
            per_example = F.binary_cross_entropy_with_logits(logits_batch.float(), targets, reduction="none")
            per_example = per_example.reshape(per_example.shape[0], -1).mean(-1)
        elif self.loss_type == LossType.MEAN_SQUARED_ERROR:
            per_example = ((logits_batch.float() - label_batch.float()) ** 2).reshape(label_batch.shape[0], -1).mean(-1)
        elif self.loss_type == LossType.MEAN_ABSOLUTE_ERROR:
            per_example = (logits_batch.float() - label_batch.float()).abs().reshape(label_batch.shape[0], -1).mean(-1)
        else:
            raise NotImplementedError(f"{self.loss_type} needs a workload-specific loss_fn")
        if mask_batch is not None:
            mask = mask_batch.reshape(per_example.shape).to(per_example.dtype)
            per_example = per_example * mask
            n_valid = mask.sum()
        else:
            n_valid = per_example.numel()  # a plain number: no tensor to build on every step
        return {"summed": per_example.sum(), "n_valid_examples": n_valid, "per_example": per_example}

    # ----------------------------------------------------------------- data
    @abc.abstractmethod
    def train_batches(self, global_batch_size: int, seed: int) -> Iterator[Batch]:
        """An endless iterator of training batches on ``self.device`` (the *input queue*).

        It depends only on ``seed`` and the batch size, never on the algorithm's state. A workload
        may also take ``start=N`` (every built-in one does): the same stream from its batch ``N``
        on, reached cheaply (see :meth:`train_batches_from`).
        """

    def train_batches_from(self, global_batch_size: int, seed: int, start: int = 0) -> Iterator[Batch]:
        """The input queue positioned at batch ``start``: what :meth:`train_batches` yields after
        its first ``start`` batches. The runner resumes a checkpointed trial with it.

        The position of the data stream is the number of batches drawn from it (the stream depends
        only on the seed and the batch size), so a checkpoint stores that count. A workload whose
        ``train_batches`` takes ``start`` is asked for the stream positioned there (the built-in
        ones redraw only the skipped batches' random numbers: microseconds per batch). Otherwise
        the stream is made again and ``start`` batches are drawn and dropped, which costs what
        building those batches costs (data indexing, augmentation, transfers).
        """
        if isinstance(start, bool) or int(start) != start or start < 0:
            raise ValueError(f"start must be a batch index >= 0, got {start!r}")
        start = int(start)
        if start == 0:
            return self.train_batches(global_batch_size, seed)
        try:
            takes_start = "start" in inspect.signature(self.train_batches).parameters
        except (TypeError, ValueError):  # pragma: no cover - a C-implemented or odd callable
            takes_start = False
        if takes_start:
            return self.train_batches(global_batch_size, seed, start=start)
        queue = iter(self.train_batches(global_batch_size, seed))
        for _ in range(start):
            next(queue)
        return queue

    @abc.abstractmethod
    def evaluate_split(self, model: nn.Module, model_state: Any, split: str) -> dict[str, float]:
        """Metrics on ``split`` (``"validation"`` or ``"test"``) as plain floats, names unprefixed."""

    #: Splits evaluated at every eval.
    eval_splits: Sequence[str] = ("validation", "test")

    def eval_model(self, params: nn.Module, model_state: Any, splits: Sequence[str] | None = None) -> dict[str, float]:
        """Evaluate every split; keys are ``"<split>/<metric>"`` (e.g. ``validation/accuracy``)."""
        results: dict[str, float] = {}
        for split in splits or self.eval_splits:
            for metric, value in self.evaluate_split(params, model_state, split).items():
                results[f"{split}/{metric}"] = float(value)
        return results


# --------------------------------------------------------------------------- helpers

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
_NORM = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm) if hasattr(nn, "RMSNorm") else (nn.LayerNorm, nn.GroupNorm)
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def infer_parameter_types(model: nn.Module) -> dict[str, ParameterType]:
    """Tag every parameter from the kind of module that owns it.

    Linear weight → WEIGHT, conv weight → CONV_WEIGHT, batch-norm → BATCH_NORM_*, layer/group/RMS
    norm → LAYER_NORM_*, embedding → EMBEDDING, any bias → BIAS. Unknown modules: 1-D tensors are
    BIAS, others WEIGHT.
    """
    types: dict[str, ParameterType] = {}
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if isinstance(module, _BN):
                kind = ParameterType.BATCH_NORM_SCALE if param_name == "weight" else ParameterType.BATCH_NORM_BIAS
            elif isinstance(module, _NORM):
                kind = ParameterType.LAYER_NORM_SCALE if param_name == "weight" else ParameterType.LAYER_NORM_BIAS
            elif isinstance(module, nn.Embedding):
                kind = ParameterType.EMBEDDING
            elif param_name == "bias" or param.ndim <= 1:
                kind = ParameterType.BIAS
            elif isinstance(module, _CONV):
                kind = ParameterType.CONV_WEIGHT
            else:
                kind = ParameterType.WEIGHT
            types[full] = kind
    return types


def set_train_mode(model: nn.Module, training: bool) -> None:
    """Put ``model`` in train/eval mode."""
    if model.training != training:
        model.train(training)


@contextlib.contextmanager
def _frozen_batch_norm_statistics(model: nn.Module, freeze: bool):
    """While active (and ``freeze``), batch-norm layers in train mode normalise with the batch's
    statistics without updating their running statistics (nor ``num_batches_tracked``)."""
    if not freeze:
        yield
        return
    layers = [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats]
    for m in layers:
        m.track_running_stats = False  # train mode then passes no running buffers to F.batch_norm
    try:
        yield
    finally:
        for m in layers:
            m.track_running_stats = True
