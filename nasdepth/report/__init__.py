"""Reports: tables from the storage, figures drawn from them, Markdown/CSV writers."""

from nasdepth.report.tables import top_trials, trials_frame
from nasdepth.report.writers import write_report

__all__ = ["top_trials", "trials_frame", "write_report"]
