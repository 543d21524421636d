# SPDX-License-Identifier: Apache-2.0
# Runs at install time (component provider): the systemd unit and the /etc/cowpi examples, with
# paths decided from the install prefix then. Installing into /usr (the .deb, CPack with
# CPACK_SET_DESTDIR) gives /etc/cowpi and /usr/lib/systemd/system; any other prefix P gives
# P/etc/cowpi and P/lib/systemd/system, so `cmake --install --prefix DIR` never writes outside DIR.
# Set by cowpi_install.cmake: COWPI_SOURCE_DIR, COWPI_BINARY_DIR, COWPI_INSTALL_BINDIR.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(COWPI_SYSCONFDIR "/etc/cowpi")
else()
  set(COWPI_SYSCONFDIR "${CMAKE_INSTALL_PREFIX}/etc/cowpi")
endif()
set(COWPI_BINDIR "${CMAKE_INSTALL_PREFIX}/${COWPI_INSTALL_BINDIR}")

set(unit "${COWPI_BINARY_DIR}/packaging/cowpi-provider@.service")
configure_file("${COWPI_SOURCE_DIR}/packaging/systemd/cowpi-provider@.service.in" "${unit}" @ONLY)
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system" TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ FILES "${unit}")

# Examples only, never a working config: a provider needs its deployment's keys and peers.
file(INSTALL DESTINATION "${COWPI_SYSCONFDIR}" TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES "${COWPI_SOURCE_DIR}/packaging/etc/router.toml.example"
           "${COWPI_SOURCE_DIR}/packaging/etc/mirror.toml.example")
