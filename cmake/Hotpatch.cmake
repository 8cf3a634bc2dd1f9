# hpatch_add_hotpatch(NAME OLD dir NEW dir BINARY file OUTPUT file
#                     [KEY file] [HPDIFF path] [FLAGS ...])
# A custom target NAME that runs hpdiff on two object trees and writes a
# (signed, with KEY) .hpatch; the CMake twin of hpatch.mk. FLAGS may add
# modules: FLAGS --and --old LIBOLD --new LIBNEW --binary LIB.
# hpdiff is HPDIFF if given, else the one find_package(hpatch) found
# (hpatch::hpdiff), else the one on PATH.
function(hpatch_add_hotpatch name)
	cmake_parse_arguments(H "" "OLD;NEW;BINARY;OUTPUT;KEY;HPDIFF" "FLAGS" ${ARGN})
	foreach(req OLD NEW BINARY OUTPUT)
		if(NOT H_${req})
			message(FATAL_ERROR "hpatch_add_hotpatch(${name}): ${req} is required")
		endif()
	endforeach()
	if(NOT H_HPDIFF AND TARGET hpatch::hpdiff)
		set(H_HPDIFF $<TARGET_FILE:hpatch::hpdiff>)
	elseif(NOT H_HPDIFF)
		set(H_HPDIFF hpdiff)
	endif()
	set(key_args)
	if(H_KEY)
		set(key_args --key ${H_KEY})
	endif()
	add_custom_target(${name}
		COMMAND ${H_HPDIFF} --old ${H_OLD} --new ${H_NEW} --binary ${H_BINARY}
			${key_args} -o ${H_OUTPUT} ${H_FLAGS}
		COMMENT "hpdiff: ${H_OUTPUT}"
		VERBATIM)
endfunction()
