#!/usr/bin/env bash
# Install and start a single-node SLURM cluster on this machine (munged, slurmctld, slurmd), for
# tests/test_slurm.py. Needs root and Debian's slurm-wlm and munge packages. Works in containers
# without systemd: no cgroup plugins (proctrack/linuxproc, task/none), daemons started directly.
# Idempotent: running it again restarts the daemons with a fresh config. Prints the cluster state.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "error: $0 must run as root (it installs packages and starts daemons)" >&2
  exit 1
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends slurm-wlm munge
fi

node="$(hostname -s)"
cpus="$(nproc)"
# Leave some memory to the system; slurmd refuses a node that claims more than it has.
memory_mb="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
spool=/var/spool/slurm-spikemod
logs=/var/log/slurm-spikemod
mkdir -p /etc/slurm "$spool/ctld" "$spool/d" "$logs" /run/munge /var/lib/munge /var/log/munge

# munge: one key shared by the controller and the node (the same machine here).
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --force 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0400 /etc/munge/munge.key
chmod 0755 /run/munge

cat > /etc/slurm/slurm.conf <<EOF
# Single-node test cluster written by .ci/slurm-up.sh.
ClusterName=spikemod
SlurmctldHost=${node}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=${spool}/ctld
SlurmdSpoolDir=${spool}/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=${logs}/slurmctld.log
SlurmdLogFile=${logs}/slurmd.log
# No systemd, no writable cgroup hierarchy in a container: track processes by /proc, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MpiDefault=none
NodeName=${node} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${memory_mb} State=UNKNOWN
PartitionName=debug Nodes=${node} Default=YES MaxTime=INFINITE State=UP
EOF
# cgroup.conf is read even with the cgroup plugins off; keep it inert.
cat > /etc/slurm/cgroup.conf <<EOF
CgroupPlugin=autodetect
IgnoreSystemd=yes
EOF

stop() {  # stop a daemon started by an earlier run of this script, by its pid file
  local pidfile=$1 pid
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
}
stop /run/slurmd.pid
stop /run/slurmctld.pid
stop /run/munge/munged.pid

runuser -u munge -- munged --force
munge -n | unmunge >/dev/null  # fails here when munge cannot authenticate
slurmctld -i   # -i: ignore state left by an earlier cluster
slurmd

for _ in $(seq 60); do
  if scontrol ping 2>/dev/null | grep -q UP && sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
    sinfo
    exit 0
  fi
  sleep 1
done
echo "error: the SLURM cluster did not come up within 60 s" >&2
scontrol ping || true
sinfo || true
tail -n 30 "$logs/slurmctld.log" "$logs/slurmd.log" >&2 || true
exit 1
