#!/bin/sh
# Runs every C test executable, then the busted specs through fastlua, and
# sums their counts into one closing line.
BUILD=${1:-build}
passed=0; failed=0
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  out=$("$t" 2>&1); rc=$?
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
  printf '%s\n' "$out" | grep -v -E '^[0-9]+ passed, [0-9]+ failed'
  if [ -z "$line" ]; then
    echo "$(basename "$t"): crashed (exit $rc)"; failed=$((failed + 1)); continue
  fi
  p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
  echo "$(basename "$t"): $line"
  passed=$((passed + p)); failed=$((failed + f))
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && failed=$((failed + 1))
done
export FASTLUA="$PWD/$BUILD/fastlua"  # the spec of fastlua drives this very build
out=$("$BUILD"/fastlua tools/busted.lua -o tools/busted_summary.lua tests/lua 2>&1); rc=$?
printf '%s\n' "$out" | grep -v -E '^[0-9]+ passed, [0-9]+ failed'
line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
if [ -z "$line" ]; then
  echo "busted: crashed (exit $rc)"; failed=$((failed + 1))
else
  p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
  echo "busted: $line"
  passed=$((passed + p)); failed=$((failed + f))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
