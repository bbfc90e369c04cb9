#!/bin/sh
# Writes the field table (rnnd keys SCOPE) into the docs, between the lines
# <!-- keys SCOPE --> and <!-- /keys -->. Usage: scripts/docs-keys.sh RNND FILE...
set -e
rnnd=$1
shift
for f in "$@"; do
    tmp=$f.keys.$$
    awk -v rnnd="$rnnd" '
        /^<!-- keys [a-z._]+ -->$/ { print; scope = $3; cmd = rnnd " keys " scope;
                                    while ((cmd | getline line) > 0) print line; close(cmd); skip = 1; next }
        /^<!-- \/keys -->$/ { skip = 0 }
        !skip { print }' "$f" > "$tmp"
    mv "$tmp" "$f"
done
