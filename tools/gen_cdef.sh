#!/bin/sh
# Turns the public header into a Lua module holding its declarations for
# ffi.cdef: the preprocessor (with FC_CDEF) drops includes and guards.
set -e
echo '-- generated from runtime/fastc.h by tools/gen_cdef.sh; do not edit'
echo 'return [['
${CC:-cc} -E -P -DFC_CDEF "$1" | grep -v '^\s*$'
echo ']]'
