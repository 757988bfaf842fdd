# Synthetic world -> tokenizer -> a token store per domain (the world's domains, or config `domains`).


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


# A BPE trained on a sample of the domains' training documents, or a Hugging Face tokenizer
# directory (tokenizer.path) saved in the same form, its sentinels appended.
rule tokenizer:
    input:
        [f for files in DATA_FILES.values() for f in files] if not config["tokenizer"].get("path") else [],
    output:
        directory("results/tokenizer"),
    params:
        spec=as_json(lmconfig.tokenizer_spec(config)),
        domains=as_json(DATA_DOMAINS),
    log:
        "logs/tokenizer.log",
    shell:
        "lmforecast tokenizer --spec {params.spec:q} --domains {params.domains:q} --out {output} > {log} 2>&1"


# One job per domain: its held-out documents, then its training documents streamed through
# `threads` tokenizing processes into a memory-mapped token store with a manifest.
rule tokenize:
    input:
        files=lambda w: DATA_FILES[w.domain],
        tokenizer="results/tokenizer",
    output:
        store=directory("results/tokens/{domain}"),
        heldout="results/heldout/{domain}.jsonl",
    params:
        spec=lambda w: as_json(DATA_DOMAINS[w.domain]),
    wildcard_constraints:
        domain="|".join(re.escape(d) for d in DATA_DOMAINS),
    threads: 1
    log:
        "logs/tokenize/{domain}.log",
    shell:
        "lmforecast tokenize --spec {params.spec:q} --domain {wildcards.domain} --tokenizer {input.tokenizer}"
        " --out {output.store} --heldout {output.heldout} --workers {threads} > {log} 2>&1"
