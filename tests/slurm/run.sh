#!/usr/bin/env bash
# The Slurm test (README "Running on a Slurm cluster"): a real one-node Slurm cluster with
# accounting (slurmdbd + MariaDB) and a declared GPU, on this machine, then the smoke workflow
# submitted through the project's profile (profiles/slurm) with sbatch. Checks that:
#   1. every job went through sbatch and sacct lists them COMPLETED, GPU rules with a GPU;
#   2. every table of results/tables/ exists, has rows, and equals that of a local
#      `snakemake --cores 2` run of the same config (polars frame equality);
#   3. a job killed with scancel in the middle of a pretraining segment is retried
#      (--retries) and the run ends with the same tables again.
#   4. with training.parallel: ddp and 2 GPUs per pretrain job, each job runs 2 ranks under torchrun
#      and its checkpoints equal the local run's to float32 rounding.
# Runs as root, without stdin. Everything it writes is under $LMF_SLURM_DIR (daemons' config,
# state, logs, the workflow copies); it stops the daemons it started, by their recorded pids,
# when it ends, and stops leftovers of an earlier interrupted run before it starts.
#   usage: tests/slurm/run.sh            (make test-slurm; the venv's bin first on PATH)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=${LMF_SLURM_DIR:-/tmp/lmforecast-slurm}
ACCOUNT=lmforecast
PARTITION=debug
CLUSTER=lmfcluster
HOST=$(hostname -s)
# Ports of our own: the test cluster must not collide with a Slurm or MariaDB of the machine.
CTLD_PORT=16817 SLURMD_PORT=16818 DBD_PORT=16819 DB_PORT=16820

say() { printf '\n[slurm-test %(%H:%M:%S)T] %s\n' -1 "$*"; }
die() { printf '\n[slurm-test] FAILED: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root: it installs Debian packages and starts the Slurm daemons"
BIN=$(dirname "$(command -v snakemake || die "snakemake not on PATH (run through make test-slurm)")")
[[ -x $BIN/lmforecast ]] || die "lmforecast not found beside $BIN/snakemake: install the project first (make install)"
export PATH="$BIN:$PATH"

# --- the processes this script starts, recorded as $DIR/pids/<name> -------------------------
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)   # start order; stopped in reverse

alive() {  # alive NAME: the recorded pid runs that program still (a pid can be reused); NAME is
    # PROGRAM or PROGRAM.WHICH (snakemake.slurm, snakemake.local, snakemake.ddp)
    local f=$DIR/pids/$1 pid
    [[ -f $f ]] && pid=$(<"$f") && [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "${1%%.*}"
}

stop_daemons() {
    # Snakemake first (SIGINT: it cancels its jobs; SIGTERM would wait for them), then the jobs of
    # our cluster (slurmstepd outlives slurmd), then the daemons, last started first.
    local pid f
    for f in "$DIR"/pids/snakemake.*; do
        if [[ -e $f ]] && alive "${f##*/}"; then
            pid=$(<"$f")
            kill -INT "$pid" 2>/dev/null || true
            for _ in $(seq 120); do [[ -e /proc/$pid ]] || break; sleep 0.5; done
            [[ -e /proc/$pid ]] && kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$f"
    done
    if alive slurmctld; then
        scancel --user root 2>/dev/null || true
        for _ in $(seq 30); do [[ -z $(squeue -h 2>/dev/null) ]] && break; sleep 1; done
    fi
    local i name
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        name=${DAEMONS[i]}
        if alive "$name"; then
            pid=$(<"$DIR/pids/$name")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 30); do [[ -e /proc/$pid ]] || break; sleep 0.5; done
            [[ -e /proc/$pid ]] && kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$DIR/pids/$name"
    done
}

start() {  # start NAME CMD...: in the background, output to $DIR/log/NAME.out, pid recorded
    "${@:2}" >"$DIR/log/$1.out" 2>&1 </dev/null &
    echo $! >"$DIR/pids/$1"
}

wait_for() {  # wait_for SECONDS WHAT CMD...: poll CMD until it succeeds
    local t=$1 what=$2
    shift 2
    for _ in $(seq "$t"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
    die "$what not ready after ${t}s; logs: $DIR/log/"
}

# Slurm's configuration goes where Debian's Slurm looks for it: srun, run inside each job by the
# executor plugin, drops SLURM_* variables such as SLURM_CONF. A slurm.conf that this script did
# not write is left alone: the test stops instead.
ETC=/etc/slurm
MARK="# written by lmforecast tests/slurm/run.sh"
export SLURM_CONF=$ETC/slurm.conf
if [[ -e $SLURM_CONF ]] && ! grep -qx "$MARK" "$SLURM_CONF"; then
    die "$SLURM_CONF exists and is not this test's: this machine has a Slurm configuration of its own"
fi

# --- 0. leftovers of an earlier run, then a fresh directory ---------------------------------
[[ -d $DIR/pids ]] && stop_daemons
rm -rf "$DIR"
mkdir -p "$DIR"/{pids,log,spool,state,munge,work} "$ETC"
finish() {  # on exit, passed or failed: leave the machine as this run found it
    local rc=$?
    say "stopping the cluster"
    stop_daemons
    local f
    for f in "$ETC"/{slurm,slurmdbd,gres}.conf; do
        [[ -f $f ]] && grep -qx "$MARK" "$f" && rm -f "$f"
    done
    # The packages this run installed go again: with Slurm's client tools on the PATH and no
    # controller answering, every snakemake start waits 10 s (plugin 2.8.0 runs scontrol when it
    # is imported). LMF_SLURM_KEEP_PACKAGES=1 keeps them, for repeated runs.
    if [[ -s $DIR/installed-packages && ${LMF_SLURM_KEEP_PACKAGES:-0} != 1 ]]; then
        say "removing the $(wc -l <"$DIR/installed-packages") packages this run installed"
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $(<"$DIR/installed-packages") \
            >"$DIR/log/apt-purge.out" 2>&1 || say "apt-get purge failed: see $DIR/log/apt-purge.out"
    fi
    exit $rc
}
trap finish EXIT

# --- 1. Debian's Slurm, munge and MariaDB -----------------------------------------------------
installed() { dpkg-query -W -f '${db:Status-Abbrev} ${binary:Package}\n' | awk '$1 == "ii" {print $2}' | sort; }
PROGRAMS=(slurmctld slurmd slurmdbd sacctmgr sbatch munged mungekey mariadbd mariadb-install-db)
if [[ $(command -v "${PROGRAMS[@]}" | wc -l) -lt ${#PROGRAMS[@]} ]]; then
    say "installing slurm-wlm slurmdbd munge mariadb-server"
    export DEBIAN_FRONTEND=noninteractive
    before=$(installed)
    apt-get update -q
    apt-get install -y -q slurm-wlm slurmdbd munge mariadb-server
    comm -13 <(echo "$before") <(installed) >"$DIR/installed-packages"
fi
say "Slurm $(slurmctld -V | awk '{print $2}'), $(mariadbd --version | awk '{print $3}')"

# --- 2. munge: a key and a socket of our own --------------------------------------------------
# munged runs as root here (the Debian service would run it as munge): root owns its files;
# clients need to reach the socket. --force: munged refuses to run as root otherwise.
chmod 711 "$DIR/munge"
mungekey --create --keyfile="$DIR/munge/munge.key" --force
MUNGE_SOCKET=$DIR/munge/munge.socket
start munged munged --foreground --force --socket="$MUNGE_SOCKET" --key-file="$DIR/munge/munge.key" \
    --log-file="$DIR/log/munged.log" --pid-file="$DIR/munge/munged.pid" --seed-file="$DIR/munge/munged.seed"
wait_for 20 munged bash -c "munge -n --socket='$MUNGE_SOCKET' | unmunge --socket='$MUNGE_SOCKET'"

# --- 3. MariaDB for slurmdbd: a data directory of our own -------------------------------------
mkdir -p "$DIR/mysql"
DB_SOCKET=$DIR/mysql/mysqld.sock   # in a directory the mysql user owns
chown mysql:mysql "$DIR/mysql"
mariadb-install-db --user=mysql --datadir="$DIR/mysql" --skip-test-db >"$DIR/log/mariadb-install.out" 2>&1 \
    || die "mariadb-install-db failed: $DIR/log/mariadb-install.out"
start mariadbd mariadbd --user=mysql --datadir="$DIR/mysql" --socket="$DB_SOCKET" \
    --bind-address=127.0.0.1 --port=$DB_PORT --pid-file="$DIR/mysql/mariadbd.pid"
wait_for 60 mariadbd mysqladmin --socket="$DB_SOCKET" ping
DB_PASS=slurm-test
mysql --socket="$DB_SOCKET" -u root <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

# --- 4. Slurm: slurmdbd, slurmctld, slurmd; one node with all its CPUs and one declared GPU ----
CPUS=$(nproc)
MEM_MB=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024))
cat >"$ETC/slurmdbd.conf" <<EOF
$MARK
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/state/slurmdbd.pid
EOF
chmod 600 "$ETC/slurmdbd.conf"
cat >"$SLURM_CONF" <<EOF
$MARK
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
# with auth/munge, the munge socket that clients use to reach slurmdbd
AccountingStoragePass=$MUNGE_SOCKET
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
GresTypes=gpu
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/state/slurmctld.pid
SlurmdPidFile=$DIR/state/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ReturnToService=2
MinJobAge=300
DefMemPerCPU=1000
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:2 State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
# Two declared GPUs (two device files, any will do): jobs asking --gpus=N are scheduled on them,
# two at a time like the two CPUs; nothing runs on a GPU.
printf '%s\nNodeName=%s Name=gpu File=/dev/null,/dev/zero\n' "$MARK" "$HOST" >"$ETC/gres.conf"

start slurmdbd slurmdbd -D
wait_for 60 slurmdbd sacctmgr -n list cluster
sacctmgr -i add cluster "$CLUSTER" >/dev/null   # before slurmctld's first start
start slurmctld slurmctld -D -i
start slurmd slurmd -D
wait_for 60 "the node" bash -c "sinfo -h -N -o '%T' | grep -qx idle"
sacctmgr -i add account "$ACCOUNT" Description=lmforecast Organization=lmforecast >/dev/null
sacctmgr -i add user root account="$ACCOUNT" >/dev/null
say "cluster up:"; sinfo
# The pretrain launcher of a job of 2 nodes, as its shell expands it with Slurm's scontrol (pytest skips
# this test where scontrol is not installed, as in make test's pytest step).
(cd "$ROOT" && python -m pytest -q -p no:cacheprovider tests/test_ddp.py -k launcher) >"$DIR/log/launcher.log" 2>&1 \
    && grep -q "1 passed" "$DIR/log/launcher.log" || die "the 2-node launcher test failed; see $DIR/log/launcher.log"

# --- 5. the profile as users install it, and a local override ---------------------------------
# make slurm-profile writes $XDG_CONFIG_HOME/snakemake/slurm/profile.yaml: here under $DIR, so
# that the test leaves root's own ~/.config alone; `--profile slurm` finds it there.
export XDG_CONFIG_HOME=$DIR/config
make -C "$ROOT" --no-print-directory slurm-profile SLURM_ACCOUNT=$ACCOUNT SLURM_PARTITION=$PARTITION
mkdir -p "$DIR/override"
cat >"$DIR/override/profile.yaml" <<EOF2
# This test's jobs take seconds: poll Slurm every few seconds, not every 40 s and more.
slurm-init-seconds-before-status-checks: 2
seconds-between-status-checks: 2
slurm-keep-successful-logs: true   # keep every job's Slurm log, for the record
EOF2
export LMFORECAST_GPUS=1   # pretrain jobs ask for one GPU each (evaluate and sft score on the CPU)

copy_workflow() {  # as tests/test_workflow.py does: workflow/, resources/, config/ and the smoke config
    mkdir -p "$1"
    cp -r "$ROOT/workflow" "$ROOT/resources" "$ROOT/config" "$1/"
    cp "$ROOT/tests/data/smoke.yaml" "$1/config.yaml"
}

# --- 6. three workflows at once: the smoke workflow through Slurm (one pretraining segment killed
# with scancel), the same config locally as the reference, and a data-parallel run through Slurm.
# At once, not one after the other: the Slurm runs mostly wait (the executor plugin polls sacct at
# growing intervals: 2, 12, 22, ... s after the last job it saw finish), the local run fills that time.
W=$DIR/work/slurm L=$DIR/work/local D=$DIR/work/ddp
copy_workflow "$W"
copy_workflow "$L"
copy_workflow "$D"
say "the smoke workflow through Slurm: snakemake --profile slurm (log: $DIR/log/snakemake-slurm.log)"
t0=$SECONDS
(cd "$W" && exec snakemake --profile slurm --profile "$DIR/override" --configfile config.yaml) \
    >"$DIR/log/snakemake-slurm.log" 2>&1 &
echo $! >"$DIR/pids/snakemake.slurm"

say "the same config locally, uninterrupted: snakemake --cores 2 (log: $DIR/log/snakemake-local.log)"
(cd "$L" && LMFORECAST_GPUS=0 exec snakemake --cores 2 --configfile config.yaml) >"$DIR/log/snakemake-local.log" 2>&1 &
echo $! >"$DIR/pids/snakemake.local"

# training.parallel: ddp with LMFORECAST_GPUS=2: each pretrain job asks --gpus=2 and its one task runs
# torchrun with 2 processes (the declared GPUs are files: torch sees none, so the ranks use gloo on
# the job's 2 CPUs). Run xs-a's checkpoints only, and compare them with the local run's (1 process).
printf '%s\n' 'training: {parallel: ddp}' >"$D/ddp.yaml"
say "run xs-a with training.parallel: ddp through Slurm, 2 GPUs per pretrain job (log: $DIR/log/snakemake-ddp.log)"
(cd "$D" && LMFORECAST_GPUS=2 exec snakemake --profile slurm --profile "$DIR/override" --configfile config.yaml ddp.yaml \
    -- results/checkpoints/xs-a/step16 results/checkpoints/xs-a/step32) >"$DIR/log/snakemake-ddp.log" 2>&1 &
echo $! >"$DIR/pids/snakemake.ddp"

# The victim: the last segment of the largest run. Killed once its command runs (its rule log
# exists) and before its checkpoint is written: a job killed mid-segment, which --retries reruns.
VICTIM=rule_pretrain_wildcards_m-b_64   # the plugin's job comment: rule and wildcard values
VICTIM_OUT=$W/results/checkpoints/m-b/step64
victim=
for _ in $(seq 7200); do  # up to an hour: it ends when Snakemake does
    alive snakemake.slurm || break
    id=$(squeue -h -t RUNNING -o '%i %k' | awk -v c=$VICTIM '$2 == c {print $1}')
    if [[ -n $id && -e $W/logs/pretrain/m-b/step64.log && ! -e $VICTIM_OUT ]]; then
        scancel "$id"
        victim=$id
        say "scancel $id: pretrain m-b segment to step 64, mid-segment"
        break
    fi
    sleep 0.5
done
[[ -n $victim ]] || die "never saw the pretrain job of m-b step 64 running; see $DIR/log/snakemake-slurm.log"
wait "$(<"$DIR/pids/snakemake.slurm")" || die "snakemake --profile slurm failed; see $DIR/log/snakemake-slurm.log"
rm -f "$DIR/pids/snakemake.slurm"
slurm_s=$((SECONDS - t0))
say "workflow through Slurm done in ${slurm_s}s"
wait "$(<"$DIR/pids/snakemake.local")" || die "the local run failed; see $DIR/log/snakemake-local.log"
rm -f "$DIR/pids/snakemake.local"
wait "$(<"$DIR/pids/snakemake.ddp")" || die "the ddp run through Slurm failed; see $DIR/log/snakemake-ddp.log"
rm -f "$DIR/pids/snakemake.ddp"
say "the local and the ddp runs done too, in $((SECONDS - t0))s"

# --- 7. checks: sbatch, sacct, retry, GPUs ----------------------------------------------------
LOG=$DIR/log/snakemake-slurm.log
submitted=$(grep -c 'has been submitted with SLURM jobid' "$LOG" || true)
say "$submitted sbatch submissions:"
grep 'has been submitted with SLURM jobid' "$LOG" | sed "s|$W/.snakemake/slurm_logs/||"
slurm_jobs=$(grep -o 'SLURM jobid [0-9]*' "$LOG" | awk '{print $3}' | paste -sd,)
sacct -X -n -P -j "$slurm_jobs" -o JobID,Comment,State,AllocTRES >"$DIR/log/sacct.txt"
say "sacct:"; column -t -s '|' "$DIR/log/sacct.txt"
grep -q "Trying to restart job" "$LOG" || die "the killed job was not retried (no 'Trying to restart job' in $LOG)"
awk -F'|' -v v="$victim" '$1 == v && $3 ~ /^CANCELLED/ {f=1} END {exit !f}' "$DIR/log/sacct.txt" \
    || die "job $victim is not CANCELLED in sacct: it finished before scancel reached it; run again"
# every other job COMPLETED, as many as sbatch submissions; GPU rules got a GPU, the others none
awk -F'|' -v v="$victim" -v n="$submitted" '
    $1 == v { next }
    { jobs++ }
    $3 != "COMPLETED" { print "not COMPLETED:", $0; bad = 1 }
    ($2 ~ /^rule_pretrain/) != ($4 ~ /gres\/gpu=1/) { print "GPU request wrong:", $0; bad = 1 }
    END { if (jobs + 1 != n) { print "sacct lists " jobs + 1 " jobs, snakemake submitted " n; bad = 1 }; exit bad }
' "$DIR/log/sacct.txt" || die "sacct does not show every job COMPLETED with the right GPUs"
# evaluate and sft jobs of a run went as one Slurm job each: the group post_<run>
n_runs=$(grep -c '^  - {name:' "$ROOT/tests/data/smoke.yaml")
[[ $(grep -c '|rule_post_.*_evaluate_sft|' "$DIR/log/sacct.txt") -eq $n_runs ]] \
    || die "expected $n_runs group jobs (one per run of tests/data/smoke.yaml, evaluate and sft together) in sacct"

# --- 8. the same tables as an uninterrupted local run -------------------------------------------
python "$ROOT/tests/slurm/compare_tables.py" "$W" "$L" || die "the tables of the Slurm run differ from the local run's"

# --- 9. data-parallel pre-training: one pretrain job with 2 GPUs, 2 ranks under torchrun ---------
ddp_jobs=$(grep -o 'SLURM jobid [0-9]*' "$DIR/log/snakemake-ddp.log" | awk '{print $3}' | paste -sd,)
sacct -X -n -P -j "$ddp_jobs" -o JobID,Comment,State,AllocTRES >"$DIR/log/sacct-ddp.txt"
say "sacct (ddp run):"; column -t -s '|' "$DIR/log/sacct-ddp.txt"
awk -F'|' '$2 ~ /^rule_pretrain/ { n++; if ($3 != "COMPLETED" || $4 !~ /gres\/gpu=2/) bad = 1 } END { exit bad || n != 2 }' \
    "$DIR/log/sacct-ddp.txt" || die "expected 2 pretrain jobs COMPLETED with 2 GPUs each in $DIR/log/sacct-ddp.txt"
for step in 16 32; do
    grep -q "2 process(es)" "$D/logs/pretrain/xs-a/step$step.log" || die "$D/logs/pretrain/xs-a/step$step.log: not 2 processes"
done
python - "$D" "$L" <<'EOF2' || die "the ddp checkpoints of xs-a differ from the local run's"
import sys, numpy as np
from pathlib import Path
from safetensors.numpy import load_file
from lmforecast.io import read_json
ddp, local = (Path(d) / "results/checkpoints/xs-a" for d in sys.argv[1:])
for step in ("step16", "step32"):
    a, b = load_file(str(ddp / step / "model.safetensors")), load_file(str(local / step / "model.safetensors"))
    # micro-batches of 2 rows per rank against 4 rows in one process: float32 rounding only
    assert all(np.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a), step
    la, lb = (read_json(d / step / "trainer_state.json")["loss_history"]["loss"] for d in (ddp, local))
    assert np.allclose(la, lb, rtol=1e-5), step
print("ddp checkpoints of xs-a equal the local run's to float32 rounding")
EOF2

say "PASSED: $submitted jobs through sbatch, all COMPLETED but the one killed, which was retried;"\
" every table equals the local run's; a 2-GPU ddp pretrain run equals the local one. Slurm run ${slurm_s}s, all ${SECONDS}s. Logs: $DIR/log/"
