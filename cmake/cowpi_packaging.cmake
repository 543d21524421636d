# SPDX-License-Identifier: Apache-2.0
# cowpi_packaging: CPack's DEB generator, one package per install component
# (cmake/cowpi_install.cmake):
#   cowpi-provider  component provider: the daemon, cowpi-admin, cowpi-local, the systemd unit
#                   cowpi-provider@.service and /etc/cowpi/*.toml.example
#   cowpi           component client: the client CLI
# `cpack --config build/CPackConfig.cmake -B DIR` writes both .debs into DIR (docs/install.md).
set(COWPI_PACKAGE_MAINTAINER "cowpi maintainers <maintainers@cowpi.invalid>"
    CACHE STRING "Maintainer field of the .deb packages")
set(COWPI_PACKAGE_RELEASE "1" CACHE STRING "Debian revision of the .deb packages")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME cowpi)
set(CPACK_PACKAGE_VENDOR cowpi)
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "${COWPI_PACKAGE_MAINTAINER}")
# The install scripts see CMAKE_INSTALL_PREFIX=/usr and DESTDIR=<staging>, so /etc/cowpi lands
# in /etc (cmake/cowpi_install_system.cmake), whatever prefix the build tree was configured with.
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_DIRECTORY "${PROJECT_BINARY_DIR}/packages")
set(CPACK_COMPONENTS_ALL provider client)
set(CPACK_DEB_COMPONENT_INSTALL ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE "${COWPI_PACKAGE_RELEASE}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)
# dpkg-shlibdeps turns the binaries' DT_NEEDED into Depends (libcaf, librocksdb, libcapnp,
# libsodium, libspdlog, libssl, ...).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Descriptions: the first line is the synopsis; CPack indents the rest for the control file.

set(CPACK_DEBIAN_PROVIDER_PACKAGE_NAME cowpi-provider)
set(CPACK_DEBIAN_PROVIDER_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PROVIDER_PACKAGE_SUGGESTS "cowpi")
set(CPACK_DEBIAN_PROVIDER_DESCRIPTION
  "Mobile CoWPI provider daemon (router or mirror)
cowpi is end-to-end secure group messaging in which every participant sees
the same conversation even when a service provider lies, while staying
deniable. This package holds the provider daemon cowpi-provider (a routing
provider or a mirror, one per TOML file, run by the systemd unit
cowpi-provider@NAME), the operator tool cowpi-admin and cowpi-local, which
runs a whole deployment on one machine.")
set(CPACK_DEBIAN_PROVIDER_PACKAGE_CONTROL_EXTRA
  "${PROJECT_SOURCE_DIR}/packaging/debian/provider/conffiles"
  "${PROJECT_SOURCE_DIR}/packaging/debian/provider/postinst"
  "${PROJECT_SOURCE_DIR}/packaging/debian/provider/prerm"
  "${PROJECT_SOURCE_DIR}/packaging/debian/provider/postrm")

set(CPACK_DEBIAN_CLIENT_PACKAGE_NAME cowpi)
set(CPACK_DEBIAN_CLIENT_DESCRIPTION
  "Mobile CoWPI client command-line tool
cowpi is end-to-end secure group messaging in which every participant sees
the same conversation even when a service provider lies, while staying
deniable. This package holds the client cowpi: one user's identity and
encrypted store, conversations, messages, membership changes and an
interactive chat, through a router (optionally over SOCKS5, e.g. Tor).")

# Debian policy: each package documents its license in /usr/share/doc/PACKAGE/copyright.
install(FILES packaging/debian/copyright DESTINATION "${CMAKE_INSTALL_DATAROOTDIR}/doc/cowpi-provider"
        COMPONENT provider)
install(FILES packaging/debian/copyright DESTINATION "${CMAKE_INSTALL_DATAROOTDIR}/doc/cowpi"
        COMPONENT client)

include(CPack)
cpack_add_component(provider DISPLAY_NAME "cowpi-provider")
cpack_add_component(client DISPLAY_NAME "cowpi")
cpack_add_component(devel DISPLAY_NAME "cowpi client library" DISABLED)
