#!/usr/bin/env bash
# Runs the blobd benchmarks: all sections, or the ones named on the command
# line, each bounded by `timeout`. Tables go to stdout (Markdown), progress
# to stderr. Each section starts its own servers on 127.0.0.1 with a
# temporary directory and stops them by pid; see bench/README.md.
#
#   bench/run.sh                 # every section, about 20 minutes
#   bench/run.sh upload get      # only these
#
# The imgproc section belongs to bench/imgproc/ and is not run from here.

set -u

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
REPO_ROOT=$(dirname "$BENCH_DIR")
PYTHON=/usr/bin/python3

ALL_SECTIONS="upload get image messages purge"

# Upper bound of each section in seconds; the figures take far less except
# purge, whose fill alone may use BENCH_FILL_SECONDS (600 by default).
declare -A LIMIT=([upload]=900 [get]=600 [image]=300 [messages]=900
                  [purge]=2400)
declare -A SCRIPT=([upload]=http/upload.py [get]=http/get.py
                   [image]=http/image.py [messages]=chat/messages.py
                   [purge]=chat/purge.py)

usage() {
    echo "usage: bench/run.sh [section...]   sections: $ALL_SECTIONS" >&2
    exit 2
}

sections=("$@")
if [ ${#sections[@]} -eq 0 ]; then
    read -r -a sections <<< "$ALL_SECTIONS"
fi
for section in "${sections[@]}"; do
    [ -n "${SCRIPT[$section]:-}" ] || { echo "unknown section: $section" >&2; usage; }
done

# Install what the benchmarks need beyond the tests' packages.
sh "$(dirname "$0")/../tools/install-deps.sh" bench

missing=()
for tool in wrk nginx curl openssl dd vipsthumbnail timeout; do
    command -v "$tool" > /dev/null || missing+=("$tool")
done
[ -x "$PYTHON" ] || missing+=("$PYTHON")
[ -x /usr/bin/convert ] || missing+=("/usr/bin/convert (imagemagick)")
if [ ${#missing[@]} -gt 0 ]; then
    echo "missing tools: ${missing[*]} (tools/install-deps.sh bench installs them)" >&2
    exit 1
fi

if [ -z "${BLOBD_BIN:-}" ]; then
    if ! make -C "$REPO_ROOT" --no-print-directory build/blobd >&2; then
        [ -x "$REPO_ROOT/build/blobd" ] || exit 1
        echo "WARNING: make failed; benchmarking the existing build/blobd" >&2
    fi
fi

# The running section's pid, ended by pid on Ctrl-C or SIGTERM; timeout
# passes the signal on, and the section stops its servers.
child=""
stop_child() {
    if [ -n "$child" ]; then
        kill -TERM "$child" 2> /dev/null
        wait "$child" 2> /dev/null
    fi
    exit 130
}
trap stop_child INT TERM

echo "# blobd benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs," \
     "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
     "commit $(git -C "$REPO_ROOT" rev-parse --short HEAD 2> /dev/null || echo unknown)"

failed=()
for section in "${sections[@]}"; do
    echo "== $section (at most ${LIMIT[$section]} s)" >&2
    timeout --kill-after=30 "${LIMIT[$section]}" \
        "$PYTHON" "$BENCH_DIR/${SCRIPT[$section]}" &
    child=$!
    wait "$child"
    status=$?
    child=""
    if [ "$status" -ne 0 ]; then
        [ "$status" -eq 124 ] && echo "== $section timed out" >&2
        failed+=("$section (exit $status)")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "failed sections: ${failed[*]}" >&2
    exit 1
fi
