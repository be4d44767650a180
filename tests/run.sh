#!/usr/bin/env bash
# Runs test programs and counts their cmocka results.
#
#   run.sh --dir DIR BIN...   run each BIN, write DIR/.results
#   run.sh --total FILE...    add up result files, print the closing line
#
# A program that exits 77 is skipped (the kernel lacks what it needs); one
# that crashes or exits non-zero without a cmocka summary counts as a failure.
set -u

if [ "${1:-}" = "--total" ]; then
	shift
	p=0 f=0 s=0
	for r in "$@"; do
		[ -f "$r" ] || { echo "missing results: $r" >&2; f=$((f + 1)); continue; }
		read -r a b c <"$r"
		p=$((p + a)) f=$((f + b)) s=$((s + c))
	done
	echo "$p passed, $f failed, $s skipped"
	[ "$f" -eq 0 ]
	exit
fi

[ "${1:-}" = "--dir" ] || { echo "usage: run.sh --dir DIR BIN... | --total FILE..." >&2; exit 2; }
dir=$2
shift 2
mkdir -p "$dir"
p=0 f=0 s=0
for bin in "$@"; do
	log="$dir/$(basename "$bin").log"
	echo "== $bin"
	timeout -k 10 "${UPAGED_TEST_TIMEOUT:-600}" "$bin" >"$log" 2>&1
	rc=$?
	cat "$log"
	if [ $rc -eq 77 ]; then
		s=$((s + 1))
		continue
	fi
	# A program may run several cmocka groups: add up every summary.
	passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s += $1} END {print s + 0}')
	failed=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s += $1} END {print s + 0}')
	if [ $rc -ne 0 ] && [ "$failed" -eq 0 ]; then
		echo "!! $bin exited with status $rc"
		failed=1
	fi
	p=$((p + passed)) f=$((f + failed))
done
echo "$p $f $s" >"$dir/.results"
echo "$dir: $p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
