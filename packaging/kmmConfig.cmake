# find_package(kmm): the imported target kmm::preload (libkmm-preload.so, kmm as the linking
# program's malloc, with the kmm_* API of <kmm/kmm.h>) and kmm_EXECUTABLE (the command line).
# Paths are relative to this file: <prefix>/lib/cmake/kmm/kmmConfig.cmake.
get_filename_component(_kmm_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET kmm::preload)
  add_library(kmm::preload SHARED IMPORTED)
  set_target_properties(kmm::preload PROPERTIES
    IMPORTED_LOCATION "${_kmm_prefix}/lib/libkmm-preload.so"
    INTERFACE_INCLUDE_DIRECTORIES "${_kmm_prefix}/include")
endif()
set(kmm_EXECUTABLE "${_kmm_prefix}/bin/kmm")
unset(_kmm_prefix)
