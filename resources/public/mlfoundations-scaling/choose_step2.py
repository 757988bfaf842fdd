"""Does step 2 on several held-out domain losses (FLP-M's thesis, Chen et al. 2024) beat the ladder's sigmoid
on the pre-training loss (their mean) here? Step 2 alone, evaluated at the held-out runs' ACTUAL domain
losses, so that step 1's error is out of the comparison (choose_step1.py's "oracle" column: the sigmoid
erred by 4.5% inside, 6.5% on the targets).

The same two splits as choose_step1.py, per dataset: "inside" (11M-154M fitted, the 412M runs held out;
choices are made here) and "targets" (11M-412M fitted, the 1.4B and 6.9B runs held out). Step 2 shapes,
each fitted per dataset and task on the training runs' final checkpoints unless said:

- sigmoid(mean): the shipped sigmoid on the pre-training loss (the mean of the 8 domain losses);
- sigmoid(<domain>): the sigmoid on one domain's loss; "sigmoid(best domain, chosen inside)" takes, per
  task, the domain whose sigmoid erred least inside (one domain per task for the three datasets; its
  inside figure is then measured on the runs that chose it), "chosen inner" the one that erred least one
  rung lower ("inner": 11M-79M fitted, the 154M runs held out), so that its inside figure is a fair one;
- sigmoid(mixture): the sigmoid on a convex combination of the 8 domain losses (a reweighted validation
  mixture, weights >= 0 summing to 1), the weights fitted with the curve: per dataset and task ("per
  pair") or shared by a task's three datasets ("per task"), each dataset and task keeping its own sigmoid
  (one mixture for every task and dataset was not tried);
- flpm net: the project's FLP-M step 2 (fits/scaling/flpm.py: a two-layer network on the domain losses),
  per dataset and task, and pooled over the datasets per task.

    PYTHONPATH=workflow python resources/public/mlfoundations-scaling/choose_step2.py
"""

import warnings

import lmfit
import numpy as np
import polars as pl
import torch
import yaml

from lmforecast.fits.scaling import ScalingSettings
from lmforecast.fits.scaling.chinchilla import fit_chinchilla
from lmforecast.fits.scaling.curves import FitError, fit_sigmoid, sigmoid
from lmforecast.fits.scaling.flpm import fit_domain_net
from lmforecast.fits.scaling.frames import checkpoint_frame, domains_of
from lmforecast.measure.imports import import_tables

CONFIG = "config/examples/mlfoundations-scaling.yaml"


def load():
    """The example's config and its checkpoint frame (the imported tables, as fit_scaling builds it)."""
    cfg = yaml.safe_load(open(CONFIG))
    tables = {k: pl.from_arrow(v) for k, v in import_tables(cfg["import"]).items()}
    return cfg, checkpoint_frame(tables, ScalingSettings.from_dict(cfg["fit"]["scaling"]))


def splits(cfg, frame):
    """split -> (training rows, held-out rows): final checkpoints (one per run here)."""
    finals = frame.filter(pl.col("is_final"))
    small = finals.filter(pl.col("n_params") < 1e9)
    return {
        "inner": (small.filter(pl.col("n_params") < 1e8), small.filter(pl.col("run").str.contains("-154M-"))),
        "inside": (small.filter(pl.col("n_params") < 3e8), small.filter(pl.col("run").str.contains("-412M-"))),
        "targets": (small, finals.filter(pl.col("run").is_in(cfg["fit"]["scaling"]["holdout"]))),
    }


def outer_splits(cfg, frame):
    """(split, training rows, held-out rows, families) of the "inside" and "targets" splits (the inner one left out)."""
    for split, (train, test) in splits(cfg, frame).items():
        if split != "inner":
            yield split, train, test, sorted(train["family"].unique())


def col(df, c):
    return df[c].to_numpy().astype(float)


def mixture_fit(groups, n_domains, starts):
    """One convex mixture of the domain losses shared by `groups` [(X, y)], a sigmoid per group.

    The residual is every group's; fitted by lmfit (least_squares) from each start in `starts`
    [(weights, [sigmoid start per group])], the lowest sum of squares kept. Returns (weights, [params])."""

    def unpack(p):
        u = np.array([p[f"u{d}"].value for d in range(n_domains)])
        w = u / u.sum()
        return w, [{k: p[f"{k}{g}"].value for k in ("a", "k", "L0", "b")} for g in range(len(groups))]

    def residual(p):
        w, curves = unpack(p)
        return np.concatenate([sigmoid(X @ w, **c) - y for (X, y), c in zip(groups, curves)])

    best = None
    for w0, curve0 in starts:
        p = lmfit.Parameters()
        for d in range(n_domains):
            p.add(f"u{d}", value=max(float(w0[d]), 1e-3), min=1e-6, max=1.0)
        for g, ((X, y), c) in enumerate(zip(groups, curve0)):
            x = X @ w0
            spread = float(np.std(x)) or 1.0
            p.add(f"b{g}", value=c["b"], min=0.0, max=1.0)
            p.add(f"headroom{g}", value=min(1.0, max(0.0, c["a"] / max(1e-6, 1 - c["b"]))), min=0.0, max=1.0)
            p.add(f"a{g}", expr=f"headroom{g} * (1 - b{g})")
            p.add(f"k{g}", value=c["k"], max=0.0, min=-1e3 / spread)
            p.add(f"L0{g}", value=c["L0"], min=float(x.min()) - 3 * spread, max=float(x.max()) + 3 * spread)
        result = lmfit.minimize(residual, p, method="least_squares")
        if best is None or result.chisqr < best.chisqr:
            best = result
    return unpack(best.params)


def curve_of(result):
    return {k: result.params[k].value for k in ("a", "k", "L0", "b")}


def errors(pred, actual):
    return np.abs(pred - actual) / actual


def run(cfg, frame):
    domains = domains_of(frame)
    lcols = [f"loss:{d}" for d in domains]
    tasks = cfg["fit"]["scaling"]["tasks"]
    rows = []

    def add(split, shape, task, held, pred):
        actual = col(held, f"score:{task}")
        rows.extend(
            {"split": split, "shape": shape, "task": task, "run": r, "rel_error": e}
            for r, e in zip(held["run"], errors(pred, actual))
        )

    for split, (train, test) in splits(cfg, frame).items():
        families = sorted(train["family"].unique())
        for task in tasks:
            print(split, task, flush=True)
            per_family = {}  # family -> (X train, y train, X held, held rows, {domain index: sigmoid start})
            for fam in families:
                tr = train.filter((pl.col("family") == fam) & pl.col(f"score:{task}").is_not_null())
                he = test.filter(pl.col("family") == fam)
                X, y, Xh = tr.select(lcols).to_numpy(), col(tr, f"score:{task}"), he.select(lcols).to_numpy()
                fits = {}
                fits["mean"] = fit_sigmoid(X.mean(axis=1), y)
                add(split, "sigmoid(mean)", task, he, fits["mean"].eval(x=Xh.mean(axis=1)))
                for i, d in enumerate(domains):
                    try:
                        fits[i] = fit_sigmoid(X[:, i], y)
                    except FitError:
                        continue
                    add(split, f"sigmoid({d})", task, he, fits[i].eval(x=Xh[:, i]))
                per_family[fam] = (X, y, Xh, he, fits)
                if split == "inner":  # only to choose a domain per task without the 412M runs
                    continue
                w, [curve] = mixture_fit([(X, y)], len(domains), mixture_starts(fits, len(domains)))
                add(split, "sigmoid(mixture, per pair)", task, he, sigmoid(Xh @ w, **curve))
                net = fit_domain_net(X, y)
                add(split, "flpm net", task, he, net.predict(Xh))
            if split == "inner":
                continue
            groups = [(v[0], v[1]) for v in per_family.values()]
            starts = mixture_starts_shared([v[4] for v in per_family.values()], len(domains))
            w, curves = mixture_fit(groups, len(domains), starts)
            for (X, y, Xh, he, _), c in zip(per_family.values(), curves):
                add(split, "sigmoid(mixture, per task)", task, he, sigmoid(Xh @ w, **c))
            net = fit_domain_net(
                np.concatenate([v[0] for v in per_family.values()]), np.concatenate([v[1] for v in per_family.values()])
            )
            for X, y, Xh, he, _ in per_family.values():
                add(split, "flpm net, pooled", task, he, net.predict(Xh))
    return pl.DataFrame(rows)


def step1_law(train, column="loss"):
    """Step 1 as the ladder's params_tokens (shipped until the fourteenth session): L(N, D)'s parameters {E, A, alpha, B, beta} fitted on `train`'s `column`."""
    return fit_chinchilla(col(train, "n_params"), col(train, "tokens"), col(train, column), n_bootstrap=0, n_starts=10).params


def law_at(p, runs):
    """L(N, D) with parameters `p` at `runs`' parameters and tokens."""
    return p["E"] + p["A"] / col(runs, "n_params") ** p["alpha"] + p["B"] / col(runs, "tokens") ** p["beta"]


def step1_loss(train, test, column="loss"):
    """Step 1 fitted on `train`'s `column` (step1_law), predicted at `test`'s runs."""
    return law_at(step1_law(train, column), test)


def chain(cfg, frame, chosen):
    """The full chain with step 2 on `chosen` (task -> frame column): step 1 L(N, D) on that column (the
    ladder's params_tokens, the example's until the fourteenth session; final checkpoints of the training runs), then the
    sigmoid at its prediction.
    Per split and family; returns rows as `run` does."""
    rows = []
    for split, (train, test) in splits(cfg, frame).items():
        if split == "inner":
            continue
        for fam in sorted(train["family"].unique()):
            tr, he = train.filter(pl.col("family") == fam), test.filter(pl.col("family") == fam)
            step1 = {column: step1_loss(tr, he, column) for column in sorted(set(chosen.values()))}
            for task, column in chosen.items():
                known = tr.filter(pl.col(f"score:{task}").is_not_null())
                pred = fit_sigmoid(col(known, column), col(known, f"score:{task}")).eval(x=step1[column])
                rows.extend(
                    {"split": split, "task": task, "run": r, "rel_error": e}
                    for r, e in zip(he["run"], errors(pred, col(he, f"score:{task}")))
                )
    return pl.DataFrame(rows)


def mixture_starts(fits, n):
    """Uniform weights (the mean loss) and each single domain, from that shape's sigmoid."""
    starts = [(np.full(n, 1 / n), [curve_of(fits["mean"])])]
    for i in range(n):
        if i in fits:
            w = np.full(n, 1e-3)
            w[i] = 1.0
            starts.append((w / w.sum(), [curve_of(fits[i])]))
    return starts


def mixture_starts_shared(fits_by_group, n):
    starts = [(np.full(n, 1 / n), [curve_of(f["mean"]) for f in fits_by_group])]
    for i in range(n):
        if all(i in f for f in fits_by_group):
            w = np.full(n, 1e-3)
            w[i] = 1.0
            starts.append((w / w.sum(), [curve_of(f[i]) for f in fits_by_group]))
    return starts


if __name__ == "__main__":
    # lmfit's covariance of the shared mixtures' flat directions: standard errors this script does not use
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="lmfit")
    torch.set_num_threads(1)  # the net's tiny matrices: more threads only contend (17 s a fit at load 5 against 1 s)
    cfg, frame = load()
    errs = run(cfg, frame)
    per_task = errs.group_by("split", "shape", "task").agg(pl.col("rel_error").mean())
    single = per_task.filter(pl.col("shape").str.starts_with("sigmoid(") & ~pl.col("shape").str.contains("mixture|mean"))
    chains = {"sigmoid(mean)": {t: "loss" for t in cfg["fit"]["scaling"]["tasks"]}}
    for chooser in ("inner", "inside"):  # per task, the domain whose sigmoid erred least on `chooser`'s held-out runs
        best = single.filter(pl.col("split") == chooser).sort("rel_error", "shape").group_by("task").first()
        print(f"domain chosen on {chooser}:", dict(best.select("task", "shape").sort("task").iter_rows()))
        chosen = errs.join(best.select("task", "shape"), on=["task", "shape"]).filter(pl.col("split") != "inner")
        errs = pl.concat([errs, chosen.with_columns(pl.lit(f"sigmoid(best domain, chosen {chooser})").alias("shape"))])
        chains[f"sigmoid(best domain, chosen {chooser})"] = {
            t: "loss:" + shape[8:-1] for t, shape in best.select("task", "shape").iter_rows()
        }
    errs = errs.filter(pl.col("split") != "inner")
    summary = errs.group_by("split", "shape").agg(
        pl.col("rel_error").mean(), pl.col("rel_error").filter(pl.col("task") == "avg46").mean().alias("avg46"), pl.len()
    )
    with pl.Config(tbl_rows=60, fmt_str_lengths=60):
        print("step 2 at the held-out runs' actual losses")
        print(summary.pivot(on="split", index="shape", values=["rel_error", "avg46"]).sort("rel_error_inside"))
        print("the full chain: step 1 L(N, D) on step 2's loss, step 2 at its prediction")
        for name, chosen in chains.items():
            full = chain(cfg, frame, chosen)
            print(
                name,
                full.group_by("split")
                .agg(
                    pl.col("rel_error").mean(),
                    pl.col("rel_error").filter(pl.col("task") == "avg46").mean().alias("avg46"),
                    pl.len(),
                )
                .sort("split"),
            )
