function(offcopy_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wnon-virtual-dtor -Wpedantic
    -Wno-missing-field-initializers)
endfunction()
