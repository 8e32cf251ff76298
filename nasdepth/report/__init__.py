"""Reports: tables from the storage, statistics, figures drawn from the tables, and the
HTML/Markdown/CSV writers."""

from nasdepth.report.stats import TTest, corrected_resampled_ttest, one_se_rule, pareto_mask
from nasdepth.report.tables import StudyTables, collect, top_trials, trials_frame
from nasdepth.report.writers import write_report

__all__ = [
    "StudyTables", "TTest", "collect", "corrected_resampled_ttest", "one_se_rule",
    "pareto_mask", "top_trials", "trials_frame", "write_report",
]
