# Synthetic world -> tokenizer -> token shards.


rule world:
    output:
        domains=DOMAIN_FILES,
        tasks=task_examples(["fact_qa", "arith_mc", "var_track", "sentiment"]),
    params:
        spec=as_json(config["world"]),
    log:
        "logs/world.log",
    shell:
        "lmforecast world --spec {params.spec:q} --out results/world > {log} 2>&1"


rule tokenizer:
    input:
        DOMAIN_FILES,
    output:
        directory("results/tokenizer"),
    params:
        spec=as_json(lmconfig.tokenizer_spec(config)),
    log:
        "logs/tokenizer.log",
    shell:
        "lmforecast tokenizer --spec {params.spec:q} --domains {input} --out {output} > {log} 2>&1"


rule shards:
    input:
        domains=DOMAIN_FILES,
        tokenizer="results/tokenizer",
    output:
        [f"results/shards/{d}.npy" for d in DOMAINS],
    log:
        "logs/shards.log",
    shell:
        "lmforecast shards --domains {input.domains} --tokenizer {input.tokenizer} --out {output} > {log} 2>&1"
