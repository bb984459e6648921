#!/usr/bin/env bash
# e2e-failures.sh LOG: the lines each failed test printed itself, from the
# verbose log of `go test -v`, last, where a CI that shows only the end of
# the output still shows why the run failed.
set -euo pipefail
awk '
/^=== (RUN|NAME|CONT) / { cur = $3; next }
/^=== PAUSE / { next }
/^ *--- (PASS|FAIL|SKIP): / {
	if ($2 == "FAIL:") { failed[++nf] = $3 }
	next
}
cur != "" { n[cur]++; line[cur, n[cur]] = $0 }
END {
	if (nf == 0) exit
	print "=== what the failed tests printed (last 30 lines each)"
	for (i = 1; i <= nf; i++) {
		t = failed[i]
		print "--- " t
		from = n[t] > 30 ? n[t] - 29 : 1
		for (j = from; j <= n[t]; j++) print line[t, j]
	}
}' "$1"
