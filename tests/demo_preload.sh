#!/usr/bin/env bash
# demo_preload.sh - the main job, runnable: an unmodified sqlite3 paged by
# upaged through upage-run.
#
# Starts a private upaged on a socket in a temporary directory (waiting for
# its ready line, no sleeping), generates a database, runs sqlite3 with
# mmap under upage-run; sqlite3 itself, mid-run, has `upagectl status` and
# `upagectl pmap` printed for its own pid; checks that the answers equal
# those of sqlite3 without the shim; stops the daemon with SIGTERM and
# reports its exit status. BUILD names the build directory (default build).
set -eu

build=${BUILD:-build}
bin=$(cd "$build" && pwd)
tmp=$(mktemp -d /tmp/upage-demo-XXXXXX)
sock=$tmp/upaged.sock
daemon=
cleanup() {
	[ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "== starting a private upaged on $sock"
mkfifo "$tmp/daemon.err"
"$bin/upaged" --foreground --socket "$sock" 2>"$tmp/daemon.err" &
daemon=$!
exec 3<"$tmp/daemon.err"
while IFS= read -r line <&3; do
	echo "$line"
	case $line in "upaged: ready on "*) break ;; esac
done
cat <&3 >&2 &

echo "== generating a database of 60 000 rows (60 MB)"
sqlite3 "$tmp/demo.db" "PRAGMA synchronous = OFF;
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, payload BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 60000)
INSERT INTO t SELECT x, 'row ' || x, randomblob(1000) FROM c;"
cp "$tmp/demo.db" "$tmp/plain.db"

# The queries; midway sqlite3 runs upagectl about itself ($PPID of the
# shell it starts), so status and pmap are printed (apart from
# the query results: fd 4, our stdout) while it runs.
queries() {
	cat <<EOF
PRAGMA mmap_size = 268435456;
SELECT count(*), sum(length(payload)) FROM t;
.print -- upagectl status, upagectl pmap (sqlite3 running under upage-run):
.system $1
UPDATE t SET name = upper(name) WHERE id % 1000 = 0;
SELECT id, name, hex(substr(payload, 1, 4)) FROM t WHERE id % 15000 = 0;
PRAGMA integrity_check;
EOF
}
ctl="env -u LD_PRELOAD $bin/upagectl --socket $sock"

echo "== sqlite3 under upage-run"
exec 4>&1
queries "$ctl status >&4; $ctl pmap \$PPID >&4" |
	"$bin/upage-run" --socket "$sock" -- sqlite3 "$tmp/demo.db" |
	tee "$tmp/paged.out"

echo "== the same without the shim"
queries "true" | sqlite3 "$tmp/plain.db" >"$tmp/plain.out"
if cmp -s "$tmp/paged.out" "$tmp/plain.out" &&
   cmp -s "$tmp/demo.db" "$tmp/plain.db"; then
	echo "== same answers and a byte-identical database with and without upaged"
else
	echo "== results differ!" >&2
	diff "$tmp/plain.out" "$tmp/paged.out" >&2 || true
	exit 1
fi

echo "== stopping upaged"
kill -TERM "$daemon"
status=0
wait "$daemon" || status=$?
daemon=
echo "upaged exited with status $status"
exit "$status"
