# KMM_SANITIZE=address,undefined or thread: instrument every target in this build tree.
if(KMM_SANITIZE)
  add_compile_options(-fsanitize=${KMM_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=${KMM_SANITIZE})
  add_compile_definitions(KMM_SANITIZED=1)
endif()
