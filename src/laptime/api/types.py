"""Small shared types of the contract: enums, hyperparameters, the training-complete signal."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator, Mapping
from typing import Any, Dict

import torch

#: A batch is a mapping with at least ``"inputs"`` and ``"targets"``; an optional ``"weights"``
#: mask marks padded examples (0 = ignore), as in AlgoPerf.
Batch = Dict[str, Any]


class LossType(enum.Enum):
    SOFTMAX_CROSS_ENTROPY = 0
    SIGMOID_CROSS_ENTROPY = 1
    MEAN_SQUARED_ERROR = 2
    CTC_LOSS = 3
    MEAN_ABSOLUTE_ERROR = 4


class ForwardPassMode(enum.Enum):
    TRAIN = 0
    EVAL = 1


class ParameterType(enum.Enum):
    """Kinds of parameters, so algorithms can treat them differently without knowing the workload."""

    WEIGHT = 0
    BIAS = 1
    CONV_WEIGHT = 2
    BATCH_NORM_SCALE = 3
    BATCH_NORM_BIAS = 4
    LAYER_NORM_SCALE = 5
    LAYER_NORM_BIAS = 6
    EMBEDDING = 7
    ATTENTION_Q = 8
    ATTENTION_K = 9
    ATTENTION_V = 10
    ATTENTION_OUT = 11
    ATTENTION_QKV = 12
    ATTENTION_KV = 13
    ATTENTION_BIAS = 14

    @property
    def is_normalization(self) -> bool:
        return self in (
            ParameterType.BATCH_NORM_SCALE,
            ParameterType.BATCH_NORM_BIAS,
            ParameterType.LAYER_NORM_SCALE,
            ParameterType.LAYER_NORM_BIAS,
        )

    @property
    def is_bias(self) -> bool:
        return self in (ParameterType.BIAS, ParameterType.ATTENTION_BIAS)


class ShapeTuple:
    """A parameter's shape, as :attr:`Workload.param_shapes` gives it (AlgoPerf's ``spec.ShapeTuple``).

    A wrapper rather than a bare tuple so that tree utilities do not descend into the shape.
    """

    __slots__ = ("shape_tuple",)

    def __init__(self, shape_tuple):
        self.shape_tuple = tuple(shape_tuple)

    def __repr__(self) -> str:
        return f"ShapeTuple({self.shape_tuple})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ShapeTuple):
            return self.shape_tuple == other.shape_tuple
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.shape_tuple)


class TrainingComplete(Exception):
    """Raised by an algorithm (from ``update_params``) to end training; one final eval follows.

    The counterpart of AlgoPerf's ``TrainingCompleteError``.
    """


class Hyperparameters(Mapping):
    """An immutable bag of hyperparameters with attribute access (``hp.learning_rate``).

    AlgoPerf hands submissions a namedtuple; this behaves like one for reading and like a dict
    for iteration, ``get`` and JSON.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None, **kwargs: Any):
        merged = dict(values or {})
        merged.update(kwargs)
        for key in merged:
            if not isinstance(key, str) or not key.isidentifier():
                raise ValueError(f"hyperparameter names must be identifiers, got {key!r}")
        object.__setattr__(self, "_values", merged)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(
                f"no hyperparameter {name!r} (have: {', '.join(sorted(self._values)) or 'none'})"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Hyperparameters are read-only")

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in sorted(self._values.items()))
        return f"Hyperparameters({inner})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._values) == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, repr(v)) for k, v in self._values.items())))

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def replace(self, **changes: Any) -> "Hyperparameters":
        return Hyperparameters({**self._values, **changes})


def is_finite_number(value: Any) -> bool:
    """True for a finite Python/NumPy/torch scalar."""
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value).all())
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
