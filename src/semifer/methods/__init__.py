"""Training methods, one per file, found by name through `METHODS` and resolved from a config by
`resolve_method`."""

from __future__ import annotations

from .base import Batch, EpochContext, Method, MethodOptions, StepOutput, TrainContext
from .registry import METHODS, MethodSpec, build_method, method_class, plain_head, resolve_method

__all__ = [
    "METHODS",
    "Batch",
    "EpochContext",
    "Method",
    "MethodOptions",
    "MethodSpec",
    "StepOutput",
    "TrainContext",
    "build_method",
    "method_class",
    "plain_head",
    "resolve_method",
]
