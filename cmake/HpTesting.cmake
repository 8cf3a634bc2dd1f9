# hp_add_unit_test(NAME SOURCES ... LIBS ...): one cmocka executable per
# module, registered with CTest under the "unit" label.
pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)

function(hp_add_unit_test name)
	cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
	add_executable(${name} ${T_SOURCES})
	target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA hp_warnings)
	target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
	add_test(NAME ${name} COMMAND ${name})
	set_tests_properties(${name} PROPERTIES LABELS unit
		ENVIRONMENT "HP_TESTDATA=${PROJECT_SOURCE_DIR}/testdata;HP_BUILD=${PROJECT_BINARY_DIR}")
endfunction()

# hp_add_e2e_test(NAME SCRIPT [LABEL l]): a shell scenario patching real
# processes. Exit 77 means skipped (no ptrace); CI treats skips as failures.
function(hp_add_shell_test name script label)
	add_test(NAME ${name} COMMAND bash ${script})
	set_tests_properties(${name} PROPERTIES LABELS ${label}
		SKIP_RETURN_CODE 77 TIMEOUT 300
		ENVIRONMENT "HP_SRC=${PROJECT_SOURCE_DIR};HP_BUILD=${PROJECT_BINARY_DIR};HP_TESTDATA=${PROJECT_SOURCE_DIR}/testdata")
endfunction()
