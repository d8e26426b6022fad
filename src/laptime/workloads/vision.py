"""Shared pieces of the image-classification workloads: device-resident images, batched augmentation,
evaluation with optional test-time augmentation (TTA).

No DataLoader and no per-image Python, as in the CIFAR-10 speedruns:

* :class:`DeviceImages` keeps whole splits on the workload's device as uint8 tensors (NCHW shape,
  channels-last memory, so a batch is channels-last from the start) with int64 labels. Batches are
  normalised on the fly with the per-channel mean and standard deviation of the **train** split.
* Training batches: a fresh permutation per epoch (:func:`laptime.data.loaders.epoch_index_batches`,
  drawn from the iterator's own CPU generator), then :class:`Augmentation` applied to the whole
  batch on the device: a random horizontal flip and a random translation by up to ``translate``
  pixels (the image padded by ``translate`` pixels, ``reflect`` or ``zeros``, then cropped back at a
  random offset) — two ``gather`` calls for the whole batch. The random draws come from the same
  CPU generator, so the batches are the same on every device.
* Evaluation: the whole split in fixed, contiguous batches; ``tta`` 0 scores the plain image,
  1 averages the logits of the image and its mirror, 2 (the speedruns' level) additionally averages
  mirrored pairs of two copies translated by one pixel along the diagonal, one each way (reflect
  padding): ``0.5·m(x) + 0.25·m(x₊) + 0.25·m(x₋)`` with ``m(x) = (f(x) + f(flip x)) / 2``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from laptime.api import Batch
from laptime.data.loaders import epoch_index_batches, make_generator

#: TTA levels understood by :meth:`DeviceImages.evaluate`.
TTA_LEVELS = (0, 1, 2)


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Batch-wise training augmentation: random horizontal flip, random translation by up to ``translate`` px."""

    flip: bool = True
    translate: int = 2
    padding: str = "reflect"  # or "zeros"

    def __post_init__(self) -> None:
        if self.padding not in ("reflect", "zeros"):
            raise ValueError(f"padding must be 'reflect' or 'zeros', got {self.padding!r}")
        if self.translate < 0:
            raise ValueError(f"translate must be >= 0, got {self.translate}")

    def draw(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random parameters for a batch, on the CPU: ``(flip [B] bool, dy [B], dx [B])``, offsets in ``[0, 2·translate]``."""
        flip = torch.rand(batch_size, generator=generator) < 0.5 if self.flip else torch.zeros(batch_size, dtype=torch.bool)
        offsets = torch.randint(0, 2 * self.translate + 1, (2, batch_size), generator=generator)
        return flip, offsets[0], offsets[1]

    def apply(self, images: torch.Tensor, flip: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
        """Augment ``images`` ``[B, C, H, W]`` (float): output pixel ``(i, j)`` of image ``b`` is pixel
        ``(i + dy[b] - t, j' + dx[b] - t)`` of the input (reflected or zero beyond its border), with
        ``j' = W - 1 - j`` where ``flip[b]``, else ``j' = j``."""
        return shift_and_flip(images, dy, dx, flip, self.translate, self.padding)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(images, *self.draw(len(images), generator))


def shift_and_flip(images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor | None,
                   pad: int, padding: str = "reflect") -> torch.Tensor:
    """Crop each image of ``images`` ``[B, C, H, W]`` from its ``pad``-padded copy at offset ``(dy, dx)``
    (``pad`` = no shift), mirrored horizontally where ``flip``. Two gathers for the whole batch."""
    B, C, H, W = images.shape
    device = images.device
    padded = F.pad(images, (pad,) * 4, mode="reflect" if padding == "reflect" else "constant") if pad else images
    rows = dy.to(device).view(B, 1) + torch.arange(H, device=device)
    columns = torch.arange(W, device=device).expand(B, W)
    if flip is not None:
        columns = torch.where(flip.to(device).view(B, 1), W - 1 - columns, columns)
    columns = dx.to(device).view(B, 1) + columns
    out = padded.gather(2, rows.view(B, 1, H, 1).expand(B, C, H, W + 2 * pad))
    out = out.gather(3, columns.view(B, 1, 1, W).expand(B, C, H, W))
    return out.contiguous(memory_format=torch.channels_last)


def channel_stats(images: np.ndarray, chunk: int = 5000) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation (in ``[0, 1]`` units) of uint8 NHWC ``images``."""
    channels = images.shape[-1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, len(images), chunk):
        x = torch.from_numpy(np.array(images[start : start + chunk])).reshape(-1, channels).double() / 255.0
        total += x.sum(0)
        squares += (x * x).sum(0)
    n = len(images) * int(np.prod(images.shape[1:-1]))
    mean = total / n
    variance = (squares / n - mean * mean) * n / max(n - 1, 1)
    return mean.float(), variance.clamp_min(0).sqrt().float()


class DeviceImages:
    """Whole image splits on ``device``: uint8 images (NCHW, channels-last memory) and int64 labels.

    ``splits`` maps a split name to ``(images uint8 [N, H, W, C], labels [N])``; normalisation uses
    the statistics of ``stats_split`` (the training images).
    """

    def __init__(self, splits: Mapping[str, tuple[np.ndarray, np.ndarray]], device: torch.device | str,
                 stats_split: str = "train"):
        self.device = torch.device(device)
        self.mean, self.std = channel_stats(splits[stats_split][0])
        self._scale = (1.0 / (255.0 * self.std)).view(1, -1, 1, 1).to(self.device)
        self._shift = (-self.mean / self.std).view(1, -1, 1, 1).to(self.device)
        self.images: dict[str, torch.Tensor] = {}
        self.labels: dict[str, torch.Tensor] = {}
        for name, (images, labels) in splits.items():
            # NHWC uint8 → an NCHW view of channels-last memory, copied once to the device
            self.images[name] = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2)
            self.labels[name] = torch.as_tensor(np.asarray(labels), dtype=torch.long).to(self.device)

    def size(self, split: str) -> int:
        return len(self.labels[self._check(split)])

    def _check(self, split: str) -> str:
        if split not in self.images:
            raise ValueError(f"unknown split {split!r}; splits: {', '.join(self.images)}")
        return split

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images → float32, per-channel standardised (channels-last memory kept)."""
        return (images.float() * self._scale + self._shift).contiguous(memory_format=torch.channels_last)

    def normalized(self, split: str, index: torch.Tensor | slice | None = None) -> torch.Tensor:
        images = self.images[self._check(split)]
        return self.normalize(images if index is None else images[index])

    def train_batches(self, batch_size: int, seed: int, augmentation: Augmentation | None = None,
                      split: str = "train", start: int = 0) -> Iterator[Batch]:
        """Endless batches ``{"inputs", "targets"}``: reshuffled every epoch, augmented batch-wise.

        ``start``: begin at batch ``start``. Permutations and augmentation draws share one generator,
        so the skipped batches' draws are made again, in the stream's order, here at the call (a
        ``randperm`` per epoch and the augmentation's small CPU draws per batch; no image is touched).
        """
        images, labels = self.images[self._check(split)], self.labels[split]
        generator = make_generator(seed)
        if augmentation is None:
            indices = epoch_index_batches(len(labels), int(batch_size), generator, self.device, start)
        else:
            indices = epoch_index_batches(len(labels), int(batch_size), generator, self.device)
            if isinstance(start, bool) or int(start) != start or start < 0:
                raise ValueError(f"start must be a batch index >= 0, got {start!r}")
            for _ in range(int(start)):
                next(indices)
                augmentation.draw(int(batch_size), generator)
        return self._batches(images, labels, indices, augmentation, generator)

    def _batches(self, images: torch.Tensor, labels: torch.Tensor, indices: Iterator[torch.Tensor],
                 augmentation: Augmentation | None, generator: torch.Generator) -> Iterator[Batch]:
        for index in indices:
            inputs = self.normalize(images[index])
            if augmentation is not None:
                inputs = augmentation(inputs, generator)
            yield {"inputs": inputs, "targets": labels[index]}

    @torch.no_grad()
    def logits(self, forward: Callable[[torch.Tensor], torch.Tensor], split: str, batch_size: int,
               tta: int = 0) -> torch.Tensor:
        """Float32 logits of the whole ``split`` (fixed contiguous batches), averaged over TTA views."""
        if tta not in TTA_LEVELS:
            raise ValueError(f"tta must be one of {TTA_LEVELS}, got {tta}")
        n = self.size(split)
        out = []
        for start in range(0, n, batch_size):
            x = self.normalized(split, slice(start, start + batch_size))
            out.append(tta_logits(forward, x, tta))
        return torch.cat(out)

    def evaluate(self, forward: Callable[[torch.Tensor], torch.Tensor], split: str, batch_size: int,
                 tta: int = 0) -> dict[str, float]:
        """``{"loss", "accuracy"}`` of ``forward`` on the whole ``split`` (cross-entropy of the averaged logits)."""
        logits = self.logits(forward, split, batch_size, tta)
        labels = self.labels[split]
        loss = F.cross_entropy(logits, labels, reduction="sum").double()
        correct = (logits.argmax(-1) == labels).sum()
        n = len(labels)
        return {"loss": float(loss) / n, "accuracy": float(correct) / n}


def tta_logits(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tta: int) -> torch.Tensor:
    """Logits of ``x`` averaged over the views of TTA level ``tta`` (see the module docstring)."""

    def plain(v: torch.Tensor) -> torch.Tensor:
        return forward(v).float()

    def mirrored(v: torch.Tensor) -> torch.Tensor:
        return 0.5 * (plain(v) + plain(v.flip(-1)))

    if tta == 0:
        return plain(x)
    if tta == 1:
        return mirrored(x)
    B = len(x)
    offsets = (torch.zeros(B, dtype=torch.long), torch.full((B,), 2, dtype=torch.long))
    # crops of the 1-px reflect-padded batch at (0, 0) and (2, 2): the content moves by (+1, +1) and (-1, -1)
    shifted = [shift_and_flip(x, offset, offset, None, 1) for offset in offsets]
    return 0.5 * mirrored(x) + 0.25 * mirrored(shifted[0]) + 0.25 * mirrored(shifted[1])
