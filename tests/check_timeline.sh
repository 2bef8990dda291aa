#!/bin/sh
# RAYHPC_TIMELINE: a 2-rank job on 2 nodes (tests/multi/timeline) writes
# one trace that loads as JSON and agrees with what the job did: every task
# ran once, as a complete event (begin and duration) on a worker's track;
# every actor call is there; the bytes of the pull events of each rank add
# up to its rh_stats bytes_pulled; forwards and waits were recorded; the
# per-rank parts are gone. Also a path that cannot be written fails rh_init
# with a message naming it.
# Run by `make check` (RH_TEST_BUILDDIR is set there).
build=${RH_TEST_BUILDDIR:-.}
tmp=${TMPDIR:-/tmp}/rh-timeline.$$
mkdir -p "$tmp" || exit 1
trap 'rm -rf "$tmp"' EXIT

if ! command -v python3 >/dev/null 2>&1 ||
   ! python3 -c 'import json' 2>/dev/null; then
    echo "check_timeline: python3 is needed to read the trace" >&2
    exit 77
fi

RAYHPC_TIMELINE="$tmp/trace.json" timeout 120 "$build/rayhpc-run" -n 2 \
    --nodes 2 "$build/tests/multi/timeline" >"$tmp/out" 2>"$tmp/err"
st=$?
if [ $st -ne 0 ] || ! grep -q '^TIMELINE OK' "$tmp/out"; then
    echo "check_timeline: the job failed ($st):" >&2
    cat "$tmp/out" "$tmp/err" >&2
    exit 1
fi
if ls "$tmp"/trace.json.rank* >/dev/null 2>&1; then
    echo "check_timeline: per-rank parts left behind:" "$tmp"/trace.json.rank* >&2
    exit 1
fi

python3 - "$tmp/trace.json" "$tmp/out" <<'PY' || exit 1
import json, re, sys

trace = json.load(open(sys.argv[1]))
want = dict(re.findall(r'(\w+)=(\d+)',
                       [l for l in open(sys.argv[2]) if l.startswith('TIMELINE tasks')][0]))
want = {k: int(v) for k, v in want.items()}
ev = trace['traceEvents']
fails = []
tracks = {(e['pid'], e['tid']): e['args']['name']
          for e in ev if e.get('ph') == 'M' and e['name'] == 'thread_name'}
procs = {e['pid'] for e in ev if e.get('ph') == 'M' and e['name'] == 'process_name'}
if procs != {0, 1}:
    fails.append('process tracks %s, not ranks 0 and 1' % sorted(procs))
spans = [e for e in ev if e.get('ph') == 'X']
for e in spans:
    for k in ('name', 'cat', 'pid', 'tid', 'ts', 'dur'):
        if k not in e:
            fails.append('event without %s: %s' % (k, e))
            break
    else:
        if e['dur'] < 0 or (e['pid'], e['tid']) not in tracks:
            fails.append('event without a track or with a negative duration: %s' % e)
work = [e for e in spans if e['name'] == 'tl_work' and e['cat'] == 'task']
if len(work) != want['tasks']:
    fails.append('%d tl_work task events, not %d' % (len(work), want['tasks']))
for e in work:
    track = tracks.get((e['pid'], e['tid']), '')
    if not re.match(r'(worker|wk|spare)-\d+$', track):
        fails.append('task event on track %r: %s' % (track, e))
calls = [e for e in spans if e['name'] == 'tl_counter.tl_add']
if len(calls) != want['calls'] or any(e['cat'] != 'actor' for e in calls):
    fails.append('%d tl_add actor call events, not %d' % (len(calls), want['calls']))
if not any(e['name'] == 'tl_counter' and e['cat'] == 'actor' for e in spans):
    fails.append('no event for the actor constructor')
for rank in (0, 1):
    got = sum(e['args']['bytes'] for e in spans
              if e['cat'] == 'pull' and e['pid'] == rank)
    if got != want['pulled%d' % rank]:
        fails.append('rank %d: pull events add up to %d bytes, rh_stats says %d'
                     % (rank, got, want['pulled%d' % rank]))
    if want['pulled%d' % rank] == 0:
        fails.append('rank %d pulled nothing: the test proves nothing' % rank)
fwd = [e for e in spans if e['cat'] == 'forward' and e['pid'] == 0]
if len([e for e in fwd if e['args'].get('peer') == 1]) < 20:
    fails.append('%d forward events from rank 0 to rank 1, not 20 or more' % len(fwd))
if not any(e['cat'] == 'wait' and e['pid'] == 0 for e in spans):
    fails.append('no wait event on rank 0')
for f in fails[:20]:
    print('check_timeline:', f, file=sys.stderr)
sys.exit(1 if fails else 0)
PY

# A trace that cannot be written is refused at rh_init, with the path.
RAYHPC_TIMELINE="$tmp/no/such/dir/trace.json" timeout 60 "$build/rayhpc-run" \
    -n 1 "$build/tests/multi/timeline" >"$tmp/out" 2>"$tmp/err"
st=$?
if [ $st -eq 0 ] || ! grep -q "RAYHPC_TIMELINE: cannot write $tmp/no/such/dir" "$tmp/err"; then
    echo "check_timeline: an unwritable RAYHPC_TIMELINE was not refused with its path ($st):" >&2
    cat "$tmp/err" >&2
    exit 1
fi
exit 0
