# Declarative helpers in the spirit of absl_cc_library / absl_cc_test.
#
#   kiln_cc_library(NAME util SRCS a.cc HDRS a.h DEPS absl::status)
#     -> target kiln_util, alias kiln::util
#   kiln_cc_binary(NAME kilnd SRCS main.cc DEPS kiln::server)
#   kiln_cc_test(NAME util_test SRCS util_test.cc DEPS kiln::util)
#     -> GoogleTest binary, registered with ctest through gtest_discover_tests

function(kiln_cc_library)
  cmake_parse_arguments(KL "" "NAME" "SRCS;HDRS;DEPS" ${ARGN})
  set(target kiln_${KL_NAME})
  add_library(${target} STATIC ${KL_SRCS} ${KL_HDRS})
  add_library(kiln::${KL_NAME} ALIAS ${target})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${target} PUBLIC ${KL_DEPS})
endfunction()

function(kiln_cc_binary)
  cmake_parse_arguments(KB "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${KB_NAME} ${KB_SRCS})
  target_include_directories(${KB_NAME} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${KB_NAME} PRIVATE ${KB_DEPS})
endfunction()

function(kiln_cc_test)
  cmake_parse_arguments(KT "" "NAME" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${KT_NAME} ${KT_SRCS})
  target_include_directories(${KT_NAME} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${KT_NAME} PRIVATE ${KT_DEPS} GTest::gmock GTest::gtest GTest::gtest_main)
  gtest_discover_tests(${KT_NAME} PROPERTIES LABELS "unit;${KT_LABELS}" DISCOVERY_TIMEOUT 30)
endfunction()
