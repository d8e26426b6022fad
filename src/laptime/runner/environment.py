"""What a result was measured on: hardware description, its fingerprint, library versions.

Scoring refuses to compare trials whose hardware fingerprints differ, so the fingerprint holds
only what changes speed (CPU model and core count, GPU model and count, torch's thread count and
build), not host names or free memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_info(device: str | torch.device) -> dict[str, Any]:
    device = torch.device(device)
    info: dict[str, Any] = {
        "device_type": device.type,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "system": platform.system(),
    }
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        info.update(
            gpu=props.name,
            gpu_count=1,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            gpu_capability=f"{props.major}.{props.minor}",
            cuda=torch.version.cuda,
            driver=_nvidia_driver(),
        )
    return info


def _nvidia_driver() -> str | None:
    """The NVIDIA driver's version (``/proc/driver/nvidia/version``, else ``nvidia-smi``), None if unknown."""
    import re
    import subprocess

    try:
        found = re.search(r"Kernel Module\s+(?:for \S+\s+)?([0-9][0-9.]+)",
                          Path("/proc/driver/nvidia/version").read_text())
        if found:
            return found.group(1)
    except OSError:
        pass
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout.split()
        return out[0] if out else None
    except (OSError, subprocess.SubprocessError):
        return None


def fingerprint(info: dict[str, Any]) -> str:
    """A short stable hash of the speed-relevant hardware description."""
    keys = ("device_type", "cpu", "cpu_count", "torch_threads", "machine", "gpu", "gpu_count", "cuda")
    payload = json.dumps({k: info.get(k) for k in keys}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "torch": torch.__version__}
    for name in ("laptime", "numpy", "scipy", "mnist1d", "torch_geometric"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def source_hash(files: list[Path]) -> str:
    """sha256 over the named files' contents (sorted by name), first 16 hex digits."""
    digest = hashlib.sha256()
    for path in sorted({Path(f) for f in files}, key=str):
        digest.update(path.name.encode())
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<unreadable>")
    return digest.hexdigest()[:16]
