/* kmm/replay/raw_event.h — the recorder's raw event records (recorder -> kmm trace).
 *
 * The preloaded recorder (libkmm-trace.so) writes fixed 40-byte records, in the order the
 * program made the calls (one lock orders all threads), to DIR/raw.PID.SEQ, one file per
 * process image: SEQ is 0 for the first image of a pid and counts up across exec. `kmm trace`
 * turns them into the text trace format (docs/TRACE_FORMAT.md). Host byte order; the files
 * never leave the machine that wrote them.
 *
 *   KMM_RAW_ALLOC    ptr = the block (0: the call failed), size = bytes asked, align_log2
 *   KMM_RAW_FREE     ptr = the block (recorded before the block is given back)
 *   KMM_RAW_REALLOC  ptr = the old block, size = bytes asked, result = the new block (0:
 *                    failed, the old block stays; size 0 with result 0: the block was freed)
 *   KMM_RAW_MODULE   module = its index (1..), size = the name's length; the name follows in
 *                    ceil(size / 40) records of raw bytes
 *   KMM_RAW_FORK     this file is a forked child's: blocks it did not allocate are its
 *                    parent's; ptr = the parent's pid
 *   time_ns is CLOCK_MONOTONIC when the call returned; tid is gettid().
 *
 * Depends on: nothing (C and C++). Invariant: sizeof(struct kmm_raw_event) == 40.
 */
#ifndef KMM_TOOLS_TRACE_RAW_EVENT_H
#define KMM_TOOLS_TRACE_RAW_EVENT_H

#include <stdint.h>

enum { KMM_RAW_ALLOC = 1, KMM_RAW_FREE = 2, KMM_RAW_REALLOC = 3, KMM_RAW_MODULE = 4, KMM_RAW_FORK = 5 };

struct kmm_raw_event {
  uint8_t op;
  uint8_t align_log2;
  uint16_t module;
  uint32_t tid;
  uint64_t ptr;
  uint64_t size;
  uint64_t result;
  uint64_t time_ns;
};

#define KMM_TRACE_DIR_ENV "KMM_TRACE_DIR"
#define KMM_TRACE_CALLERS_ENV "KMM_TRACE_CALLERS"

#endif
