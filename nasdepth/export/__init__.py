"""Export: refit a chosen trial (or keep its fold models), save it with its preprocessing and
metadata in one file, load it back as an ``nn.Module`` and predict with it.

``export_model(study, trial, path)`` writes the file; ``load_model(path)`` gives an
:class:`ExportedModel` in eval mode whose ``predict``/``predict_proba`` take raw inputs;
``predict(model, data)`` scores a data spec where it has labels.
"""

from nasdepth.export.model import FORMAT, FORMAT_VERSION, ExportedModel, load_model, save_model
from nasdepth.export.predictions import Prediction, predict, read_features, write_predictions
from nasdepth.export.refit import ExportResult, export_model, split_indices
from nasdepth.export.trial import pick_trial, refit_epochs, trial_record

__all__ = [
    "FORMAT", "FORMAT_VERSION", "ExportResult", "ExportedModel", "Prediction", "export_model",
    "load_model", "pick_trial", "predict", "read_features", "refit_epochs", "save_model",
    "split_indices", "trial_record", "write_predictions",
]
