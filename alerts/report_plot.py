"""`clonewatch replay --plot DIR`: one PNG per input file.

One panel per participant: the window scores over media time, the speech regions (the
spans the scored windows cover, shaded), the verdict thresholds as horizontal lines, and
a red mark at each alert. matplotlib is imported here only, with the non-interactive Agg
backend, so the service never loads it. Drawing blocks: run it off the event loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from alerts.report import FileReport, ParticipantSummary, output_stem

if TYPE_CHECKING:
    from matplotlib.axes import Axes

PANEL_HEIGHT_IN = 2.2
FIGURE_WIDTH_IN = 10.0
DPI = 100
_THRESHOLD_STYLES = ("--", ":", "-.")


def speech_regions(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Merge overlapping (start_s, end_s) spans into disjoint regions, sorted."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def write_plot(report: FileReport, directory: Path, thresholds: Mapping[str, float]) -> Path:
    """Draw `report` into `directory`/<stem>.png (blocking); returns the path.

    Args:
        report: The file's report.
        directory: Created when missing.
        thresholds: Named score thresholds to draw, e.g. {"suspect": 0.5, "synthetic": 0.8}.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{output_stem(report.file)}.png"
    panels = max(len(report.participants), 1)
    fig, axes = plt.subplots(
        panels,
        1,
        sharex=True,
        squeeze=False,
        figsize=(FIGURE_WIDTH_IN, PANEL_HEIGHT_IN * panels + 0.8),
    )
    try:
        for ax, participant in zip(axes[:, 0], report.participants, strict=False):
            _draw_participant(ax, participant, thresholds)
        axes[-1, 0].set_xlabel("media time (s)")
        axes[-1, 0].set_xlim(0.0, max(report.duration_s, 0.1))
        title = report.file if report.error is None else f"{report.file} (failed: {report.error})"
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)
    return path


def _draw_participant(
    ax: Axes, participant: ParticipantSummary, thresholds: Mapping[str, float]
) -> None:
    scores = participant.record.scores
    for start, end in speech_regions([(s.start_s, s.end_s) for s in scores]):
        ax.axvspan(start, end, color="tab:green", alpha=0.12, linewidth=0)
    if scores:
        mids = [(s.start_s + s.end_s) / 2 for s in scores]
        ax.plot(mids, [s.score for s in scores], marker=".", color="tab:blue", label="score")
    for (name, value), style in zip(
        sorted(thresholds.items()), _THRESHOLD_STYLES * 4, strict=False
    ):
        ax.axhline(
            value, linestyle=style, color="tab:orange", linewidth=1, label=f"{name} {value:g}"
        )
    for i, at_s in enumerate(participant.record.alerts_s):
        ax.axvline(at_s, color="tab:red", linewidth=1.5, label="alert" if i == 0 else None)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("score")
    label = f" [{participant.label}]" if participant.label else ""
    ax.set_title(f"{participant.id}{label}: {participant.verdict}", fontsize=9, loc="left")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=7)
