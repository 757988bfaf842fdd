# Synthetic world -> tokenizer -> a token store per domain (the world's domains, or config `domains`).
# USE_TORCH=0: these jobs need no torch, but `datasets` imports it for every streamed dataset
# (IterableDataset's constructor) if it is installed: measured 18.5 s -> 8.5 s and 383 -> 196 MB
# for a tokenize job on one small JSONL file with the machine loaded. The tokens are the same.


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
        "USE_TORCH=0 lmforecast tokenizer --spec {params.spec:q} --domains {params.domains:q} --out {output} > {log} 2>&1"


# A domain with chunk_files: one job per chunk of its files, every document of them (held-out ones
# included) into a token store, deleted once rule tokenize has concatenated them.
rule tokenize_chunk:
    input:
        files=lambda w: TOKEN_CHUNKS[w.domain][int(w.chunk)],
        tokenizer="results/tokenizer",
    output:
        temp(directory("results/token_chunks/{domain}/{chunk}")),
    params:
        spec=lambda w: as_json(DATA_DOMAINS[w.domain]),
    wildcard_constraints:
        domain="|".join(re.escape(d) for d, chunks in TOKEN_CHUNKS.items() if chunks) or "(?!)",
        chunk=r"\d+",
    threads: 1
    log:
        "logs/tokenize/{domain}.{chunk}.log",
    shell:
        "USE_TORCH=0 lmforecast tokenize-chunk --spec {params.spec:q} --domain {wildcards.domain} --chunk {wildcards.chunk}"
        " --tokenizer {input.tokenizer} --out {output} --workers {threads} > {log} 2>&1"


# One job per domain: its held-out documents, then its training documents streamed through
# `threads` tokenizing processes into a memory-mapped token store with a manifest (or, with
# chunk_files, the chunks' stores concatenated, the held-out documents left out).
rule tokenize:
    input:
        files=lambda w: [] if TOKEN_CHUNKS[w.domain] else DATA_FILES[w.domain],
        chunks=lambda w: [f"results/token_chunks/{w.domain}/{i}" for i in range(len(TOKEN_CHUNKS[w.domain]))],
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
        "USE_TORCH=0 lmforecast tokenize --spec {params.spec:q} --domain {wildcards.domain} --tokenizer {input.tokenizer}"
        " --out {output.store} --heldout {output.heldout} --workers {threads} --chunks {input.chunks} > {log} 2>&1"
