"""Helpers shared by the benchmarks: memory readings, JSON lines, subprocess runs.

Every benchmark prints one JSON object per line; a driver process launches the
measurements in fresh subprocesses (one backend per process, KERAS_BACKEND set
before Keras is imported) and reads their lines back.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BACKENDS = ("tensorflow", "jax", "torch")
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PHOTOS = REPO_ROOT.parent / "shared" / "data" / "photos"


def peak_rss_mib():
    """Peak resident set size of this process (high-water mark), in MiB."""
    status = _proc_status()
    if "VmHWM" in status:
        return status["VmHWM"] / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mib():
    """Current resident set size of this process, in MiB (0 where /proc is missing)."""
    return _proc_status().get("VmRSS", 0) / 1024.0


def reset_peak_rss():
    """Reset the peak RSS high-water mark to the current RSS (Linux >= 4.0).

    Returns:
        True when the reset worked, False otherwise (the peak then includes
        everything before).
    """
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _proc_status():
    values = {}
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    values[key] = float(rest.split()[0])  # kB
    except OSError:
        pass
    return values


def emit(record):
    """Print one measurement as one JSON line (flushed)."""
    print(json.dumps(record), flush=True)


def run_json_lines(module, args, backend=None, env=None):
    """Run `python -m benchmarks.<module> ARGS` in a fresh process; return its JSON lines.

    Args:
        module: str. Benchmark module name under `benchmarks`.
        args: list of str. Command-line arguments.
        backend: str or None. KERAS_BACKEND of the child. Defaults to None
            (inherit).
        env: dict or None. Extra environment variables.

    Returns:
        list of dict, one per JSON line the child printed. Raises
        `RuntimeError` with the child's last output lines if it fails.
    """
    child_env = dict(os.environ)
    if backend is not None:
        child_env["KERAS_BACKEND"] = backend
    child_env.update(env or {})
    child_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    command = [sys.executable, "-m", f"benchmarks.{module}", *[str(a) for a in args]]
    result = subprocess.run(command, cwd=REPO_ROOT, env=child_env, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(command)} failed (exit {result.returncode}):\n{tail}")
    records = []
    for line in result.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def time_steps(step, steps, warmup):
    """Time `step()`: one first call (compilation, warm-up allocations), `warmup` more, then `steps` timed.

    Args:
        step: callable without arguments; it must return only once its work is done.
        steps: int. Timed calls.
        warmup: int. Untimed calls after the first.

    Returns:
        `(first_s, step_s, result)`: the first call's seconds, the mean seconds of a
        timed call, and the last call's result.
    """
    start = time.perf_counter()
    result = step()
    first_s = time.perf_counter() - start
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        result = step()
    return first_s, (time.perf_counter() - start) / steps, result


def median(values):
    """Median of a non-empty list of numbers, or None for an empty one."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def machine():
    """The CPU model and core count, for the records."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count()}


def photo_batch(image_size, batch_size):
    """A training batch from the photos that ship with scikit-image and scikit-learn.

    Each photo is resized so its shorter side is `image_size` and centre-cropped;
    the photos repeat when the batch is larger than their number. Imports
    neither Keras nor PyTorch.

    Returns:
        np.ndarray of sRGB in [0, 1], float32, shape (batch_size, image_size,
        image_size, 3).
    """
    import numpy as np

    from keras_colorize.data import sample_photo_paths
    from keras_colorize.data.files import center_crop, load_image, resize_short_side

    paths = sample_photo_paths()
    photos = [center_crop(resize_short_side(load_image(p), image_size), image_size) for p in paths]
    return np.stack([photos[i % len(photos)] for i in range(batch_size)]).astype("float32") / 255.0


def parse_widths(text):
    """Encoder filters from "64,64,128,..." (None for the zoo defaults)."""
    if text is None or text == "":
        return None
    return tuple(int(part) for part in str(text).split(","))
