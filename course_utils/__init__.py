"""Helpers for the transfer-learning course: one import line for the common verbs.

    from course_utils import load_backbone, load_dataset, freeze, replace_head, fit, evaluate

Every name below lives in one small module (``course_utils.backbones``, ``.datasets``, ...), where
its docstring and tests are. The names load on first use (PEP 562 ``__getattr__``), so
``import course_utils`` stays light: the grader's CLI imports the package without torch.
Maintainer tooling is in ``course_utils.tooling``, the grader in ``course_utils.grading``.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {  # module -> the public names a notebook or exercise imports from the package
    "backbones": ["load_backbone", "make_preprocess", "list_backbones", "imagenet_categories", "Backbone"],
    "batchnorm": ["adapt_bn", "bn_drift", "bn_layers", "bn_running_stats"],
    "checks": ["assert_bn_eval", "assert_frozen", "assert_trainable", "check_input_stats", "input_report"],
    "adapters": ["BottleneckAdapter", "add_adapters"],
    "config": ["cache_dir", "data_dir", "fast_mode", "is_fast", "repo_root"],
    "dann": ["dann_strength", "domain_classifier", "fit_dann", "reverse_gradient"],
    "datafiles": ["DataError", "balanced_indices", "load_photos"],
    "datasets": ["ImageSet", "SPLITS", "dataset_info", "list_datasets", "load_dataset", "objects_per_group",
                 "shift", "subsample"],
    "distillation": ["distill", "distillation_loss", "teacher_logits"],
    "evaluation": ["Comparison", "compare", "error_report", "expected_calibration_error", "gallery", "item_scores",
                   "report_from_proba", "unit_standard_error"],
    "features": ["cached_embeddings", "cached_weights", "embed", "linear_probe", "single_threaded", "train_linear_head"],
    "layers": ["count_params", "count_trainable", "freeze", "freeze_to", "layer_groups", "layerwise_lr_groups",
                 "param_groups", "replace_head", "set_bn_eval", "unfreeze", "unfreeze_schedule"],
    "forgetting": ["imagenet_agreement", "imagenet_top1", "photo_batch", "top1_names"],
    "lora": ["LoRA", "add_lora", "merge_lora"],
    "notes": ["TRANSFER_NOTE_FIELDS", "compared", "say", "transfer_note"],
    "plots": ["bars", "show_images"],
    "prompts": ["SoftPromptClassifier", "VisualPrompt", "prompted"],
    "probing": ["StageConcat", "group_maps", "group_names", "group_widths", "learning_curve", "stage_embeddings"],
    "recipes": ["Result", "feature_distance", "finetune", "flip_and_shift", "frozen_copy", "frozen_prefix", "lp_ft",
                "probe", "scratch"],
    "repro": ["get_device", "seed_everything", "setup_threads"],
    "sweep": ["compare_methods", "item_matrix", "mean_std", "run_seeds", "summarize"],
    "teachable": ["ClassifierApp", "ClassifierTeacher", "images_from_uploads"],
    "text": ["SentenceClassifier", "TextEncoder", "TextSet", "cached_sentence_embeddings", "load_sentences",
             "load_text_encoder", "mean_pool", "sentence_table"],
    "train": ["History", "evaluate", "fit", "log_fit", "predict", "run_epochs", "train_epoch"],
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'course_utils' has no attribute {name!r}; the common verbs are "
                             f"listed in course_utils.__all__, the rest live in its modules")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
