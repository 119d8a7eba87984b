# cmake -P script behind the consumer.package test: install the build into a fresh prefix, then build
# and run tests/consumer/project against it with find_package, and compile main.cpp with pkg-config.
# Inputs: -DBUILD_DIR= -DSOURCE_DIR= (tests/consumer) -DWORK_DIR= -DCXX= -DCC= -DGENERATOR=
foreach(v BUILD_DIR SOURCE_DIR WORK_DIR CXX CC GENERATOR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run_consumer.cmake: ${v} not set")
  endif()
endforeach()

function(step)
  cmake_parse_arguments(S "" "NAME" "COMMAND" ${ARGN})
  execute_process(COMMAND ${S_COMMAND} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${S_NAME} failed (${rc}):\n${S_COMMAND}\n${out}\n${err}")
  endif()
  message(STATUS "${S_NAME}: ok")
  set(STEP_OUTPUT "${out}" PARENT_SCOPE)
endfunction()

set(prefix ${WORK_DIR}/prefix)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

step(NAME "install" COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})

# What a package must contain.
file(GLOB_RECURSE config LIST_DIRECTORIES false ${prefix}/*/offcopyConfig.cmake)
file(GLOB_RECURSE pcfile LIST_DIRECTORIES false ${prefix}/*/offcopy.pc)
file(GLOB_RECURSE pcfile_c LIST_DIRECTORIES false ${prefix}/*/offcopy-c.pc)
file(GLOB_RECURSE soname LIST_DIRECTORIES false ${prefix}/*/liboffcopy.so.0)
foreach(need config pcfile pcfile_c soname)
  if(NOT ${need})
    message(FATAL_ERROR "installed tree lacks ${need}")
  endif()
endforeach()
foreach(f include/offcopy/offcopy.hpp include/offcopy/status.hpp include/offcopy/offcopy.h include/offcopy/export.h
    bin/offload-copy share/man/man1/offload-copy.1)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "installed tree lacks ${f}")
  endif()
endforeach()

# find_package(offcopy) + offcopy::offcopy / offcopy::offcopy_static.
step(NAME "configure consumer" COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}/project -B ${WORK_DIR}/build
  -G ${GENERATOR} -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_C_COMPILER=${CC}
  -DCMAKE_BUILD_TYPE=Release)
step(NAME "build consumer" COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/build)
step(NAME "run consumer (shared)" COMMAND ${WORK_DIR}/build/consumer ${WORK_DIR})
message(STATUS "${STEP_OUTPUT}")
step(NAME "run consumer (static)" COMMAND ${WORK_DIR}/build/consumer_static ${WORK_DIR})
step(NAME "run consumer (C API)" COMMAND ${WORK_DIR}/build/consumer_c ${WORK_DIR})

# pkg-config: the .pc must point into this prefix, wherever it was installed.
get_filename_component(pcdir ${pcfile} DIRECTORY)
set(ENV{PKG_CONFIG_PATH} ${pcdir})
step(NAME "pkg-config" COMMAND pkg-config --cflags --libs offcopy)
string(STRIP "${STEP_OUTPUT}" flags)
separate_arguments(flags UNIX_COMMAND "${flags}")
step(NAME "compile with pkg-config" COMMAND ${CXX} ${SOURCE_DIR}/project/main.cpp ${flags}
  -o ${WORK_DIR}/consumer_pc)
get_filename_component(libdir ${soname} DIRECTORY)
set(ENV{LD_LIBRARY_PATH} ${libdir})
step(NAME "run consumer (pkg-config)" COMMAND ${WORK_DIR}/consumer_pc ${WORK_DIR})
# The C API with pkg-config: offcopy-c.pc carries no C++ flags.
step(NAME "pkg-config (C)" COMMAND pkg-config --cflags --libs offcopy-c)
string(STRIP "${STEP_OUTPUT}" cflags)
separate_arguments(cflags UNIX_COMMAND "${cflags}")
step(NAME "compile C with pkg-config" COMMAND ${CC} -std=c11 -Wall -Wextra -Wpedantic -Werror
  ${SOURCE_DIR}/c_api_test.c ${cflags} -o ${WORK_DIR}/consumer_c_pc)
step(NAME "run C consumer (pkg-config)" COMMAND ${WORK_DIR}/consumer_c_pc ${WORK_DIR})

# The installed CLI runs too.
step(NAME "installed offload-copy --version" COMMAND ${prefix}/bin/offload-copy --version)
file(REMOVE_RECURSE ${WORK_DIR})
