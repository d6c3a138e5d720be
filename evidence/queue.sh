#!/bin/bash
# The open measurements of docs/results.md and docs/leaderboard.md, as two lanes of resumable commands.
#
#   bash evidence/queue.sh A     # lane A, one thread
#   bash evidence/queue.sh B     # lane B, one thread (run both at once on a 2-core machine)
#
# Every step resumes where it stopped (an attack from its partial file, a training from checkpoint-last with
# --resume, a leaderboard or reproduction from its runs and cache) and a finished attack is never rerun, so
# the same command goes on after a kill or in a new session; commit evidence/ before a session ends. Run it
# under setsid with the lowest scheduling weight (`echo 19 > /proc/<pid>/autogroup`): this machine groups
# processes by session, so `nice` alone does not make them yield to the tests. Log: runs/evidence-log/.
set -u
cd "$(dirname "$0")/.."
LANE=${1:?usage: evidence/queue.sh A|B}
E=evidence/cifar10
LOG=runs/evidence-log/queue-$LANE.log
mkdir -p runs/evidence-log
export OMP_NUM_THREADS=1
EV=.venv/bin/evrobust
STORE=data/cifar10-subset.zarr

step() { echo "=== $(date -u +%FT%TZ) $*" >> "$LOG"; "$@" >> "$LOG" 2>&1; echo "=== rc=$? $(date -u +%FT%TZ)" >> "$LOG"; }

# The reliable evaluation of issue 23 on all 1,017 test images (skipped once attack-whitebox.json is final).
attack_all() {
  local run=$E/$1
  if [ -f "$run/attack-whitebox.json" ] && [ ! -f "$run/attack-whitebox.partial.json" ]; then return; fi
  step $EV attack --run "$run" --suite reliable --limit 1017 --batch-size 100 --device cpu
}

# The Square 4 x 20,000 probe on the first 100 images, on a copy of the run (attack writes into its run
# directory); the checkpoint copies are not tracked (.gitignore), the result is.
probe() {
  local probe=evidence/square-probe/$1
  if [ -f "$probe/attack-whitebox.json" ]; then return; fi
  mkdir -p "$probe"
  cp $E/wrn16-$1/{checkpoint-best.safetensors,checkpoint-last.safetensors,config.json,metrics.jsonl} "$probe/"
  step $EV attack --run "$probe" --attacks clean,square --queries 20000 --limit 100 --device cpu
  step .venv/bin/python scripts/probe_compare.py "$probe/attack-whitebox.json" $E/wrn16-$1/attack-whitebox.json 100
}

emu_train() {
  for d in vanilla at sr sr_star; do
    local out=evidence/cifar10dvs-emu/vgg11-$d
    step $EV train --data data/cifar10dvs-emu.zarr --model vgg11 --width 0.125 --T 10 --epochs 20 --defense $d \
        --device cpu --out $out $( [ -f $out/config.json ] && echo --resume )
  done
}

if [ "$LANE" = A ]; then
  attack_all wrn16-sr
  probe sr
  step $EV leaderboard --scale smoke --data digits-dvs --out evidence/leaderboard --device cpu --resume
  # the masking study at smoke scale (issue 26): a first, cheap reading of the h ablation on the digits
  step $EV reproduce masking --scale smoke --out evidence/reproduce-smoke --device cpu --resume
  emu_train
elif [ "$LANE" = B ]; then
  attack_all wrn16-sr_star
  probe sr_star
  # VGG-11 of issue 23 = the CIFAR-10 cpu leaderboard's entries of the paper (issue 27): one computation
  step $EV leaderboard --scale cpu --data $STORE --out evidence/leaderboard --only vanilla,at,sr,sr_star \
      --device cpu --resume
  # the masking study (issue 26): the evidence and leaderboard runs are copied in, not retrained
  step $EV reproduce masking --scale cpu --data $STORE --out evidence/reproduce-cpu --runs-from $E \
      --runs-from evidence/leaderboard --device cpu --resume
  step $EV leaderboard --scale cpu --data $STORE --out evidence/leaderboard --device cpu --resume
else
  echo "usage: evidence/queue.sh A|B" >&2
  exit 2
fi
echo "=== lane $LANE done $(date -u +%FT%TZ)" >> "$LOG"
