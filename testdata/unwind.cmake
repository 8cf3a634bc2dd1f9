# C++ live target for the unwinding tests (tests/e2e/unwind.sh,
# docs/UNWIND.md): unwind-v1 and unwind-v2 from one source, -DV=1 / -DV=2,
# with the flavour's flags (C++ ones from dpkg-buildflags for "debian").
enable_language(CXX)
if(HP_FLAVOUR STREQUAL "debian")
	execute_process(COMMAND bash -c
		". '${CMAKE_CURRENT_SOURCE_DIR}/../scripts/debian-source.bash' && hp_debian_flags CXXFLAGS"
		WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}
		OUTPUT_VARIABLE HP_DEB_CXXFLAGS OUTPUT_STRIP_TRAILING_WHITESPACE
		COMMAND_ERROR_IS_FATAL ANY)
	# As for C (hp_debian_flags): what trixie's dpkg adds on amd64.
	set(HP_UNWIND_CXXFLAGS ${HP_DEB_CXXFLAGS} ${HP_DEB_CPPFLAGS}
		-fstack-clash-protection -fcf-protection)
	separate_arguments(HP_UNWIND_CXXFLAGS UNIX_COMMAND "${HP_UNWIND_CXXFLAGS}")
else()
	set(HP_UNWIND_CXXFLAGS -O2 -g -ffunction-sections -fdata-sections)
endif()
foreach(v 1 2)
	add_library(unwind-v${v}.objs OBJECT targets/unwind/unwind.cpp)
	# Only these flags: the C ones (CMAKE_C_FLAGS) are C's.
	set_target_properties(unwind-v${v}.objs PROPERTIES COMPILE_OPTIONS "")
	target_compile_options(unwind-v${v}.objs PRIVATE ${HP_UNWIND_CXXFLAGS})
	target_compile_definitions(unwind-v${v}.objs PRIVATE V=${v})
	add_executable(unwind-v${v} $<TARGET_OBJECTS:unwind-v${v}.objs>)
	target_link_libraries(unwind-v${v} PRIVATE pthread)
	target_link_options(unwind-v${v} PRIVATE -Wl,--build-id)
endforeach()
