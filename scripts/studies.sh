#!/usr/bin/env bash
# (Re)start the long studies in the background, one torch thread each, each resuming where it
# stopped; a study already running is left alone. Logs go to runs/<name>.log (appended).
#   bash scripts/studies.sh            # start what is not running, not done, and whose input exists
#   bash scripts/studies.sh status     # what runs, waits or is done, with its scheduling priority
#   bash scripts/studies.sh watch      # the same every 5 minutes, in the background, until killed:
#                                      # a study whose input appears is started without you
# A study that exits with status 0 leaves runs/<name>.done and is not started again (delete the
# file to re-run it, e.g. after a code change); one that fails leaves runs/<name>.failed (its exit
# status), which `watch` respects (no restart loop) and a plain start clears.
# Priorities: on Linux with autogroup scheduling (each setsid job its own group) `nice` does not
# order jobs against each other, so the group's nice value is set (/proc/<pid>/autogroup). Edit STUDIES to change what runs: "name|nice|input|command", where
# input is a file that must exist before the study starts (- for none).
set -uo pipefail
cd "$(dirname "$0")/.."
STUDIES=(
  "reproduce-babyai|0|-|.venv/bin/agentprm reproduce --env babyai --threads 1"
  "reproduce-textcraft|0|-|.venv/bin/agentprm reproduce --env textcraft --threads 1"
  "reproduce-math|0|-|.venv/bin/agentprm reproduce --env math --threads 1"
  "ppo-compare-babyai|5|-|.venv/bin/agentprm ppo-compare --study runs/reproduce-babyai --sources env orm pvm agentprm --threads 1"
  "reproduce-webshop|0|-|.venv/bin/agentprm reproduce --env webshop --threads 1"
  "ppo-compare-textcraft|5|runs/reproduce-textcraft.done|.venv/bin/agentprm ppo-compare --study runs/reproduce-textcraft --sources env orm pvm agentprm --threads 1"
  "capacity-babyai|10|runs/ppo-compare-babyai.done|.venv/bin/python benchmarks/prm_capacity.py runs/reproduce-babyai --preset small --threads 1"
  "ppo-final-babyai|10|runs/ppo-compare-babyai.done|.venv/bin/agentprm ppo-compare --study runs/reproduce-babyai --sources env orm pvm agentprm agentprm-final --threads 1"
  "test90-babyai|15|runs/ppo-final-babyai.done|.venv/bin/agentprm evaluate --policy runs/reproduce-babyai/sft/model --reward-models agentprm=runs/reproduce-babyai/prm-agentprm agentprm-beta0=runs/reproduce-babyai/prm-agentprm-beta0 mc=runs/reproduce-babyai/prm-mc pvm=runs/reproduce-babyai/prm-pvm orm=runs/reproduce-babyai/prm-orm --env babyai-agentgym --tasks test --pool 32 --temperature 0.7 --beams 2x2 4x4 --max-rounds 20 --max-prompt-tokens 512 --run-dir runs/reproduce-babyai/evaluate-test90 --threads 1 --seed 0"
  "data-babyai|15|runs/capacity-babyai.done|.venv/bin/python benchmarks/prm_capacity.py runs/reproduce-babyai --preset none --extra-tasks 200 --allow-sft-tasks --threads 1"
  "ppo-clamp-babyai|10|runs/capacity-babyai.done|.venv/bin/agentprm ppo-compare --study runs/reproduce-babyai --sources env agentprm --kl-clamp 10 --run-dir runs/ppo-compare-babyai-clamp10 --threads 1"
)
mkdir -p runs

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

case "${1:-start}" in
  status) pass status ;;
  watch) while true; do pass watch; sleep 300; done ;;
  *) pass start ;;
esac
