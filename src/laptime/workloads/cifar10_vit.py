"""CIFAR-10 classification with a small Vision Transformer (patch 4).

Data, splits, augmentation and evaluation are those of :mod:`laptime.workloads.cifar10` for the
configuration of the same name (``cpu``: the webp copy, 1,000 training / 100 validation / 100 test
images per class; ``gpu``: the official data, 45,000 / 5,000 / 10,000; ``gpu_webp``: the same
splits of the lossy copy) — this workload subclasses :class:`Cifar10Workload` and changes only the
model, so the two CIFAR-10 workloads are scored on the very same images.

Model (:class:`VisionTransformer`): the 32×32 image is cut into 4×4 patches (an 8×8 grid, 64
tokens; the ``cpu`` configuration uses 8×8 patches, 16 tokens, to be affordable on two cores) by a stride-4 convolution to ``width`` channels, plus a learned position embedding; then
``layers`` transformer blocks with bidirectional (non-causal) self-attention through
``scaled_dot_product_attention`` and a 4×-wide GELU MLP (the blocks of
:mod:`laptime.workloads.shakespeare`, with biases), a final LayerNorm, mean pooling over the
tokens (no class token) and a linear head. Weights start as normal(0, 0.02), residual projections
0.02/sqrt(2·layers), as in the GPT workloads. No dropout: augmentation is the regulariser.

Variants (AlgoPerf-style, each with its own target):

* ``base``: pre-LN blocks (``x + attn(ln1(x))``, ``x + mlp(ln2(x))``).
* ``postln``: post-LN blocks (``ln1(x + attn(x))``, ``ln2(x + mlp(x))``) with the same parameters.

Loss: softmax cross-entropy. Target metric: validation accuracy (plain images, no TTA).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import nn

from laptime.api import ParameterType, Target, Workload, WorkloadSpec
from laptime.workloads.cifar10 import NUM_CLASSES, Cifar10Workload, _spec as _cifar_spec
from laptime.workloads.ptb import PostLNBlock
from laptime.workloads.shakespeare import GPT, Block, GPTConfig, gpt_parameter_types

IMAGE_SIZE = 32
PATCH = 4


class VisionTransformer(nn.Module):
    """Maps normalised images ``[B, 3, 32, 32]`` to class logits ``[B, 10]``."""

    def __init__(self, width: int, layers: int, heads: int, patch: int = PATCH, post_ln: bool = False):
        super().__init__()
        if IMAGE_SIZE % patch:
            raise ValueError(f"patch size {patch} does not divide the image size {IMAGE_SIZE}")
        tokens = (IMAGE_SIZE // patch) ** 2
        cfg = GPTConfig(vocab_size=NUM_CLASSES, context=tokens, layers=layers, heads=heads, width=width,
                        dropout=0.0, activation="gelu", bias=True, causal=False)
        self.patch = nn.Conv2d(3, width, kernel_size=patch, stride=patch)
        self.pos_emb = nn.Parameter(torch.empty(1, tokens, width))
        block = PostLNBlock if post_ln else Block
        self.blocks = nn.ModuleList(block(cfg) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, NUM_CLASSES)
        self.apply(GPT._init_weights)
        nn.init.normal_(self.pos_emb, std=0.02)
        for name, param in self.named_parameters():
            if name.endswith("attn.out.weight") or name.endswith("mlp.proj.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * layers))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch(images).flatten(2).transpose(1, 2) + self.pos_emb  # [B, tokens, width]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x).mean(dim=1))


def vit_parameter_types(model: VisionTransformer) -> dict[str, ParameterType]:
    """GPT-style tags for the blocks; the patch projection is a CONV_WEIGHT, the position table an EMBEDDING."""
    types = gpt_parameter_types(model)
    types["pos_emb"] = ParameterType.EMBEDDING
    types["patch.weight"] = ParameterType.CONV_WEIGHT
    return types


#: Model sizes per configuration (the data settings come from the cifar10 workload's configuration).
MODELS: dict[str, dict[str, int]] = {
    # Patch 8 (16 tokens) on the CPU: patch 4 made a step ~4x dearer, too slow for a 2-core test.
    "cpu": dict(width=64, layers=2, heads=2, patch=8),
    # ~4.8M parameters: 6 blocks of width 256 (4 heads of 64), 64 tokens per image.
    "gpu": dict(width=256, layers=6, heads=4, patch=4),
    "gpu_webp": dict(width=256, layers=6, heads=4, patch=4),
}

_GPU_CALIBRATION = (
    "provisional: no GPU measurement yet. Estimate: small ViTs trained from scratch on CIFAR-10 with flip+translate "
    "augmentation reach ~80% validation accuracy within ~30 epochs; step_hint = 30 epochs x 45,000 / batch 512 "
    "(~2,640 steps); budget = 3 x ~2,640 steps x an estimated ~7 ms (bf16, ~0.9 TFLOP per step)."
)


def _spec(variant: str, config: str, target: Target, budget: float, eval_period: float, step_hint: int,
          description: str, calibration: str, provisional: bool = False) -> WorkloadSpec:
    spec = _cifar_spec(variant, config, target, budget, eval_period, step_hint, description, calibration, provisional)
    return dataclasses.replace(spec, name="cifar10_vit")


def _cpu_spec(variant: str, blocks: str, validation: float, test: float, budget: float, median_val: float,
              seconds: float, load: str) -> WorkloadSpec:
    return _spec(
        variant, "cpu", Target("accuracy", "max", validation=validation, test=test),
        budget=budget, eval_period=5.0, step_hint=1000,
        description=f"CIFAR-10 (webp copy, 10k-image subset), ViT patch 8, 2 {blocks} blocks x 64 wide, CPU.",
        calibration=(f"laptime calibrate cifar10_vit --variant {variant} --config cpu --seeds 0 1 2 --eval-every-steps 50; "
                     f"2-core x86_64 VM ({load}), torch 2.13.0+cpu, 2026-11-23: median best val {median_val:.3f}, test "
                     f"{test:.3f}, median time to target {seconds} s x 3 (record: docs/calibration/)"),
    )


SPECS: dict[tuple[str, str], WorkloadSpec] = {
    # LAPTIME_DATA=... laptime calibrate cifar10_vit --variant base --config cpu --seeds 0 1 2 \
    #     --eval-every-steps 50      (2-core x86_64 VM, quiet, torch 2.13.0+cpu with 2 threads, 2026-11-23)
    # nadamw self-tuning defaults (lr 2e-3, batch 128); best validation accuracy 0.458/0.464/0.460 at
    # steps 950/850/950 (still rising at step_hint), test there 0.442/0.459/0.457; the target 0.46 was
    # reached by seeds 1 and 2 at 23.4 s and 27.1 s (27-29 ms per step). A first calibration on the
    # loaded machine gave the same metrics (trials are deterministic) at 2.8x the times.
    ("base", "cpu"): _cpu_spec("base", "pre-LN", 0.46, 0.457, budget=82.0, median_val=0.460, seconds=27.1, load="quiet"),
    # The same command with --variant postln: best validation 0.462/0.470/0.453 at step 900 (test there
    # 0.461/0.449/0.459); 0.462 reached by seeds 0 and 1 at 22.8 s and 43.2 s (21-25 ms per step; the
    # test suite of another job shared the CPU during seeds 1 and 2) -> budget 3 x 43.2 = 130 s.
    ("postln", "cpu"): _cpu_spec("postln", "post-LN", 0.462, 0.459, budget=130.0, median_val=0.462, seconds=43.2,
                                 load="partly loaded"),
    **{
        (variant, config): _spec(
            variant, config, Target("accuracy", "max", validation=target, test=target),
            budget=60.0, eval_period=2.0, step_hint=2640,
            description=f"CIFAR-10 ({data}), ViT patch 4, 6 {ln} blocks x 256 wide (4 heads), bf16 autocast.",
            calibration=_GPU_CALIBRATION, provisional=True,
        )
        for variant, ln in (("base", "pre-LN"), ("postln", "post-LN"))
        for config, data, target in (("gpu", "official", 0.80), ("gpu_webp", "lossy webp copy", 0.77))
    },
}


class Cifar10ViTWorkload(Cifar10Workload):
    """CIFAR-10 with a small ViT; see the module docstring."""

    name = "cifar10_vit"
    variants = ("base", "postln")
    configs = ("cpu", "gpu", "gpu_webp")
    # the data sets the scale of a batch (45k small images): AlgoPerf's cifar, as for the CNN
    algoperf_workload = "cifar"
    default_batch_sizes = {"cpu": 128, "gpu": 512, "gpu_webp": 512}

    @property
    def spec(self) -> WorkloadSpec:
        return SPECS[(self.variant, self.config)]

    def build_model(self) -> nn.Module:
        return VisionTransformer(**MODELS[self.config], post_ln=self.variant == "postln")

    def init_model_fn(self, rng: int) -> tuple[nn.Module, Any]:
        return Workload.init_model_fn(self, rng)  # no data-dependent stem: skip the CNN's whitening

    def parameter_types(self, model: nn.Module) -> dict[str, ParameterType]:
        return vit_parameter_types(model)


WORKLOAD = Cifar10ViTWorkload
