# tests/common/run_and_match.cmake — runs one command and passes only when BOTH its exit
# status is WANT_RC (default 0) AND its output (stdout and stderr together) matches the
# regular expression WANT_OUT. CTest's PASS_REGULAR_EXPRESSION alone ignores the exit status,
# so a program that prints the right line and then fails would pass (issue 22); tests that
# look for a line in a program's output go through this script instead.
#
#   add_test(NAME x COMMAND ${CMAKE_COMMAND} "-DWANT_OUT=containment: OK"
#            -P ${CMAKE_SOURCE_DIR}/tests/common/run_and_match.cmake -- PROGRAM ARGS...)
#
# Depends on: CMake 3.x script mode only. Invariant: the command's output is echoed whole,
# so a failing test's log shows what the program said.
if(NOT DEFINED WANT_OUT OR WANT_OUT STREQUAL "")
  message(FATAL_ERROR "run_and_match.cmake: -DWANT_OUT=REGEX is required (an empty pattern matches anything)")
endif()
if(NOT DEFINED WANT_RC)
  set(WANT_RC 0)
endif()

# The command is everything after `--` on cmake's command line.
set(cmd "")
set(seen_separator FALSE)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(i RANGE 0 ${last})
  if(seen_separator)
    list(APPEND cmd "${CMAKE_ARGV${i}}")
  elseif(CMAKE_ARGV${i} STREQUAL "--")
    set(seen_separator TRUE)
  endif()
endforeach()
if(cmd STREQUAL "")
  message(FATAL_ERROR "run_and_match.cmake: no command (give it after `--`)")
endif()

string(JOIN " " shown ${cmd})
execute_process(COMMAND ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("${out}")
if(NOT rc STREQUAL "${WANT_RC}")
  message(FATAL_ERROR "run_and_match.cmake: '${shown}' exited with '${rc}', want ${WANT_RC}")
endif()
if(NOT out MATCHES "${WANT_OUT}")
  message(FATAL_ERROR "run_and_match.cmake: the output of '${shown}' does not match '${WANT_OUT}'")
endif()
message("run_and_match.cmake: exit ${rc} and output matching '${WANT_OUT}': OK")
