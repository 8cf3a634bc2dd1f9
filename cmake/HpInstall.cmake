# The install layout (`cmake --install`, and debian/ through it), GNU
# directories throughout:
#   sbin/hpatch (and hpatchd)      the host's administrators' tools
#   bin/hpdiff, bin/hpsign         the release engineer's and key custodian's
#   HP_TRUST_DIR (empty, 0755)     trusted public keys, /etc/hpatch/trusted.d
#   share/man/man{1,5,8}           from man/ (man/CMakeLists.txt)
#   share/bash-completion/completions/{hpatch,hpdiff,hpsign}
#   share/hpatch/hpatch.mk         `include /usr/share/hpatch/hpatch.mk`
#   share/cmake/hpatch/            find_package(hpatch): hpatch_add_hotpatch
#   HP_SYSTEMD_UNIT_DIR            systemd/*.service, when the tree has any
include(CMakePackageConfigHelpers)

install(TARGETS hpatch DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS hpdiff hpsign DESTINATION ${CMAKE_INSTALL_BINDIR})
# The host agent, when the tree builds it (runtime/).
if(TARGET hpatchd)
	install(TARGETS hpatchd DESTINATION ${CMAKE_INSTALL_SBINDIR})
endif()

# An absolute path, like the audit log's and the state directory's: the
# trust store is the host's, whatever prefix the tools are installed to
# (DESTDIR still applies). The directory is created empty: keys are the
# administrator's to add. Its parent is made 0755 too, whatever the umask:
# a 0700 /etc/hpatch would hide the keys' directory from `ls` and audits.
get_filename_component(HP_TRUST_PARENT ${HP_TRUST_DIR} DIRECTORY)
foreach(dir ${HP_TRUST_PARENT} ${HP_TRUST_DIR})
	install(DIRECTORY DESTINATION ${dir}
		DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE
			GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
endforeach()

# bash-completion loads completions/<command> on first use: one copy per
# command, all the same script (it reads each tool's --help).
foreach(tool hpatch hpdiff hpsign)
	install(FILES ${PROJECT_SOURCE_DIR}/completion/hpatch.bash
		DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
		RENAME ${tool})
endforeach()
if(TARGET hpatchd)
	install(FILES ${PROJECT_SOURCE_DIR}/completion/hpatch.bash
		DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
		RENAME hpatchd)
endif()

# Build-side integration: make and CMake.
install(FILES ${PROJECT_SOURCE_DIR}/hpatch.mk
	DESTINATION ${CMAKE_INSTALL_DATADIR}/hpatch)
set(HP_CMAKE_DIR ${CMAKE_INSTALL_DATADIR}/cmake/hpatch)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/hpatchConfig.cmake.in
	${PROJECT_BINARY_DIR}/hpatchConfig.cmake
	INSTALL_DESTINATION ${HP_CMAKE_DIR}
	PATH_VARS CMAKE_INSTALL_BINDIR)
# No libraries, only a tool and a function: any architecture will do.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/hpatchConfigVersion.cmake
	COMPATIBILITY SameMajorVersion ARCH_INDEPENDENT)
install(FILES ${PROJECT_BINARY_DIR}/hpatchConfig.cmake
	${PROJECT_BINARY_DIR}/hpatchConfigVersion.cmake
	${PROJECT_SOURCE_DIR}/cmake/Hotpatch.cmake
	DESTINATION ${HP_CMAKE_DIR})

# systemd units: installed when the tree has them (systemd/hpatchd.service
# comes with the host agent). The directory is systemd's own, from its
# pkg-config file when present; Debian's rules pass /lib/systemd/system.
file(GLOB HP_SYSTEMD_UNITS CONFIGURE_DEPENDS
	${PROJECT_SOURCE_DIR}/systemd/*.service
	${PROJECT_SOURCE_DIR}/systemd/*.socket
	${PROJECT_SOURCE_DIR}/systemd/*.timer)
if(HP_SYSTEMD_UNITS)
	if(NOT HP_SYSTEMD_UNIT_DIR)
		pkg_get_variable(HP_SYSTEMD_PC_DIR systemd systemdsystemunitdir)
		if(HP_SYSTEMD_PC_DIR)
			set(HP_SYSTEMD_UNIT_DIR ${HP_SYSTEMD_PC_DIR})
		else()
			set(HP_SYSTEMD_UNIT_DIR ${CMAKE_INSTALL_PREFIX}/lib/systemd/system)
		endif()
	endif()
	install(FILES ${HP_SYSTEMD_UNITS} DESTINATION ${HP_SYSTEMD_UNIT_DIR})
endif()

# hpatch-deb (the Debian source packages' front end) and its ELF helper,
# which is no user's command: libexec/hpatch/, where the script looks for
# it (/usr/lib/hpatch would be lintian's executable-in-usr-lib).
install(PROGRAMS ${PROJECT_SOURCE_DIR}/scripts/hpatch-deb
	DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS hpdeb-elf DESTINATION libexec/hpatch)
