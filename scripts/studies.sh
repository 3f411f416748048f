#!/usr/bin/env bash
# (Re)start the long studies in the background, one torch thread each, each resuming where it
# stopped; a study already running is left alone. Logs go to runs/<name>.log (appended).
#   bash scripts/studies.sh            # start what is not running, not done, and whose input exists
#                                      # (first restoring finished stages saved in git: scripts/snapshot.py)
#   bash scripts/studies.sh status     # what runs, waits or is done, with its scheduling priority
#   bash scripts/studies.sh watch      # the same every 5 minutes, in the background, until killed:
#                                      # a study whose input appears is started without you
#   bash scripts/studies.sh checkpoint # before a session ends: each running study saves its training
#                                      # checkpoint now (SIGUSR1; sft and train-prm stages), then
#                                      # `python3 scripts/snapshot.py save ... --partial` keeps it
# A study that exits with status 0 leaves runs/<name>.done and is not started again (delete the
# file to re-run it, e.g. after a code change); one that fails leaves runs/<name>.failed (its exit
# status), which `watch` respects (no restart loop) and a plain start clears.
# Priorities: on Linux with autogroup scheduling (each setsid job its own group) `nice` does not
# order jobs against each other, so the group's nice value is set (/proc/<pid>/autogroup). Edit STUDIES to change what runs: "name|nice|input|command", where
# input is a file that must exist before the study starts (- for none).
set -uo pipefail
cd "$(dirname "$0")/.."
# Finished before session 15's machine change (results in benchmarks/README.md; their outputs were
# lost with that machine, see "Where study outputs live" below), not re-run: reproduce-babyai,
# reproduce-math and what waited on the BabyAI study (capacity-babyai, test90-babyai, data-babyai,
# ppo-clamp-babyai; their commands are in benchmarks/README.md and git history). BabyAI's study and
# its PPO comparison run again below (PVM's PPO run was at iteration 7 of 20).
STUDIES=(
  "reproduce-textcraft|0|-|.venv/bin/agentprm reproduce --env textcraft --threads 1"
  "reproduce-webshop|0|-|.venv/bin/agentprm reproduce --env webshop --threads 1"
  # PPO needs the study's policy and reward models, not its evaluation: it starts after the last one.
  # Half BabyAI's iterations and tasks per iteration (a quarter of its episodes): TextCraft's episodes
  # are ~3x longer and this machine ~2x slower, so BabyAI's budget would cost ~35 core-hours here;
  # this one ~10 (every source the same budget, stated in its report)
  "ppo-compare-textcraft|5|runs/reproduce-textcraft/.done/prm-orm|.venv/bin/agentprm ppo-compare --study runs/reproduce-textcraft --sources env orm pvm agentprm --iterations 10 --tasks-per-iter 8 --threads 1"
  # BabyAI again once WebShop has finished (the same protocol; its recorded numbers came from the old
  # machine before the CPU pins, so they may differ within noise), for Figure 5's PVM curve, which
  # was lost at iteration 7: only the stages PPO needs (no MC labels,
  # no beta = 0 or MC model, no evaluation; the full study can go on from them later)
  "reproduce-babyai|10|runs/reproduce-webshop.done|.venv/bin/agentprm reproduce --env babyai --reward-models agentprm pvm orm --stop-after prm-orm --threads 1"
  "ppo-compare-babyai|10|runs/reproduce-babyai/.done/prm-orm|.venv/bin/agentprm ppo-compare --study runs/reproduce-babyai --sources env orm pvm agentprm agentprm-final --threads 1"
)
# Where study outputs live: outside the work tree, in $AGENTPRM_RUNS (default ~/agentprm-runs), with
# runs/ a symlink to it, so that a session handed a freshly laid work tree on the same machine keeps
# every study's stages (a new machine still loses them: nothing but git survives that).
ROOT="${AGENTPRM_RUNS:-$HOME/agentprm-runs}"
mkdir -p "$ROOT"
if [ -d runs ] && [ ! -L runs ]; then
  if [ -n "$(ls -A runs)" ]; then
    echo "runs/ is a directory with files in it: move them to $ROOT and remove runs/, then run this again" >&2
    exit 2
  fi
  rmdir runs
fi
[ -L runs ] || ln -s "$ROOT" runs

pass() {  # $1: status | start | watch
  for entry in "${STUDIES[@]}"; do
    IFS="|" read -r name nice input cmd <<< "$entry"
    pid=$(pgrep -f -- "${cmd#.venv/bin/}" | head -n 1)
    if [ -n "$pid" ]; then
      state="running (pid $pid, $(cat /proc/"$pid"/autogroup 2>/dev/null || echo "no autogroup"))"
    elif [ -e "runs/$name.done" ]; then
      state="done (runs/$name.done)"
    elif [ "$input" != "-" ] && [ ! -e "$input" ]; then
      state="waiting for $input"
    elif [ "$1" = "status" ]; then
      state="not running$( [ -e "runs/$name.failed" ] && echo ", failed last time (status $(cat "runs/$name.failed"))")"
    elif [ "$1" = "watch" ] && [ -e "runs/$name.failed" ]; then
      state="failed (status $(cat "runs/$name.failed"), see runs/$name.log); not restarted by watch"
    else
      rm -f "runs/$name.failed"
      # bash -c: the study's exit status decides the marker it leaves
      OMP_NUM_THREADS=1 setsid nohup bash -c '"${@:2}"; rc=$?; if [ $rc = 0 ]; then touch "$1.done"; else echo $rc > "$1.failed"; fi' \
        _ "runs/$name" $cmd >> "runs/$name.log" 2>&1 < /dev/null &
      pid=$!
      sleep 1
      if [ -w "/proc/$pid/autogroup" ]; then echo "$nice" > "/proc/$pid/autogroup"; fi
      state="started (pid $pid, nice $nice) -> runs/$name.log"
    fi
    echo "$(date +%H:%M) $name: $state"
  done
}

# Every pass of `watch` also saves the studies' finished stages into snapshots/ and commits that
# folder alone (`git commit -- snapshots`: nothing else staged or edited is committed), so a stage
# that finished is in git within 5 minutes even if the session then ends without a word.
save_snapshots() {
  local dirs=()
  for d in runs/reproduce-* runs/ppo-compare-*; do [ -d "$d/.done" ] && dirs+=("$d"); done
  [ ${#dirs[@]} -gt 0 ] || return 0
  python3 scripts/snapshot.py save "${dirs[@]}" > /dev/null || return 0
  if [ -n "$(git status --porcelain -- snapshots)" ]; then
    git add -- snapshots && git commit -q -m "snapshots: finished study stages" -- snapshots \
      && echo "$(date +%H:%M) snapshots committed: $(git log -1 --format=%h)"
  fi
}

# SIGUSR1 makes a study's sft or train-prm stage checkpoint after its current optimizer step and go
# on (agentprm/rundir.py listen_for_checkpoint_signal); only a process whose signal mask says it
# catches SIGUSR1 is asked (to one started before that code, SIGUSR1 would be a kill).
checkpoint_now() {
  local stamp asked=() name nice input cmd pid mask
  stamp=$(mktemp)
  for entry in "${STUDIES[@]}"; do
    IFS="|" read -r name nice input cmd <<< "$entry"
    for pid in $(pgrep -f -- "${cmd#.venv/bin/}"); do  # the bash wrapper and the python process
      mask=$(awk '/^SigCgt:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
      if [ -n "$mask" ] && (( (0x$mask >> 9) & 1 )); then  # bit 9: signal 10, SIGUSR1
        kill -USR1 "$pid" && asked+=("$name") && echo "$(date +%H:%M) $name: checkpoint asked (pid $pid)"
      fi
    done
  done
  for name in "${asked[@]}"; do
    # a stage that saves as it goes (collect, mc, evaluate) writes no checkpoint: give up after 3 min
    # (an optimizer step takes up to ~70 s here; one that ends in a held-out pass takes longer: re-run)
    for _ in $(seq 36); do
      [ -n "$(find "runs/$name/" -name 'checkpoint*.pt' -newer "$stamp" -print -quit)" ] && break
      sleep 5
    done
    found=$(find "runs/$name/" -name 'checkpoint*.pt' -newer "$stamp" -print -quit)
    echo "$(date +%H:%M) $name: ${found:-no new checkpoint (its stage saves as it goes, or it is still in a step)}"
  done
  rm -f "$stamp"
}

case "${1:-start}" in
  checkpoint) checkpoint_now ;;
  status) pass status ;;
  watch) while true; do pass watch; save_snapshots; sleep 300; done ;;
  *)
    # A session that ended during watch's commit leaves git's index lock behind, and every later
    # commit would fail on it; with no git process running, it is stale.
    if [ -e .git/index.lock ] && ! pgrep -x git > /dev/null; then
      rm -f .git/index.lock && echo "removed a stale .git/index.lock (a commit killed mid-way)"
    fi
    python3 scripts/snapshot.py restore; pass start ;;  # a new machine: stages saved in git first
esac
