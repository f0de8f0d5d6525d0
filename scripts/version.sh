#!/bin/sh
# Prints the working tree's label: `git describe --tags --always`, with
# -dirty when a tracked file changed outside bench/, or "dev" outside a
# repository. `make bench` rewrites the figures under bench/, and a
# benchmark's figures change nothing that is built or run in a drill, so
# they do not make the label dirty. Untracked files do not either, as with
# `git describe --dirty`.
#
# The Makefile's VERSION (firedrill's own version); the default --release of
# `firedrill run` and `nightly` follows the same rule (releaseLabel in
# cmd/firedrill).
v=$(git describe --tags --always 2>/dev/null) && [ -n "$v" ] || { echo dev; exit 0; }
# A status that cannot be read says dirty: a clean label is a claim.
if ! s=$(git --no-optional-locks status --porcelain --untracked-files=no -- ':(top)' ':(top,exclude)bench' 2>/dev/null) || [ -n "$s" ]; then
	v="$v-dirty"
fi
echo "$v"
