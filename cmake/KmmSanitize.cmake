# KMM_SANITIZE=address,undefined or thread: instrument every target in this build tree.
if(KMM_SANITIZE)
  add_compile_options(-fsanitize=${KMM_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  # The core is built without RTTI (kmm_core_target), so UBSan's vptr check finds no typeinfo
  # for kmm's polymorphic classes (Platform): link errors and false reports. Leave it out.
  if(KMM_SANITIZE MATCHES "undefined")
    add_compile_options(-fno-sanitize=vptr)
  endif()
  add_link_options(-fsanitize=${KMM_SANITIZE})
  add_compile_definitions(KMM_SANITIZED=1)
endif()
