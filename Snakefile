# lmforecast: train -> checkpoint -> evaluate -> SFT -> aggregate -> fit -> report.
# This file only wires the stages together; each stage is a rule file, the logic is in
# the lmforecast package (workflow/lmforecast), which the rules call through its CLI.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/sft.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "results/report/index.html",
        "results/fits/flp.json",
