// kmm/replay/convert.h — `kmm trace`'s second half: the recorder's raw files (raw_event.h)
// of one recording directory, turned into trace files (docs/TRACE_FORMAT.md).
//
// Depends on: the C++ standard library (the conversion itself: replay/trace.h, fmt, zlib).
// Invariants: the first file written is the main trace (the last image of the first
// process); every other process image that allocated something gets OUTPUT.PID[.SEQ].
#pragma once

#include <string>
#include <vector>

namespace kmm::scenario {

// Converts the raw files of one recording directory into trace files: the first process
// image to `output`, every other one to `output`.PID[.SEQ]. Returns the files written; on
// failure an empty list with *error set. A few lines on what was written go to *summary.
std::vector<std::string> convert_raw_dir(const std::string& dir, const std::string& output, int first_pid,
                                         std::string* error, std::string* summary);

}  // namespace kmm::scenario
