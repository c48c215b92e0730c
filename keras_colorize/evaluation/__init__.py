"""Evaluation: colorizers and the gray baseline scored with one protocol, and the report files.

`protocol` runs models over a data set with streaming metrics (`evaluate_models`,
`MetricPlan`); `report` writes the per-image CSV, the summary JSON, the comparison
grid and the self-contained HTML report (`write_evaluation_report`). Importing this
package does not import Keras.

Examples:
    >>> from keras_colorize.evaluation import MetricPlan, write_evaluation_report
    >>> plan = MetricPlan(metrics=["psnr", "ssim", "ciede2000"])  # doctest: +SKIP
"""

from keras_colorize.evaluation.protocol import (
    DEFINITIONS,
    DIRECTIONS,
    FID_MIN_IMAGES,
    GRAY_KEY,
    LEGACY_METRIC_NAMES,
    LEGACY_ROWS,
    METRICS,
    RANDOM_WEIGHTS,
    SET_METRICS,
    MetricPlan,
    evaluate_colorizer,
    evaluate_models,
    model_run_size,
    parse_metric_names,
)
from keras_colorize.evaluation.report import (
    NUM_EXAMPLES,
    PROTOCOL,
    REPORT_FILES,
    PerImageWriter,
    build_summary,
    checkpoint_labels,
    checkpoint_record,
    format_table,
    protocol_lines,
    render_html,
    report_paths,
    write_evaluation_report,
)

METRIC_NAMES = LEGACY_METRIC_NAMES
"""The columns of `evaluate_colorizer`, in report order."""

ROWS = LEGACY_ROWS
"""(key in the result, label in the table) of the rows of `evaluate_colorizer`."""

__all__ = [
    "DEFINITIONS",
    "DIRECTIONS",
    "FID_MIN_IMAGES",
    "GRAY_KEY",
    "METRICS",
    "METRIC_NAMES",
    "NUM_EXAMPLES",
    "PROTOCOL",
    "RANDOM_WEIGHTS",
    "REPORT_FILES",
    "ROWS",
    "SET_METRICS",
    "MetricPlan",
    "PerImageWriter",
    "build_summary",
    "checkpoint_labels",
    "checkpoint_record",
    "evaluate_colorizer",
    "evaluate_models",
    "format_table",
    "model_run_size",
    "parse_metric_names",
    "protocol_lines",
    "render_html",
    "report_paths",
    "write_evaluation_report",
]
