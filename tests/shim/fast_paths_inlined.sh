#!/bin/sh
# tests/shim/fast_paths_inlined.sh — the preload's malloc and free keep slab/slab_fast.h's fast
# paths inline. A compiler that stops inlining one leaves an out-of-line copy of it in the
# library, and every malloc or free then pays a call and its register saves: a template whose
# always_inline sat on its definition only was called so once, unnoticed by every other test
# (larson: 24 % of the time in the copy). free_fast_remote is out of line on purpose.
# Usage: fast_paths_inlined.sh LIBRARY
set -eu
lib=$1
pattern='SlabAllocator::(alloc_fast|alloc_fast_tc_slot|alloc_fast_owned|free_fast|free_fast_masked|free_fast_masked_with|free_fast_at|free_fast_done)(<|\()'
found=$(nm -C "$lib" | grep -E "$pattern" || true)
if [ -n "$found" ]; then
  echo "out-of-line fast paths in $lib:"
  echo "$found"
  exit 1
fi
echo "slab fast paths inline in $lib"
