"""Where and how tensors run: device choice, mixed precision, and the environment record.

Kept apart so the trainer, the evaluator and the dashboard make the same choices.
"""

from __future__ import annotations

import contextlib
import importlib.util
import platform
import re
import sys
from pathlib import Path

import torch

from .. import __version__
from ..errors import ConfigError


def pick_device(name: str = "auto") -> torch.device:
    """`auto` is CUDA when present, else the CPU (slow, but correct)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for, but no CUDA GPU is available")
    if (
        device.type == "cuda"
        and device.index is not None
        and device.index >= torch.cuda.device_count()
    ):
        raise ConfigError(
            f"device {name!r} was asked for, but there are only {torch.cuda.device_count()} GPUs"
        )
    return device


def autocast(device: torch.device, precision: str = "auto"):
    """bf16 autocast on CUDA (the default there); fp32 elsewhere unless asked."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if use_bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def environment(device: torch.device) -> dict:
    """Versions and hardware, stored with every run so its figures can be placed."""
    env = {
        "tinyviz": __version__,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": str(device),
    }
    version = _torchvision_version()
    if version:
        env["torchvision"] = version
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    else:
        env["cpu_threads"] = torch.get_num_threads()
    return env


def limit_threads(threads: int) -> None:
    """Run torch's CPU operations on at most `threads` threads, and its inter-op work on
    one (when it has not started yet).

    The dashboard serves each session from a thread of its own, and each of them would
    otherwise start a team of one thread per core for every operation: on a 2-core machine
    busy with other work, a ResNet's forward pass then took three times as long as on one
    thread (bench/results/crowd_cpu.txt). Sessions run side by side anyway, and background
    workers leave the server a core.
    """
    torch.set_num_threads(max(1, int(threads)))
    with contextlib.suppress(RuntimeError):  # inter-op work has started: it stays as it is
        torch.set_num_interop_threads(1)


SWITCH_SECONDS = 0.00025  # the server's interpreter switch interval (Python's default: 5 ms)


def share_interpreter(seconds: float = SWITCH_SECONDS) -> None:
    """Let a thread that waits for the interpreter lock have it after `seconds` of another
    thread's Python, not Python's default 5 ms.

    Each torch operation lets the lock go while it computes and must get it back to return:
    while other sessions' script runs are busy in Python (charts, tables, Streamlit's own
    messages), each of the hundreds of operations of a photo's forward and backward passes
    waited up to the whole interval. A Classify photo (two models' top-5 and Grad-CAM) took
    21.5 s with three busy Python threads at 5 ms, 1.3 s at 0.25 ms, 0.12 s alone; the
    price, the interpreter changing hands more often, was 16-27% less Python done by the
    busy threads meanwhile (bench/results/interpreter_share.txt). Classify comes first at
    a poster (issue 19); 0.1 ms gained less (1.0 s) and cost more (38%). The server sets it
    once its warm-up imports are done (`pages/_cache.warm_up` says why)."""
    sys.setswitchinterval(seconds)


def _torchvision_version() -> str | None:
    """`torchvision.__version__` (build tag included, as in `0.29.1+cu130`), read from its
    `version.py` unless torchvision is imported already: importing it takes seconds (it
    imports torch's compiler), and only the models built from torchvision's need it."""
    loaded = sys.modules.get("torchvision")
    if loaded is None:
        spec = importlib.util.find_spec("torchvision")
        path = Path(spec.origin).parent / "version.py" if spec and spec.origin else None
        text = path.read_text() if path and path.is_file() else ""
        found = re.search(r"^__version__ = ['\"]([^'\"]+)['\"]$", text, re.M)
        if found:
            return found.group(1)
        try:  # an install laid out otherwise: ask the package
            import torchvision as loaded
        except ImportError:  # pragma: no cover - torchvision is a requirement
            return None
    return loaded.__version__
