# Tables -> fits: one rule per registered fit (lmforecast/fits/registry.py), each writing its outputs
# under results/fits/ and its figures (PNG, data as Parquet, caption as .rst) under results/report/.


def fit_figures(fit):
    return [f.name for f in fit.figures(config)]


def per_attempt(amount):
    """A resource that doubles when a job is retried (profiles/slurm retries a failed job)."""
    return lambda wildcards, attempt: amount * attempt


for fit in FITS:

    rule:
        name:
            f"fit_{fit.name}"
        input:
            [table(name) for name in fit.tables] + [f"results/fits/{o}" for o in fit.reads(config)],
        output:
            fits=[f"results/fits/{o}" for o in fit.outputs],
            # the caption each figure shows in `snakemake --report`: the .rst the fit writes beside it
            plots=[report(f"results/report/{name}.png", caption=f"{os.getcwd()}/results/report/{name}.rst",
                          category=fit.title) for name in fit_figures(fit)],
            data=[f"results/report/{name}.parquet" for name in fit_figures(fit)],
            captions=[f"results/report/{name}.rst" for name in fit_figures(fit)],
        params:
            # the name as a param: the shell command is formatted when the job runs, after the loop
            name=fit.name,
            spec=as_json(config["fit"][fit.name]),
        threads: fit.threads
        resources:
            mem_mb=per_attempt(fit.mem_mb),
            runtime=per_attempt(fit.runtime),
        log:
            f"logs/fit_{fit.name}.log",
        shell:
            "lmforecast fit {params.name} --spec {params.spec:q} --tables results/tables --fits results/fits"
            " --report-dir results/report --threads {threads} > {log} 2>&1"
