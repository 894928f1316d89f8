#!/usr/bin/env bash
# Mutation testing of one module against one test file, in a scratch copy of the tree:
#   scripts/mutation.sh avatarify/core/settings.py tests/test_settings.py
# Prints the killed/survived counts and each surviving mutant's diff. Needs mutmut (pip install mutmut).
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: scripts/mutation.sh MODULE.py TEST_FILE.py" >&2
    exit 2
fi
module=$1 tests=$2
root=$(cd "$(dirname "$0")/.." && pwd)
for path in "$module" "$tests"; do
    [ -f "$root/$path" ] || { echo "scripts/mutation.sh: no file $path in $root" >&2; exit 2; }
done
command -v mutmut >/dev/null || { echo "scripts/mutation.sh: mutmut is not installed (pip install mutmut)" >&2; exit 2; }
# The scratch copy has no ../shared beside it: point the tests at this checkout's, so that they run, not skip.
export AVATARIFY_SHARED="${AVATARIFY_SHARED:-$(cd "$root/.." && pwd)/shared}"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# The working tree as it is (tracked and new files), never the repository itself: mutmut rewrites what it copies.
(cd "$root" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - 2>/dev/null) | tar -xf - -C "$scratch"
cat >> "$scratch/setup.cfg" <<CFG

[mutmut]
source_paths = $module
pytest_add_cli_args_test_selection = $tests
also_copy =
    tests/
    avatarify/
CFG
cd "$scratch"
mutmut run --max-children "$(nproc)" >/dev/null 2>&1 || true
results=$(mutmut results --all true 2>/dev/null)
# A mutant that makes the tests hang (a timeout) is caught as surely as one that makes them fail.
killed=$(grep -cE ': (killed|timeout)$' <<<"$results" || true)
hung=$(grep -c ': timeout$' <<<"$results" || true)
total=$(grep -c ': ' <<<"$results" || true)
echo "$module against $tests: $killed of $total mutants killed ($hung of them by a timeout)"
for mutant in $(grep -vE ': (killed|timeout)$' <<<"$results" | sed 's/:.*//'); do
    echo "--- $mutant ($(grep -F "$mutant:" <<<"$results" | sed 's/.*: //'))"
    mutmut show "$mutant" 2>/dev/null | grep '^[-+][^-+]' || true
done
