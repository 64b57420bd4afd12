"""Checks that need the registries and the dataset's spec: names, classes, a trigger's fit, sizes.

Run by the ``check`` stage on the whole params.yaml (the focus experiment, every method's settings and
the grid) before DVC touches any other stage's outputs, and by the grid planner on every cell. The stage
scripts themselves check only the parts they use, so that their code dependencies stay narrow.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch

from .datasets.registry import dataset_spec
from .defence_settings import DefenceExperiment, FinetuneConfig, check_finetuning
from .detectors import DETECTORS, check_detector
from .errors import ConfigError, choices_error
from .files import load_tensors, read_json
from .finetune_methods import METHODS, check_method
from .grid import Cell, check_plan, grid_axes, grid_cells, grid_detectors, grid_relearn, grid_shards
from .models import MODELS, check_arch, check_model_settings
from .naming import FT_AXES, slug
from .params import init_settings
from .poisoned_set import training_pool
from .poisoning import STRATEGIES, build_strategy, eligible_count
from .recipes import RECIPES, check_recipe
from .regularizers import REGULARIZERS, check_regularizer
from .settings import check_poison_rate, check_training, poison_count, pool_size
from .strategies import check_focus_strategy, check_strategy_settings
from .triggers import TRIGGERS, build_trigger
from .validation import check_choice, check_keys, check_number, check_text


def validate_experiment(exp: DefenceExperiment) -> None:
    """Every check that needs no stored data: names, classes, trigger against image size, sizes when the
    dataset's size is known before it is built."""
    exp.validate()
    spec = dataset_spec(exp.dataset, exp.image_size)
    if exp.arch is not None:
        check_model_settings(exp.arch, exp.model_settings, exp.train.pretrained)
        check_model_builds(exp.arch, exp.model_settings, spec.num_classes, spec.channels, spec.image_size)
    check_recipe(exp.recipe, exp.recipe_settings, exp.train)
    if exp.strategy is not None:
        build_strategy(exp.strategy, exp.target, exp.source, spec.num_classes)
    if exp.trigger is not None:
        build_trigger(
            exp.trigger,
            (spec.channels, spec.image_size, spec.image_size),
            seed=exp.seed,
            size=exp.trigger_size,
            location=exp.trigger_location,
            **exp.trigger_settings,
        )
    if exp.regularizer is not None:
        check_regularizer(exp.regularizer, exp.regularizer_settings)
    check_method(exp.finetune.method, exp.method_settings, exp.finetune)
    if spec.num_train is not None:
        if exp.strategy is not None and exp.subset is None and spec.class_counts is not None:
            _check_eligible(exp, spec.num_train, spec.class_counts, spec.num_classes)
        check_training(exp.train, spec.num_train)
        check_finetuning(exp.finetune, pool_size(exp.subset, spec.num_train), exp.poison_rate)


@functools.cache
def _builds(arch: str, settings: str, num_classes: int, channels: int, image_size: int) -> None:
    with torch.device("meta"):  # the factory's own checks, without allocating or initialising weights
        try:
            MODELS.build(
                arch, num_classes=num_classes, in_chans=channels, image_size=image_size, **json.loads(settings)
            )
        except ConfigError:
            raise
        except (TypeError, ValueError, RuntimeError) as exc:  # a setting of the wrong kind, caught by torch itself
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"models.{arch}: {settings} does not build the model ({first_line})") from None


def check_model_builds(arch: str, settings: dict, num_classes: int, channels: int, image_size: int) -> None:
    """One of our models built once at the dataset's shape with its settings (``models.<arch>``): what its factory
    refuses (three widths for airbench ...) fails here, before any stage."""
    if arch in MODELS:
        _builds(arch, json.dumps(settings, sort_keys=True), num_classes, channels, image_size)


def stored_labels(raw_dir: str | Path | None, exp: DefenceExperiment) -> torch.Tensor | None:
    """The training labels of the dataset stored in ``raw_dir`` when it is the one ``exp`` asks for (its source and
    image size), else None. Not stored yet means nothing downstream of it exists to lose: the poison stage judges
    the same rule before it writes anything."""
    manifest = Path(raw_dir or "") / "manifest.json"
    if raw_dir is None or not manifest.is_file():
        return None
    stored = read_json(manifest)
    spec = dataset_spec(exp.dataset, exp.image_size)
    if stored.get("source") != exp.dataset or stored.get("shape", [None])[-1] != spec.image_size:
        return None
    return load_tensors(Path(raw_dir) / "train.pt", stored["sha256"]["train.pt"])["labels"]


def check_pool(exp: DefenceExperiment, labels: torch.Tensor) -> None:
    """The rules only the stored data can judge, on the training pool the cell will draw (``train.subset``, seed):
    the poison count against the images the strategy may poison, and the defender's clean set and re-learning
    poisons against what is left."""
    pool = training_pool(len(labels), exp.subset, exp.seed)
    if exp.strategy is not None and exp.poison_rate > 0:
        strategy = build_strategy(exp.strategy, exp.target, exp.source, int(labels.max()) + 1)
        count, eligible = poison_count(len(pool), exp.poison_rate), int(strategy.train_mask(labels[pool]).sum())
        if count > eligible:
            raise ConfigError(
                f"poison_rate: {exp.poison_rate:g} asks for {count} poisoned images but only {eligible} of the "
                f"{len(pool)} training images in the pool are eligible under {exp.strategy}"
            )
        if exp.relearn.poisons > count:
            raise ConfigError(f"relearn.poisons: {exp.relearn.poisons} asked, but the cell poisons {count} images")


def _check_eligible(exp: DefenceExperiment, num_train: int, class_counts: tuple[int, ...], num_classes: int) -> None:
    """The poison count against the images the strategy may poison (its own ``train_mask`` over the class counts).
    Exact when the whole training set is the pool; with ``train.subset`` the pool's classes are known only once the
    data is, and the poison stage checks the same rule on the drawn pool before poisoning."""
    strategy = build_strategy(exp.strategy, exp.target, exp.source, num_classes)
    count, eligible = poison_count(num_train, exp.poison_rate), eligible_count(strategy, class_counts)
    if count > eligible:
        raise ConfigError(
            f"poison_rate: {exp.poison_rate:g} asks for {count} poisoned images but only {eligible} "
            f"training images are eligible under {exp.strategy}"
        )


OPTIONAL_SECTIONS = ("finetune_methods", "models", "recipes", "strategies")


def validate_methods(params: dict, exp: DefenceExperiment) -> None:
    """Every trigger, regularizer and detector listed under ``triggers:``, ``regularizers:`` and ``detectors:``,
    with its settings (triggers on the focus experiment's images): a bad setting fails even where nothing
    uses it yet."""
    spec = dataset_spec(exp.dataset, exp.image_size)
    shape = (spec.channels, spec.image_size, spec.image_size)
    for name in params.get("inits") or {}:
        init_settings(params, name)
    for section, registry in (
        ("triggers", TRIGGERS),
        ("strategies", STRATEGIES),
        ("regularizers", REGULARIZERS),
        ("detectors", DETECTORS),
        ("finetune_methods", METHODS),
        ("models", MODELS),
        ("recipes", RECIPES),
    ):
        if section in OPTIONAL_SECTIONS and section not in params:
            continue  # every method has defaults, and no stage depends on the section unless it is there
        if section not in params:  # stages read it by name: DVC would refuse it only at the first stage that does
            raise ConfigError(
                f"{section}: missing section; params.yaml needs one (each method's settings, as in the "
                f"committed params.yaml)"
            )
        methods = params[section] or {}
        if not isinstance(methods, dict):
            raise ConfigError(f"{section}: must be a mapping of method name -> settings, got {methods!r}")
        for name, settings in methods.items():
            if name not in registry:
                raise choices_error(f"{section}", name, sorted(registry))
            if settings is not None and not isinstance(settings, dict):
                raise ConfigError(f"{section}.{name}: must be a mapping of settings, got {settings!r}")
            if section == "triggers":
                location = exp.trigger_location if name in TRIGGERS.names(patch=True) else "bottom-right"
                build_trigger(name, shape, seed=exp.seed, size=exp.trigger_size, location=location, **(settings or {}))
            elif section == "strategies":
                check_strategy_settings(name, settings or {})
            elif section == "regularizers":
                check_regularizer(name, settings or {})
            elif section == "finetune_methods":
                check_method(name, settings or {}, exp.finetune)
            elif section == "models":
                check_model_settings(name, settings or {})
                # Default settings are known to build (tests/test_models.py); building NASNet costs 4 s of imports
                # in every check stage. Models in use are built by check_experiment.
                if json.dumps(settings or {}, sort_keys=True) != json.dumps(MODELS.defaults(name), sort_keys=True):
                    check_model_builds(name, settings or {}, spec.num_classes, spec.channels, spec.image_size)
            elif section == "recipes":
                check_recipe(name, settings or {}, exp.train)
            else:
                check_detector(name, settings or {})


def _check_axis_value(params: dict, axis: str, value: object) -> None:
    """What can be said of one axis value alone (its name, type and range)."""
    if axis == "dataset":
        dataset_spec(check_text("dataset", value))
    elif axis == "arch":
        check_arch(value)
    elif axis in ("trigger", "strategy", "regularizer"):
        registry = {"trigger": TRIGGERS, "strategy": STRATEGIES, "regularizer": REGULARIZERS}[axis]
        check_choice(axis, value, sorted(registry))
    elif axis == "poison_rate":
        check_poison_rate(value)
    elif axis in ("seed", "train_epochs"):
        check_number(axis, value, low=0 if axis == "seed" else 1, integer=True)
    elif axis == "init":
        init_settings(params, check_text("init", value))
    elif axis == "ft_method":
        check_choice(axis, value, sorted(METHODS))
    else:  # ft_lr, ft_clean_size: the fine-tuning settings they set
        FinetuneConfig(**{FT_AXES[axis]: value}).validate_one(FT_AXES[axis], axis)


# What every grid cell shares, under grid.settings (the focus experiment has them as top-level scalars).
CELL_SETTINGS = (
    "image_size",
    "trigger_size",
    "trigger_location",
    "target",
    "source",
    "threads",
    "train",
    "finetune",
    "relearn",
)


def validate_grid(params: dict) -> list[Cell]:
    """All cells, validated before any work; an error names the list and the value, or the combination."""
    settings = (params.get("grid") or {}).get("settings") or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"grid.settings: must be a mapping of settings, got {settings!r}")
    check_keys("grid.settings", settings, CELL_SETTINGS)
    axes = grid_axes(params)
    grid_shards(params)
    grid_relearn(params)
    for name in grid_detectors(params):
        check_choice("grid.detectors", name, sorted(DETECTORS))
    for axis, values in axes.items():
        for value in values:
            try:
                _check_axis_value(params, axis, value)
            except ConfigError as exc:
                raise ConfigError(f"grid.{axis}: value {value!r} is invalid: {exc}") from None
    for axis, values in axes.items():  # each value once, with the other axes at their first value
        for value in values:
            probe = {a: v[0] for a, v in axes.items()} | {axis: value}
            try:
                validate_experiment(DefenceExperiment(params, probe))
            except ConfigError as exc:
                if str(exc).startswith("grid.settings"):  # about the shared settings, not this value
                    raise
                raise ConfigError(f"grid.{axis}: value {value!r} is invalid: {exc}") from None
    cells = grid_cells(params)
    for cell in cells:  # combinations (a target outside one dataset's classes, a clean set too large ...)
        try:
            validate_experiment(DefenceExperiment(params, cell.as_dict()))
        except ConfigError as exc:
            raise ConfigError(f"grid: the combination {cell.name} cannot work: {exc}") from None
    return cells


def validate_params(
    params: dict,
    plan: dict | None = None,
    settings: dict | None = None,
    focus_raw: str | Path | None = None,
    grid_raw: str | Path | None = None,
) -> list[Cell]:
    """The whole params.yaml: the focus experiment, every method's settings, every grid cell, and (given the
    planned grid/plan.json and grid/settings.json) that the grid was planned from it; with ``focus_raw`` and
    ``grid_raw`` (the stored datasets' folders), the rules only the data can judge, where the data is stored.
    Returns the cells."""
    exp = DefenceExperiment(params)
    if exp.train.init is not None:  # dvc.yaml's focus stages are fixed: a file named in params cannot be a dependency
        raise ConfigError(
            "train.init: the focus experiment starts from random weights; to start from a trained model "
            "use a grid cell (grid.init with its source under inits:), whose model is a DVC dependency"
        )
    validate_experiment(exp)
    check_focus_strategy(exp.strategy)
    validate_methods(params, exp)
    cells = validate_grid(params)
    if plan is not None:
        check_plan(params, plan, settings or {})
    labels = stored_labels(focus_raw, exp)
    if labels is not None:
        check_pool(exp, labels)
    for dataset in dict.fromkeys(cell.dataset for cell in cells):
        first = next(cell for cell in cells if cell.dataset == dataset)
        labels = stored_labels(
            Path(grid_raw or "") / slug(dataset) if grid_raw else None, DefenceExperiment(params, first.as_dict())
        )
        if labels is None:
            continue
        for cell in (cell for cell in cells if cell.dataset == dataset):
            try:
                check_pool(DefenceExperiment(params, cell.as_dict()), labels)
            except ConfigError as exc:
                raise ConfigError(f"grid: the combination {cell.name} cannot work: {exc}") from None
    return cells
