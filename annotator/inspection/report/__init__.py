"""`annotate report`: one self-contained HTML page of a run: outcomes, value distributions, extreme and uncertain
faces, agreement with labels, data-quality flags and near-duplicates.

``gather`` reads the facts in a few set-based queries, ``figures`` and ``duplicates`` compute with NumPy,
``charts`` draws with matplotlib, ``thumbnails`` cuts the few faces shown, ``sections`` and ``html`` write the
page, ``build`` runs it all.
"""

from annotator.inspection.report.build import BuiltReport, build_report

__all__ = ["BuiltReport", "build_report"]
