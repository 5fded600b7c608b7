#!/usr/bin/env bash
# A sweep killed with kill -9 part way and run again, then listed, queried and plotted.
#
#   docs/sweep_demo.sh OUT KILL_AFTER_SECONDS X_KEY Y_KEY -- SWEEP_ARGS...
#
# e.g. docs/sweep_demo.sh runs/demo-poly 240 model.alpha model.eps -- poly --grid model.alpha=0.5,1,2 \
#        --grid model.eps=0.02,0.05,0.2 --grid seed=0..3 --pack 12 --jobs 2
# Writes OUT/demo.log (what each step printed, with times) beside the sweep's own files.
set -euo pipefail
out=$1 kill_after=$2 x=$3 y=$4
shift 5  # the four above and "--"
mkdir -p "$out"
log=$out/demo.log
say() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$log"; }

say "groklab sweep $* --out $out   (killed with kill -9 after ${kill_after} s)"
groklab sweep "$@" --out "$out" --no-progress >>"$log" 2>&1 &
pid=$!
sleep "$kill_after"
pkill -9 -P "$pid" || true  # the sweep's worker processes ...
kill -9 "$pid" || true      # ... and the sweep itself
wait "$pid" 2>/dev/null || true
done_before=$(find "$out" -name summary.json | wc -l)
say "killed: $done_before points had finished"

say "the same command again"
started=$(date +%s)
groklab sweep "$@" --out "$out" --no-progress >>"$log" 2>&1
say "finished in $(( $(date +%s) - started )) s"
# a point finished before the kill keeps its summary from then: nothing was redone
say "summaries older than the restart: $(find "$out" -name summary.json ! -newermt "@$started" | wc -l) (finished before the kill: $done_before)"

groklab runs "$out" >>"$log"
groklab runs "$out" --query "SELECT \"$x\", \"$y\", count(*) AS runs, median(t_test_acc) AS t_test_acc, median(t_test_loss) AS t_test_loss FROM runs GROUP BY 1, 2 ORDER BY 1, 2" | tee -a "$log"
groklab plot phase "$out" --x "$x" --y "$y" --value "${VALUE:-t_test_acc}" | tee -a "$log"
groklab plot curves "$out" --by "$x" --column "${COLUMN:-test_acc}" | tee -a "$log"
