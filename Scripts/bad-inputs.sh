#!/usr/bin/env bash
# bad-inputs.sh - runs the corpus of bad inputs (Tests/BadInputs/cases/*.case) against the built
# tools: every case must end with its documented exit status (README, "Exit status"), never with a
# signal (a Swift trap or an allocation abort), and its output must name the culprit.
#
#   usage: Scripts/bad-inputs.sh [--bin-dir DIR] [--bench PATH] [--only GLOB]
#     --bin-dir  where ramcast-node, ramcast-demo, ramcast-sim and ramcast-check are (default .build/debug)
#     --bench    the ramcast-bench binary (default Benchmarks/.build/debug/ramcast-bench); cases that
#                need it fail if it is missing
#
# A case file holds one run, as lines "key: value":
#   run:    the command line; the first word is the tool; {files} is Tests/BadInputs/files, {tmp} a
#           fresh directory for this case (words are split by the shell, quotes allowed)
#   env:    NAME=value, for the environment of the run (repeatable)
#   setup:  a shell command run in {tmp} first (repeatable)
#   exit:   the expected exit status
#   expect: a substring the run's output (stdout and stderr) must contain (repeatable)
# Lines starting with # say why the case exists.
set -uo pipefail
here=$(dirname "$(realpath "$0")"); root=$(dirname "$here"); cd "$root"
bin_dir=.build/debug
bench=Benchmarks/.build/debug/ramcast-bench
only='*'
while (($#)); do case $1 in
  --bin-dir) bin_dir=$2; shift 2 ;;
  --bench) bench=$2; shift 2 ;;
  --only) only=$2; shift 2 ;;
  *) echo "bad-inputs: unknown argument $1 (see the header of $0)" >&2; exit 64 ;;
esac; done
files=$root/Tests/BadInputs/files
work=$(mktemp -d "${TMPDIR:-/tmp}/bad-inputs.XXXXXX")
trap 'rm -rf "$work"' EXIT

total=0; failed=0; t0=$(date +%s)
for case_file in "$root"/Tests/BadInputs/cases/$only.case; do
  [[ -f $case_file ]] || continue
  name=$(basename "$case_file" .case)
  total=$((total + 1))
  tmp=$work/$name; mkdir -p "$tmp"
  run=""; exit_expected=""; envs=(); setups=(); expects=()
  while IFS= read -r line || [[ -n $line ]]; do
    case $line in
      '#'*|'') ;;
      run:*) run=${line#run:} ;;
      env:*) envs+=("$(echo "${line#env:}" | sed 's/^ *//')") ;;
      setup:*) setups+=("${line#setup:}") ;;
      exit:*) exit_expected=$(echo "${line#exit:}" | tr -d ' ') ;;
      expect:*) expects+=("$(echo "${line#expect:}" | sed 's/^ //')") ;;
      *) echo "bad-inputs: $name: cannot read line: $line" >&2; exit 64 ;;
    esac
  done < "$case_file"
  if [[ -z $run || -z $exit_expected || ${#expects[@]} -eq 0 ]]; then
    echo "FAIL $name: the case needs run:, exit: and at least one expect:"; failed=$((failed + 1)); continue
  fi
  subst() { local s=${1//\{files\}/$files}; echo "${s//\{tmp\}/$tmp}"; }
  for s in "${setups[@]}"; do (cd "$tmp" && eval "$(subst "$s")") || { echo "FAIL $name: setup failed: $s"; failed=$((failed + 1)); continue 2; }; done
  eval "words=($(subst "$run"))"
  tool=${words[0]}
  case $tool in
    ramcast-bench) exe=$bench ;;
    ramcast-*) exe=$bin_dir/$tool ;;
    *) echo "FAIL $name: unknown tool $tool"; failed=$((failed + 1)); continue ;;
  esac
  [[ -x $exe ]] || { echo "FAIL $name: no executable at $exe"; failed=$((failed + 1)); continue; }
  # A clean environment, so that a stray RAMCAST_* variable of the caller cannot change a case.
  env -i PATH="$PATH" HOME="$tmp" "${envs[@]}" timeout 60 "$exe" "${words[@]:1}" > "$tmp/output" 2>&1 < /dev/null
  rc=$?
  problems=()
  if (( rc == 124 )); then problems+=("timed out after 60 s")
  elif (( rc > 128 )); then problems+=("ended by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null)), exit status $rc")
  elif [[ $rc != "$exit_expected" ]]; then problems+=("exit status $rc, expected $exit_expected")
  fi
  for e in "${expects[@]}"; do
    grep -qF -- "$(subst "$e")" "$tmp/output" || problems+=("output lacks: $e")
  done
  if ((${#problems[@]})); then
    failed=$((failed + 1))
    echo "FAIL $name: $(IFS=';'; echo "${problems[*]}")"
    echo "     run: ${envs[*]} $tool ${words[*]:1}"
    sed 's/^/     | /' "$tmp/output" | head -n 8
  fi
done
echo "bad inputs: $((total - failed)) of $total cases passed in $(( $(date +%s) - t0 )) s"
((total > 0 && failed == 0))
