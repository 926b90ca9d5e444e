#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the tests that run daisy workers as SLURM
# jobs: munged, slurmctld and slurmd from Debian's packages (slurm-wlm, munge), configured here.
# No cgroups (proctrack/linuxproc, task/none), so it works in a container. Job accounting
# without a database: completed jobs go to a text file that `sacct --completion` reads.
# Idempotent: does nothing when the cluster already answers. Needs root (as CI has).
set -euo pipefail
state="${INCASEM_SERVICES_DIR:-$HOME/.cache/incasem-services}/slurm"
conf=/etc/slurm/slurm.conf

if sinfo -h -o %T 2>/dev/null | grep -q -E '^(idle|mixed|allocated)'; then
    echo "slurm: already running ($(sinfo -h -o '%N %T'))"
    exit 0
fi
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "slurm: not installed and cannot install it (needs root and apt-get)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurm-wlm munge >/dev/null
fi

mkdir -p "$state/ctld" "$state/spool" "$state/log" /etc/slurm /run/munge
node="$(hostname -s)"
memory="$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)"
cat > "$conf" <<CONF
# Written by incasem's .ci/services/slurm.sh: one node, no cgroups, no accounting database.
ClusterName=incasem
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$state/log/jobcomp.txt
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
# More CPUs than the machine has: the tests' workers are light and share the cores.
SlurmdParameters=config_overrides
NodeName=$node CPUs=8 RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF

# munged refuses to run as root; the Debian package made its user and key.
if ! pgrep -x munged >/dev/null; then
    chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged
fi
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -q -E '^(idle|mixed|allocated)'; then
        scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
        echo "slurm: started ($(sinfo -h -o '%N %T'))"
        exit 0
    fi
    sleep 1
done
echo "slurm: the node did not come up; see $state/log" >&2
sinfo >&2 || true
exit 1
