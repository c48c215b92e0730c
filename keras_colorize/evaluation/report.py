"""The files of an evaluation: per-image CSV, summary JSON, comparison grid and HTML report.

`write_evaluation_report` runs `evaluate_models` with the per-image rows streamed into
the CSV as they come, then writes the summary, the grid and a self-contained HTML page
(table and example images embedded as base64 PNG). Every file is written atomically.
Nothing here imports Keras at module level.
"""

import base64
import contextlib
import csv
import hashlib
import html
import io
import json
import math
import string
from pathlib import Path

import numpy as np

from keras_colorize.evaluation.protocol import (
    DEFINITIONS,
    DIRECTIONS,
    GRAY_KEY,
    GRAY_LABEL,
    SET_METRICS,
    evaluate_models,
    file_sha256,
)

REPORT_FILES = {
    "summary": "metrics.json",
    "per_image": "per_image.csv",
    "grid": "comparison.png",
    "html": "report.html",
}
"""The files of a report in its folder (key -> file name)."""

NUM_EXAMPLES = 8
"""Images shown in the comparison grid and the HTML report."""

PROTOCOL = {
    "images": "sRGB in [0, 1], float32; predictions are never rounded to uint8 before scoring",
    "crop": "each photo's shorter side resized to the evaluation size (Pillow bicubic, antialiased; "
    "large JPEGs first decoded at a reduced DCT scale no smaller than that), then the centre square crop",
    "prediction": "the image's own L* with the predicted a*b*, converted to sRGB (metrics are taken on this, "
    "never on the gray input); the gray baseline keeps L* with a* = b* = 0",
    "ssim_window": "11x11 Gaussian, sigma 1.5, on R, G and B",
    "averaging": "per image, then the mean over images (FID and KID: over the whole set)",
}
"""The protocol, one line per aspect (also written into every report)."""


def report_paths(output):
    """The report files in `output`: a dict of key -> Path (see `REPORT_FILES`)."""
    output = Path(output)
    return {key: output / name for key, name in REPORT_FILES.items()}


def checkpoint_labels(paths):
    """Short, unique row names for checkpoints.

    One checkpoint is "model". Several are named by their file stem, with as many
    parent folders as it takes to tell them apart (a `checkpoints` folder is skipped):
    `runs/a/checkpoints/best.keras` and `runs/b/checkpoints/best.keras` become
    "a/best" and "b/best".

    Args:
        paths: sequence of str or Path.

    Returns:
        list of str, one per path.
    """
    paths = [Path(p) for p in paths]
    if len(paths) == 1:
        return ["model"]
    parts = [[q for q in p.with_suffix("").parts if q not in ("checkpoints", "/", "")] for p in paths]
    depth = 1
    while True:
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels) or depth >= max(len(p) for p in parts):
            break
        depth += 1
    seen = {}
    unique = []
    for label in labels:
        if label in (GRAY_KEY, GRAY_LABEL):
            label = f"{label} (model)"
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return unique


def checkpoint_record(path, colorizer):
    """What a report says about a checkpoint: path, hash, generator and trained size.

    Args:
        path: str, Path or None. The `.keras` file or the preset (name or folder;
            its weight file is hashed), None for a model in memory.
        colorizer: keras_colorize.Colorizer. The loaded model.

    Returns:
        dict: `checkpoint` and `sha256` (None without a file), `generator` and
        `trained_size` ([H, W]).
    """
    from keras_colorize.presets import WEIGHTS_FILE, is_preset, resolve_preset

    if path is None:
        digest = None
    elif is_preset(path):
        digest = file_sha256(resolve_preset(path) / WEIGHTS_FILE)
    elif Path(path).is_dir():  # a SavedModel or an InstructPix2Pix preset folder
        digest = folder_sha256(path)
    else:
        digest = file_sha256(path)
    generator = getattr(colorizer, "generator", None)
    image_size = getattr(colorizer, "image_size", None)
    return {
        "checkpoint": None if path is None else str(path),
        "sha256": digest,
        "generator": type(generator if generator is not None else colorizer).__name__,
        "trained_size": None if image_size is None else [int(s) for s in image_size],
    }


def folder_sha256(folder):
    """The SHA-256 of a folder: every file's relative path and bytes, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(bytes.fromhex(file_sha256(path)))
    return digest.hexdigest()


# ----------------------------------------------------------------------------- text


def _format_value(value):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "nan"
    if abs(value) >= 100:
        return f"{value:.2f}"
    if abs(value) >= 1:
        return f"{value:.4f}"
    return f"{value:.5f}"


def format_table(result):
    """The metrics of an evaluation as a fixed-width text table.

    Args:
        result: dict. As returned by `evaluate_models` or `evaluate_colorizer`
            (or the summary of `write_evaluation_report`).

    Returns:
        A string: a header row of column names, then one row per model and the
        gray baseline.
    """
    from keras_colorize.evaluation.protocol import LEGACY_METRIC_NAMES, LEGACY_ROWS

    columns = list(result.get("columns") or LEGACY_METRIC_NAMES)
    rows = [tuple(r) for r in (result.get("rows") or LEGACY_ROWS)]
    values = result["metrics"] if "metrics" in result else result
    label_width = max(len(label) for _, label in rows)
    widths = [max(len(name), 9) for name in columns]
    lines = ["  ".join([" " * label_width] + [name.rjust(w) for name, w in zip(columns, widths)])]
    for key, label in rows:
        cells = [_format_value(values[key].get(name)).rjust(w) for name, w in zip(columns, widths)]
        lines.append("  ".join([label.ljust(label_width)] + cells))
    return "\n".join(lines)


def _left_out_lines(left_out):
    """Left-out columns grouped by reason, one line each."""
    by_reason = {}
    for name, reason in left_out.items():
        by_reason.setdefault(reason, []).append(name)
    return [f"{', '.join(names)} left out: {reason}" for reason, names in by_reason.items()]


def _weights_text(record):
    if "sha256" in record:
        text = f"{record['file']} (sha256 {record['sha256'][:16]})"
    else:
        text = record.get("note", "")
    if record.get("network"):
        text = f"{record['network']}, {text}"
    return text


def _skipped_text(skipped):
    total = sum(skipped.values())
    if not total:
        return "none skipped"
    return f"{total} skipped ({', '.join(f'{n} {reason}' for reason, n in skipped.items())})"


def protocol_lines(summary, models=True):
    """The header of a report: data, protocol, models, metric definitions, weights.

    Args:
        summary: dict. As returned by `write_evaluation_report` (`build_summary`).
        models: bool. Include one line per checkpoint. Defaults to True.

    Returns:
        list of str, one line each.
    """
    size = summary["image_size"]
    lines = [
        f"data: {summary['data']}: {summary['num_images']} images at {size}x{size}, "
        f"{_skipped_text(summary['skipped'])}",
    ]
    lines += [f"{aspect}: {text}" for aspect, text in summary["protocol"].items() if aspect != "definitions"]
    for key, record in (summary["models"] if models else {}).items():
        run = "x".join(str(s) for s in record["run_size"])
        how = {
            "direct": "directly on the crops",
            "photo": "on the gray crops as whole photos",
        }.get(record["mode"], f"at {run}, ab resized back to the crops")
        source = f"{record['checkpoint']} (sha256 {record['sha256'][:16]}, " if record.get("checkpoint") else "("
        trained = f"trained at {'x'.join(str(s) for s in record['trained_size'])}, " if record.get("trained_size") else ""
        lines.append(f"{key}: {source}{record['generator']} {trained}run {how})")
    for name in summary["columns"]:
        lines.append(f"{name}: {summary['protocol']['definitions'][name]}")
    for name, record in summary["weights"].items():
        lines.append(f"{name} weights: {_weights_text(record)}")
    lines += _left_out_lines(summary["left_out"])
    lines.append(f"backend: {summary['backend']} (keras {summary['versions']['keras']})")
    return lines


# ----------------------------------------------------------------------------- files


class PerImageWriter:
    """Writes the per-image CSV row by row, atomically (the file appears when closed).

    Columns: `image` (0-based index), `file`, `model` (row name, "gray_baseline" for
    the baseline) and each per-image metric.

    Args:
        path: str or Path. The CSV file.
        columns: sequence of str. The per-image metric columns.
    """

    def __init__(self, path, columns):
        self.path = Path(path)
        self.columns = list(columns)
        self.rows = 0
        self._stack = None
        self._writer = None

    def __enter__(self):
        from keras_colorize.atomic_files import atomic_file

        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_file(self.path))
        handle = self._stack.enter_context(open(tmp, "w", newline="", encoding="utf-8"))
        self._writer = csv.writer(handle)
        self._writer.writerow(["image", "file", "model", *self.columns])
        return self

    def write(self, rows):
        """Append rows: dicts with `image`, `file`, `model` and the metric columns."""
        for row in rows:
            cells = [row["image"], row["file"], row["model"]]
            cells += [format(float(row[name]), ".8g") for name in self.columns]
            self._writer.writerow(cells)
            self.rows += 1

    def __exit__(self, *exc_info):
        return self._stack.__exit__(*exc_info)


def build_summary(result, plan, models, data, skipped=None, skipped_files=None, crop=None):
    """The summary of an evaluation (the content of metrics.json).

    Args:
        result: dict. As returned by `evaluate_models`.
        plan: MetricPlan. The plan the evaluation ran with.
        models: dict. Row name -> `checkpoint_record` (or any dict with
            `checkpoint`, `sha256`, `generator`, `trained_size`).
        data: str. Where the images came from.
        skipped: dict or None. Skip reason -> count. Defaults to None.
        skipped_files: dict or None. Skip reason -> list of file names. Defaults
            to None.
        crop: str or None. How the images were resized and cropped. Defaults to
            None (`PROTOCOL["crop"]`).

    Returns:
        A JSON-ready dict.
    """
    import keras

    from keras_colorize import __version__

    backend = keras.backend.backend()
    try:
        backend_version = __import__(backend).__version__
    except (ImportError, AttributeError):
        backend_version = None
    height, width = result["image_size"]
    definitions = {name: DEFINITIONS[name].format(network=plan.lpips_network) for name in result["columns"]}
    model_records = {}
    for key, _ in result["rows"]:
        if key == GRAY_KEY:
            continue
        record = dict(models.get(key, {}))
        record.update(result["models"][key])
        model_records[key] = record
    return {
        "report": "keras-colorize evaluation",
        "data": str(data),
        "num_images": result["num_images"],
        "image_size": height if height == width else [height, width],
        "skipped": dict(skipped or {}),
        "skipped_files": {k: [str(f) for f in v] for k, v in (skipped_files or {}).items()},
        "protocol": dict(PROTOCOL, crop=crop or PROTOCOL["crop"], definitions=definitions),
        "columns": list(result["columns"]),
        "directions": {name: DIRECTIONS[name] for name in result["columns"]},
        "left_out": dict(plan.left_out),
        "weights": {name: dict(record) for name, record in plan.weights.items() if name in result["columns"]},
        "models": model_records,
        "rows": [list(row) for row in result["rows"]],
        "metrics": result["metrics"],
        "std": result["std"],
        "truth": result["truth"],
        "backend": backend,
        "versions": {"keras_colorize": __version__, "keras": keras.__version__, backend: backend_version},
        "files": dict(REPORT_FILES),
    }


def write_summary(path, summary):
    """Write the summary as indented JSON, atomically."""
    from keras_colorize.atomic_files import atomic_file

    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def _example_columns(examples, rows):
    """(label, images) per column: gray input, each model, truth."""
    columns = [("gray input", examples["gray"])]
    columns += [(label, examples["predictions"][key]) for key, label in rows if key != GRAY_KEY]
    columns.append(("truth", examples["truth"]))
    return columns


def write_grid(path, examples, rows):
    """Write the comparison grid PNG: one row per example; gray input, each model, truth."""
    from PIL import Image

    from keras_colorize.atomic_files import atomic_file
    from keras_colorize.visualization import comparison_grid

    columns = _example_columns(examples, rows)
    grid = comparison_grid([images for _, images in columns], labels=[label for label, _ in columns])
    with atomic_file(path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")


def _png_data_uri(image):
    from PIL import Image

    array = np.clip(np.rint(np.asarray(image, "float32") * 255.0), 0, 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


_PAGE = string.Template(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>$title</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; }
h2 { font-size: 1.1em; margin-top: 1.6em; }
table { border-collapse: collapse; }
th, td { padding: 0.25em 0.6em; text-align: right; border-bottom: 1px solid #ddd; }
th:first-child, td:first-child { text-align: left; }
td.best { font-weight: bold; }
table#models th, table#models td { text-align: left; }
span.std { color: #888; font-size: 0.8em; }
tr.baseline td { color: #666; }
ul.protocol { font-size: 0.9em; }
ul.protocol li { margin: 0.15em 0; }
table.examples td, table.examples th { text-align: center; border: none; }
table.examples img { image-rendering: pixelated; display: block; }
figcaption, .caption { font-size: 0.75em; color: #666; }
</style>
</head>
<body>
<h1>$title</h1>
<p id="summary">$summary_line</p>
<h2>Results</h2>
<table id="metrics">
<thead><tr><th>row</th>$header_cells</tr></thead>
<tbody>
$body_rows
</tbody>
</table>
<p class="caption">Means over images (FID and KID over the whole set); &plusmn; the standard deviation over images.
Bold: the best value of a column. Truth colourfulness: $truth_colorfulness.</p>
<h2>Models</h2>
<table id="models">
<thead><tr><th>row</th><th>checkpoint</th><th>sha256</th><th>generator</th><th>trained at</th><th>run</th></tr></thead>
<tbody>
$model_rows
</tbody>
</table>
<h2>Protocol</h2>
<ul class="protocol">
$protocol_items
</ul>
$skipped_section
<h2>Examples</h2>
<table class="examples" id="examples">
<thead><tr>$example_header</tr></thead>
<tbody>
$example_rows
</tbody>
</table>
<h2>Files</h2>
<ul>
$file_items
</ul>
</body>
</html>
"""
)


def _best_rows(summary):
    best = {}
    for name in summary["columns"]:
        direction = summary["directions"][name]
        values = [(summary["metrics"][key][name], key) for key, _ in summary["rows"]]
        values = [(v, k) for v, k in values if v is not None and math.isfinite(v)]
        if direction is None or not values:
            continue
        best[name] = (max(values) if direction == "higher" else min(values))[1]
    return best


def render_html(summary, examples=None):
    """The self-contained HTML report (a string).

    Args:
        summary: dict. As built by `build_summary`.
        examples: dict or None. The `examples` of `evaluate_models` (sRGB in
            [0, 1], float32): shown as embedded PNGs, gray input, each model and
            the truth per row. Defaults to None.

    Returns:
        str: the page; it loads nothing from outside itself.
    """
    escape = html.escape
    arrows = {"higher": " &uarr;", "lower": " &darr;", None: ""}
    header_cells = "".join(
        f'<th title="{escape(summary["protocol"]["definitions"][name])}">{escape(name)}'
        f"{arrows[summary['directions'][name]]}</th>"
        for name in summary["columns"]
    )
    best = _best_rows(summary)
    body_rows = []
    for key, label in summary["rows"]:
        cells = []
        for name in summary["columns"]:
            value = summary["metrics"][key][name]
            std = summary["std"].get(key, {}).get(name)
            text = escape(_format_value(value))
            if std is not None and name not in SET_METRICS:
                text += f' <span class="std">&plusmn;{escape(_format_value(std))}</span>'
            css = ' class="best"' if best.get(name) == key else ""
            cells.append(f"<td{css}>{text}</td>")
        row_class = ' class="baseline"' if key == GRAY_KEY else ""
        body_rows.append(f'<tr{row_class} data-row="{escape(key)}"><td>{escape(label)}</td>{"".join(cells)}</tr>')
    protocol_items = "\n".join(f"<li>{escape(line)}</li>" for line in protocol_lines(summary, models=False))
    model_rows = []
    for key, record in summary["models"].items():
        run = "x".join(str(s) for s in record["run_size"])
        how = {"direct": "on the crops", "photo": "on the gray crops as whole photos"}.get(
            record["mode"], f"at {run}, ab resized to the crops"
        )
        cells = [
            key,
            record.get("checkpoint") or "(in memory)",
            (record.get("sha256") or "")[:16],
            record.get("generator", ""),
            "x".join(str(s) for s in record.get("trained_size") or []),
            how,
        ]
        model_rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    skipped_section = ""
    if summary["skipped_files"]:
        items = [
            f"<li>{escape(name)} ({escape(reason)})</li>"
            for reason, names in summary["skipped_files"].items()
            for name in names
        ]
        more = f"<li>and {len(items) - 50} more</li>" if len(items) > 50 else ""
        skipped_section = '<h2>Skipped</h2>\n<ul id="skipped">\n' + "\n".join(items[:50]) + more + "\n</ul>"

    example_header = ""
    example_rows = []
    if examples is not None and len(examples["truth"]):
        columns = _example_columns(examples, summary["rows"])
        example_header = "<th>file</th>" + "".join(f"<th>{escape(label)}</th>" for label, _ in columns)
        height, width = examples["truth"].shape[1:3]
        scale = max(1, math.ceil(128 / max(height, width)))
        for index, name in enumerate(examples["files"]):
            cells = [f'<td class="caption">{escape(str(name))}</td>']
            for label, images in columns:
                cells.append(
                    f'<td><img src="{_png_data_uri(images[index])}" width="{width * scale}" '
                    f'height="{height * scale}" alt="{escape(label)}: {escape(str(name))}"></td>'
                )
            example_rows.append(f"<tr>{''.join(cells)}</tr>")
    file_items = "\n".join(
        f'<li><a href="{escape(name)}">{escape(name)}</a></li>'
        for key, name in summary["files"].items()
        if key != "html"
    )
    title = f"keras-colorize evaluation: {', '.join(label for _, label in summary['rows'])}"
    size = summary["image_size"]
    return _PAGE.substitute(
        title=escape(title),
        summary_line=escape(
            f"{summary['num_images']} images from {summary['data']} at {size}x{size}, "
            f"{_skipped_text(summary['skipped'])}; backend {summary['backend']}."
        ),
        header_cells=header_cells,
        body_rows="\n".join(body_rows),
        truth_colorfulness=escape(_format_value(summary["truth"]["colorfulness"])),
        protocol_items=protocol_items,
        model_rows="\n".join(model_rows),
        skipped_section=skipped_section,
        example_header=example_header,
        example_rows="\n".join(example_rows),
        file_items=file_items,
    )


def write_html(path, summary, examples=None):
    """Write the HTML report (see `render_html`), atomically."""
    from keras_colorize.atomic_files import atomic_file

    with atomic_file(path) as tmp:
        tmp.write_text(render_html(summary, examples), encoding="utf-8")


def write_evaluation_report(
    colorizers,
    dataset,
    output,
    plan=None,
    models=None,
    data="",
    num_examples=NUM_EXAMPLES,
    verbose=0,
):
    """Evaluate colorizers and the gray baseline and write the report folder.

    Writes `REPORT_FILES` into `output`: `per_image.csv` (one row per image and row,
    streamed as the images are scored), `metrics.json` (the summary), `comparison.png`
    (gray input, each model, truth) and `report.html` (self-contained). Existing
    files are replaced (check first with `report_paths`).

    Args:
        colorizers: dict. Row name -> `keras_colorize.Colorizer` (see
            `checkpoint_labels`).
        dataset: keras.utils.PyDataset or iterable of batches, sRGB in [0, 1],
            float32, shape (N, H, W, 3). A `keras_colorize.data.ImageFolder` also
            gives the file names and the skipped files.
        output: str or Path. The report folder (created when missing).
        plan: MetricPlan or None. The columns. Defaults to None (the default plan).
        models: dict or None. Row name -> `checkpoint_record`. Defaults to None
            (the generator and size of each model, no file).
        data: str. The data set's name in the report. Defaults to "".
        num_examples: int. Images in the grid and the HTML page. Defaults to
            `NUM_EXAMPLES`.
        verbose: int. 1 shows a progress bar. Defaults to 0.

    Returns:
        The summary dict (also written to metrics.json).

    Examples:
        >>> from keras_colorize.loading import load_colorizer
        >>> from keras_colorize.data import ImageFolder
        >>> from keras_colorize.evaluation import write_evaluation_report
        >>> models = {"model": load_colorizer("best.keras")}  # doctest: +SKIP
        >>> summary = write_evaluation_report(models, ImageFolder("photos/", 64), "evaluation/")  # doctest: +SKIP
    """
    from keras_colorize.evaluation.protocol import MetricPlan, _num_images

    output = Path(output)
    paths = report_paths(output)
    if not isinstance(colorizers, dict):
        raise ValueError("colorizers must be a dict of row name -> Colorizer (see checkpoint_labels)")
    models = dict(models or {})
    for key, colorizer in colorizers.items():
        models.setdefault(key, checkpoint_record(None, colorizer))
    plan = plan if plan is not None else MetricPlan(num_images=_num_images(dataset))
    output.mkdir(parents=True, exist_ok=True)
    with PerImageWriter(paths["per_image"], plan.per_image_columns) as writer:
        result = evaluate_models(
            colorizers, dataset, plan=plan, num_examples=num_examples, on_rows=writer.write, verbose=verbose
        )
    skipped_files = getattr(dataset, "skipped", None) or {}
    root = getattr(dataset, "root", None)

    def relative(path):
        try:
            return str(Path(path).relative_to(root)) if root is not None else str(path)
        except ValueError:
            return str(path)

    resize_to = getattr(dataset, "resize_to", None)
    if resize_to is not None:
        size = "x".join(str(s) for s in result["image_size"])
        crop = PROTOCOL["crop"].replace("the evaluation size", str(resize_to)).replace(
            "the centre square crop", f"the centre {size} crop"
        )
    else:
        crop = "the images as given (the evaluation neither resizes nor crops them)"
    summary = build_summary(
        result,
        plan,
        models,
        data,
        skipped={reason: len(files) for reason, files in skipped_files.items()},
        skipped_files={reason: [relative(f) for f in files] for reason, files in skipped_files.items()},
        crop=crop,
    )
    examples = result.get("examples")
    write_summary(paths["summary"], summary)
    if examples is not None:
        write_grid(paths["grid"], examples, result["rows"])
    write_html(paths["html"], summary, examples)
    return summary
