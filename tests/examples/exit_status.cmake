# Runs `kmm run SCRIPT` and checks its exit status (WANT) and that stderr contains WANT_ERR.
execute_process(COMMAND ${KMM} run ${SCRIPT} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL WANT)
  message(FATAL_ERROR "kmm run ${SCRIPT}: exit ${rc}, want ${WANT}\nstdout:\n${out}\nstderr:\n${err}")
endif()
string(FIND "${err}" "${WANT_ERR}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "stderr lacks '${WANT_ERR}':\n${err}")
endif()
