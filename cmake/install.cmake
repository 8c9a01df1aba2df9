# Install rules and the .deb (issue 19): `cmake --install build --prefix P` puts
#   P/bin/kmm, P/lib/libkmm-preload.so, P/lib/libkmm-trace.so (the recorder), P/include/kmm/,
#   P/lib/cmake/kmm/kmmConfig.cmake (find_package(kmm): imported target kmm::preload) and
#   P/lib/pkgconfig/kmm.pc.
# The libraries go to P/lib (not the multiarch libdir): `kmm exec` and `kmm trace` find them
# at <dir of kmm>/../lib, the same layout as the build tree. CPack makes a .deb of the same set.
if(NOT TARGET kmm OR NOT TARGET kmm-preload)
  return()
endif()
set(KMM_INSTALL_LIBDIR lib)
install(TARGETS kmm RUNTIME DESTINATION bin)
install(TARGETS kmm-preload LIBRARY DESTINATION ${KMM_INSTALL_LIBDIR})
if(TARGET kmm-trace)
  install(TARGETS kmm-trace LIBRARY DESTINATION ${KMM_INSTALL_LIBDIR})
endif()
install(DIRECTORY ${CMAKE_SOURCE_DIR}/include/kmm DESTINATION include)
include(CMakePackageConfigHelpers)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/kmmConfigVersion.cmake COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/kmmConfig.cmake ${CMAKE_BINARY_DIR}/kmmConfigVersion.cmake
        DESTINATION ${KMM_INSTALL_LIBDIR}/cmake/kmm)
configure_file(${CMAKE_SOURCE_DIR}/packaging/kmm.pc.in ${CMAKE_BINARY_DIR}/kmm.pc.install @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/kmm.pc.install DESTINATION ${KMM_INSTALL_LIBDIR}/pkgconfig RENAME kmm.pc)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME kmm)
set(CPACK_PACKAGE_CONTACT "kmm developers")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Linux-style kernel memory manager in user space: drop-in malloc, modelled machine, memory protector")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS OFF)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libc6")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
include(CPack)
