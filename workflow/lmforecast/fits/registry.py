"""The fits, registered once: rules/fit.smk, the CLI (`lmforecast fit NAME`), config validation and
the report are all made from this registry.

A fit is a module or package of lmforecast/fits/ that defines `FIT = Fit(...)`: its typed
settings (config `fit.<name>`, with the JSON schema of that section), the tables it reads, the
files it writes under results/fits/ (the first JSON one is its summary, what `rule all` asks
for), the figures it draws under results/report/ with their captions, and its section of the
report page. The registry finds every such module by itself, so a new fit is one new file
(README, "Adding a fit").
"""

import importlib
import pkgutil
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from lmforecast.settings import Settings  # noqa: F401 (a fit's settings derive from it: fits import it from here)


@dataclass(frozen=True)
class Figure:
    """A figure of the report: results/report/<name>.png, the data it draws in <name>.parquet, its caption."""

    name: str
    caption: str


@dataclass(frozen=True)
class FitInputs:
    """What a fit's `run` gets: its tables (polars frames, checked against their schemas), its
    settings, the raw config section (written into its JSON summary as given), where to write."""

    tables: dict
    settings: Settings
    spec: dict
    fits_dir: Path
    report_dir: Path
    threads: int = 1

    def out(self, name: str) -> Path:
        return self.fits_dir / name

    def figure(self, name: str) -> Path:
        return self.report_dir / f"{name}.png"


@dataclass(frozen=True)
class Fit:
    """A fit's declaration: everything the workflow, the CLI, validation and the report need of it."""

    name: str  # config fit.<name>, rule fit_<name>, `lmforecast fit <name>`, report section <name>
    title: str  # the report section's title
    settings: type  # a frozen Settings dataclass of fit.<name>
    schema: str  # the JSON schema of fit.<name>, as YAML ($refs into the config schema's $defs work)
    tables: tuple[str, ...]  # its input tables (results/tables/<name>.parquet)
    outputs: tuple[str, ...]  # its files under results/fits/; the first .json is its summary
    run: Callable[[FitInputs], list[str]]  # writes outputs and figures; returns lines for the log
    section: Callable[[Path, Path], str]  # (fits_dir, report_dir) -> its section of the report page (HTML)
    figures: Callable[[dict], tuple[Figure, ...]] = lambda config: ()  # from the whole config
    # needs SFT labels or per-example scores: not in analysis-only mode; a callable: whether it does with
    # this config's settings (a fit of which a part runs on imported tables when its settings ask for it)
    needs_training: bool | Callable[[dict], bool] = False
    threads: int = 1
    mem_mb: int = 2000  # per attempt: a retried job asks for twice as much (profiles/slurm retries)
    runtime: int = 20  # minutes per attempt, for a cluster's time limit
    check: Callable[[dict], list[str]] = lambda config: []  # errors of fit.<name> against the whole config
    # analysis-only mode: errors of fit.<name> against the imported tables (Arrow), read once when the config is checked
    check_imported: Callable[[dict, dict], list[str]] | None = None
    leaderboard: Callable[[Path], list[dict]] | None = None  # its rows of the leaderboard, from results/fits/
    reads: Callable[[dict], tuple[str, ...]] = lambda config: ()  # other fits' outputs it reads (results/fits/)
    order: int = 100  # position in the report and the rule list

    def trains(self, config: dict) -> bool:
        """Whether it needs training with this config's settings (so does not run in analysis-only mode)."""
        return self.needs_training(config) if callable(self.needs_training) else self.needs_training

    @property
    def summary(self) -> str:
        return next(o for o in self.outputs if o.endswith(".json"))

    def schema_dict(self) -> dict:
        return yaml.safe_load(self.schema)


@dataclass(frozen=True)
class Registry:
    fits: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> Fit:
        if name not in self.fits:
            raise KeyError(f"no fit {name!r}; registered: {sorted(self.fits)}")
        return self.fits[name]

    def __iter__(self):
        return iter(sorted(self.fits.values(), key=lambda f: (f.order, f.name)))

    def configured(self, config: dict, imported: bool = False) -> list[Fit]:
        """The fits that run for this config: those with a fit.<name> section (in analysis-only mode,
        those that need no SFT labels or per-example scores)."""
        return [f for f in self if f.name in config.get("fit", {}) and not (imported and f.trains(config))]


def _discover(package: types.ModuleType) -> Registry:
    fits = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        fit = getattr(module, "FIT", None)
        if isinstance(fit, Fit):
            if fit.name in fits:
                raise ValueError(f"fit {fit.name!r} registered twice ({module.__name__})")
            if not any(o.endswith(".json") for o in fit.outputs):
                raise ValueError(f"fit {fit.name!r} ({module.__name__}): no JSON summary among its outputs {fit.outputs}")
            fits[fit.name] = fit
    return Registry(fits)


_REGISTRY = None


def registry() -> Registry:
    """Every registered fit (the modules of lmforecast.fits that define FIT), found once per process."""
    global _REGISTRY
    if _REGISTRY is None:
        import lmforecast.fits

        _REGISTRY = _discover(lmforecast.fits)
    return _REGISTRY


def shots_errors(config: dict, name: str) -> list[str]:
    """fit.<name>.shots must be one of evaluation.shots (a trained sweep's; imported tables carry what they have)."""
    shots = config["fit"][name]["shots"]
    if "import" in config or shots in config["evaluation"]["shots"]:
        return []
    return [f"fit.{name}.shots: {shots} is not in evaluation.shots {config['evaluation']['shots']}"]
