# Warning flags shared by every target; -Werror when KMM_WERROR is on (CI turns it on).
add_compile_options(-Wall -Wextra -Wshadow -Wnon-virtual-dtor -Wold-style-cast
                    -Wcast-align -Wunused -Woverloaded-virtual -Wpedantic -Wconversion
                    -Wno-sign-conversion -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough)
if(KMM_WERROR)
  add_compile_options(-Werror)
endif()

# kmm_core_target(NAME): the flags every core layer is built with.
function(kmm_core_target name)
  # A section a function (and datum), so that the preload's link drops what it never calls
  # (-Wl,--gc-sections, src/shim): its pages are part of every program's resident set.
  target_compile_options(${name} PRIVATE -fno-exceptions -fno-rtti -ffunction-sections -fdata-sections)
endfunction()
