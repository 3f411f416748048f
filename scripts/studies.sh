#!/usr/bin/env bash
# (Re)start the long studies in the background, one torch thread each, each resuming where it
# stopped; a study already running is left alone. Logs go to runs/<name>.log (appended).
#   bash scripts/studies.sh            # start what is not running
#   bash scripts/studies.sh status     # what runs, with its scheduling priority
# Priorities: on Linux with autogroup scheduling (each setsid job its own group) `nice` does not
# order jobs against each other, so the group's nice value is set (/proc/<pid>/autogroup).
# Edit STUDIES to change what runs; "name|nice|command".
set -uo pipefail
cd "$(dirname "$0")/.."
STUDIES=(
  "reproduce-babyai|0|.venv/bin/agentprm reproduce --env babyai --threads 1"
  "reproduce-textcraft|0|.venv/bin/agentprm reproduce --env textcraft --threads 1"
  "ppo-compare-babyai|5|.venv/bin/agentprm ppo-compare --study runs/reproduce-babyai --sources env orm pvm agentprm --threads 1"
  "reproduce-webshop|5|.venv/bin/agentprm reproduce --env webshop --threads 1"
  "reproduce-math|10|.venv/bin/agentprm reproduce --env math --threads 1"
)
mkdir -p runs
for entry in "${STUDIES[@]}"; do
  IFS="|" read -r name nice cmd <<< "$entry"
  pid=$(pgrep -f -- "${cmd#.venv/bin/}" | head -n 1)
  if [ "${1:-}" = "status" ]; then
    if [ -n "$pid" ]; then
      echo "$name: running (pid $pid, $(cat /proc/"$pid"/autogroup 2>/dev/null || echo "no autogroup"))"
    else
      echo "$name: not running"
    fi
    continue
  fi
  if [ -n "$pid" ]; then
    echo "$name: already running (pid $pid)"
    continue
  fi
  OMP_NUM_THREADS=1 setsid nohup $cmd >> "runs/$name.log" 2>&1 < /dev/null &
  pid=$!
  sleep 1
  if [ -w "/proc/$pid/autogroup" ]; then echo "$nice" > "/proc/$pid/autogroup"; fi
  echo "$name: started (pid $pid, nice $nice) -> runs/$name.log"
done
