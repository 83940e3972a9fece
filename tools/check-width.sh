#!/bin/sh
# Fail when a C source line is wider than 100 columns or holds a tab, the
# hard limits of the house style (aim for 80).
set -eu
cd "$(dirname "$0")/.."
bad=$(awk 'length > 100 || /\t/ { printf "%s:%d: %d columns%s\n", FILENAME,
           FNR, length, (/\t/ ? ", tab" : "") }' \
      blobd/*.[ch] chatapi/*.[ch] imgproc/*.[ch] quota/*.[ch] \
      tests/unit/*.c tests/fuzz/*.c)
if [ -n "$bad" ]; then
    echo "$bad"
    exit 1
fi
echo "line widths: every C line within 100 columns, no tabs"
