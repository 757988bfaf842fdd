"""The command that starts a pretrain segment: `lmforecast` itself, or torchrun starting its processes.

One node: `torchrun --standalone` starts the job's ranks on the node. Several nodes (one Slurm job
of N nodes, one task per node): `srun` starts one torchrun agent per node, and the agents meet at
the job's first node (torchrun's c10d rendezvous, keyed by the Slurm job id); torchrun then gives
each process its RANK, WORLD_SIZE and MASTER_ADDR, which accelerate reads.
"""

RDZV_PORT = 29500  # torchrun's default master port, on the job's first node

# The job's first node, where the rendezvous is hosted; expanded by the job's shell on that node.
FIRST_NODE = '$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)'


def torchrun(ranks_per_node: int, nodes: int = 1, endpoint: str | None = None, run_id: str = "$SLURM_JOB_ID") -> list[str]:
    """torchrun's arguments (up to the program) for `nodes` nodes of `ranks_per_node` processes each."""
    if nodes == 1:
        return ["torchrun", "--standalone", "--nproc-per-node", str(ranks_per_node), "--no-python"]
    endpoint = endpoint or f"{FIRST_NODE}:{RDZV_PORT}"
    return [
        "torchrun",
        f"--nnodes={nodes}",
        f"--nproc-per-node={ranks_per_node}",
        "--rdzv-backend=c10d",
        f'--rdzv-endpoint="{endpoint}"',
        f'--rdzv-id="{run_id}"',
        "--no-python",
    ]


def launcher(parallel: str, ranks_per_node: int, nodes: int = 1) -> str:
    """The pretrain rule's command prefix: a shell string, followed by `pretrain ...`."""
    if parallel == "none":
        if ranks_per_node > 1 or nodes > 1:  # the job would hold GPUs or nodes that one process leaves idle
            raise ValueError(
                f"the pretrain jobs get {nodes} node(s) x {ranks_per_node} process(es) (LMFORECAST_NODES, LMFORECAST_GPUS, "
                "LMFORECAST_RANKS: workflow/profiles/default/config.yaml) but training.parallel is none; "
                "set training.parallel: ddp or fsdp, or ask for 1 node and 1 GPU"
            )
        return "lmforecast"
    if nodes == 1:
        return " ".join(torchrun(ranks_per_node)) + " lmforecast"
    # One task per node, each with the job's CPUs per task (srun does not inherit them on Slurm 22.05-23.02);
    # a rank's failure ends every node's agent.
    srun = [
        "srun",
        f"--nodes={nodes}",
        "--ntasks-per-node=1",
        "${SLURM_CPUS_PER_TASK:+--cpus-per-task=$SLURM_CPUS_PER_TASK}",
        "--kill-on-bad-exit=1",
    ]
    return " ".join(srun + torchrun(ranks_per_node, nodes)) + " lmforecast"
