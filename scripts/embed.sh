#!/bin/sh
# Turns a file into a C string constant: scripts/embed.sh NAME FILE > OUT.c
set -eu
printf '/* generated from %s by scripts/embed.sh; do not edit */\nconst char %s[] =\n' "$2" "$1"
sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$/\\n"/' "$2"
printf ';\n'
