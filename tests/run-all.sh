#!/bin/bash
# The one test command (`make test`, also run by .ci/run).
#
# Runs, in order: the unit tests (cmocka) and the end-to-end tests (pytest
# against a real blobd on 127.0.0.1) on the normal build, then the same on
# the ASan+UBSan build, then the imgproc and request fuzzers for a bounded
# time each. The last line is the total: "N passed, N failed".
#
# Environment: BLOBD_CORPUS (default ../shared/corpus/images beside the
# checkout), FUZZ_SECONDS (default 60, 0 skips both fuzzers),
# FUZZ_REQUEST_SECONDS (default 30, the request parser's share), SKIP_ASAN=1
# runs the normal build only (for quick local runs; CI runs everything).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export BLOBD_CORPUS=${BLOBD_CORPUS:-$root/../shared/corpus/images}
py=/usr/bin/python3
passed=0
failed=0
log_dir=$(mktemp -d /tmp/blobd-tests.XXXXXX)

note() { printf '\n=== %s\n' "$*"; }

# Add the counts of one cmocka binary, read from its TAP output.
run_unit() {
    local bin=$1 label=$2 out ok notok rc
    out="$log_dir/$(basename "$bin")-$label.tap"
    CMOCKA_MESSAGE_OUTPUT=TAP "$bin" >"$out" 2>&1
    rc=$?
    ok=$(grep -c '^ok ' "$out")
    notok=$(grep -c '^not ok ' "$out")
    if [ "$rc" -ne 0 ] && [ "$notok" -eq 0 ]; then
        notok=1   # crashed or failed before reporting
    fi
    printf '%-40s %s passed, %s failed\n' "$(basename "$bin") [$label]" \
        "$ok" "$notok"
    if [ "$notok" -ne 0 ]; then
        grep -v '^ok ' "$out" | tail -40
    fi
    passed=$((passed + ok))
    failed=$((failed + notok))
}

# Run pytest on the e2e suite against one blobd binary.
run_e2e() {
    local bin=$1 label=$2 xml counts
    xml="$log_dir/e2e-$label.xml"
    # Two workers: each test starts its own servers on free ports.
    BLOBD_BIN=$bin $py -m pytest -q -n 2 -p no:cacheprovider \
        --junitxml="$xml" tests/e2e "${@:3}"
    counts=$($py - "$xml" <<'PYEOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("0 1")
    raise SystemExit
suites = [root] if root.tag == "testsuite" else list(root)
total = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0))
          for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(total - bad - skipped, bad + skipped)
PYEOF
)
    passed=$((passed + ${counts% *}))
    failed=$((failed + ${counts#* }))
}

note "build"
if ! make -j2 all unit-bin >"$log_dir/build.log" 2>&1; then
    tail -40 "$log_dir/build.log"
    echo "0 passed, 1 failed"
    exit 1
fi

note "style"
if tools/check-width.sh; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
fi

note "unit tests"
for bin in build/tests/test_*; do
    # Skip the compiler's dependency files (*.d) beside the binaries.
    [ "${bin%.d}" = "$bin" ] && [ -x "$bin" ] && run_unit "$bin" normal
done

note "end-to-end tests"
run_e2e "$root/build/blobd" normal

if [ "${SKIP_ASAN:-0}" != 1 ]; then
    note "sanitizer build (ASan + UBSan)"
    if ! make -j2 asan >"$log_dir/asan-build.log" 2>&1; then
        tail -40 "$log_dir/asan-build.log"
        failed=$((failed + 1))
    else
        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
        export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
        export LSAN_OPTIONS=suppressions=$root/tests/lsan.supp
        for bin in build-asan/tests/test_*; do
            [ "${bin%.d}" = "$bin" ] && [ -x "$bin" ] && run_unit "$bin" asan
        done
        note "end-to-end tests under ASan + UBSan"
        BLOBD_SANITIZED=1 run_e2e "$root/build-asan/blobd" asan
    fi
fi

if [ "${FUZZ_SECONDS:-60}" != 0 ] && [ -x tests/fuzz/run.sh ]; then
    note "fuzzing imgproc for ${FUZZ_SECONDS:-60} s"
    if tests/fuzz/run.sh "${FUZZ_SECONDS:-60}" >"$log_dir/fuzz.log" 2>&1; then
        passed=$((passed + 1))
        tail -3 "$log_dir/fuzz.log"
    else
        failed=$((failed + 1))
        tail -40 "$log_dir/fuzz.log"
    fi
fi

if [ "${FUZZ_SECONDS:-60}" != 0 ] && [ -x tests/fuzz/run-request.sh ]; then
    note "fuzzing request parsing for ${FUZZ_REQUEST_SECONDS:-30} s"
    if tests/fuzz/run-request.sh "${FUZZ_REQUEST_SECONDS:-30}" \
        >"$log_dir/fuzz-request.log" 2>&1; then
        passed=$((passed + 1))
        tail -3 "$log_dir/fuzz-request.log"
    else
        failed=$((failed + 1))
        tail -40 "$log_dir/fuzz-request.log"
    fi
fi

echo
echo "logs in $log_dir"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
