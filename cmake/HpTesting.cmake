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
		ENVIRONMENT "HP_TESTDATA=${PROJECT_SOURCE_DIR}/testdata;HP_BUILD=${PROJECT_BINARY_DIR};HP_TD=${PROJECT_BINARY_DIR}/testdata;HP_FLAVOUR=sections")
	# The differ's tests read testdata's objects: both flavours.
	if(name STREQUAL "test_differ")
		add_test(NAME ${name}_debian COMMAND ${name})
		set_tests_properties(${name}_debian PROPERTIES LABELS unit
			ENVIRONMENT "HP_TESTDATA=${PROJECT_SOURCE_DIR}/testdata;HP_BUILD=${PROJECT_BINARY_DIR};HP_TD=${PROJECT_BINARY_DIR}/testdata-debian;HP_FLAVOUR=debian")
	endif()
endfunction()

# hp_add_shell_test(NAME SCRIPT LABEL): a shell scenario (cli, or e2e
# patching real processes), once per testdata flavour: NAME against the
# objects built with function sections, NAME_debian against those built
# with Debian's flags (HP_TD names the built testdata, HP_FLAVOUR which).
# Exit 77 means skipped (no ptrace); CI treats skips as failures.
# A script that reads no testdata (the packages, the man pages) runs once:
# add ONE_FLAVOUR, or list it in HP_ONE_FLAVOUR_TESTS.
set(HP_ONE_FLAVOUR_TESTS cli_hpsign cli_man_options cli_completion
	cli_ansible_sanity cli_systemd_unit cli_agent_policy_doc
	e2e_debian_package)
function(hp_add_shell_test name script label)
	set(flavours sections debian)
	if("ONE_FLAVOUR" IN_LIST ARGN OR name IN_LIST HP_ONE_FLAVOUR_TESTS)
		set(flavours sections)
	endif()
	foreach(flavour ${flavours})
		set(n ${name})
		set(td ${PROJECT_BINARY_DIR}/testdata)
		if(flavour STREQUAL "debian")
			set(n ${name}_debian)
			set(td ${PROJECT_BINARY_DIR}/testdata-debian)
		endif()
		add_test(NAME ${n} COMMAND bash ${script})
		set_tests_properties(${n} PROPERTIES LABELS ${label}
			SKIP_RETURN_CODE 77 TIMEOUT 300
			ENVIRONMENT "HP_SRC=${PROJECT_SOURCE_DIR};HP_BUILD=${PROJECT_BINARY_DIR};HP_TESTDATA=${PROJECT_SOURCE_DIR}/testdata;HP_TD=${td};HP_FLAVOUR=${flavour}")
	endforeach()
endfunction()
