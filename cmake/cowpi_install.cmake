# SPDX-License-Identifier: Apache-2.0
# cowpi_install: what `cmake --install` puts where, in three components:
#   provider  cowpi-provider, cowpi-admin, cowpi-local, the systemd unit, /etc/cowpi examples and
#             the operator docs (the cowpi-provider .deb, cmake/cowpi_packaging.cmake)
#   client    the client CLI cowpi (the cowpi .deb)
#   devel     the client library for find_package(cowpi): cowpi::client, its static archives, the
#             headers its API includes and the CMake package files (no .deb)
# Tests and benchmarks are never installed. docs/install.md describes the result.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(COWPI_CMAKE_INSTALL_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/cowpi")

install(TARGETS cowpi-provider cowpi-admin cowpi-local
        RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT provider)
install(TARGETS cowpi RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT client)

# The unit and /etc/cowpi. /etc is outside the prefix: like GNUInstallDirs'
# CMAKE_INSTALL_FULL_SYSCONFDIR, it is /etc when installing into /usr (the packages) and PREFIX/etc
# otherwise, decided when installing (`cmake --install --prefix`), not when configuring.
install(CODE "set(COWPI_SOURCE_DIR \"${PROJECT_SOURCE_DIR}\")
set(COWPI_BINARY_DIR \"${PROJECT_BINARY_DIR}\")
set(COWPI_INSTALL_BINDIR \"${CMAKE_INSTALL_BINDIR}\")" COMPONENT provider)
install(SCRIPT "${PROJECT_SOURCE_DIR}/cmake/cowpi_install_system.cmake" COMPONENT provider)

# Operator documentation, with the commented examples of a whole deployment.
set(COWPI_PROVIDER_DOC_DIR "${CMAKE_INSTALL_DATAROOTDIR}/doc/cowpi-provider")
install(FILES docs/install.md docs/configuration.md docs/admin.md docs/cli.md
        DESTINATION "${COWPI_PROVIDER_DOC_DIR}" COMPONENT provider)
install(FILES config/examples/router.toml config/examples/mirror-a.toml
              config/examples/mirror-b.toml config/examples/deployment.toml
        DESTINATION "${COWPI_PROVIDER_DOC_DIR}/examples" COMPONENT provider)
install(FILES docs/cli.md DESTINATION "${CMAKE_INSTALL_DATAROOTDIR}/doc/cowpi" COMPONENT client)

# The client library. cowpi::client is the client runtime (actors/) with the deployment file
# (config/); its static archives link CAF, RocksDB, Cap'n Proto, libsodium, spdlog and toml++,
# which cowpiConfig.cmake finds again for the consumer.
add_library(cowpi_client INTERFACE)
add_library(cowpi::client ALIAS cowpi_client)
target_link_libraries(cowpi_client INTERFACE cowpi_actors cowpi_config)
set(COWPI_EXPORTED_LIBRARIES
  cowpi_protocol cowpi_wire_schema cowpi_storage cowpi_storage_schema cowpi_config cowpi_actors)
foreach(lib IN LISTS COWPI_EXPORTED_LIBRARIES)
  string(REPLACE "cowpi_" "" name "${lib}")
  set_target_properties(${lib} PROPERTIES EXPORT_NAME "${name}")
endforeach()
set_target_properties(cowpi_client PROPERTIES EXPORT_NAME client)
install(TARGETS cowpi_client ${COWPI_EXPORTED_LIBRARIES}
        EXPORT cowpiTargets
        ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT devel
        FILE_SET HEADERS DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}" COMPONENT devel)
install(EXPORT cowpiTargets NAMESPACE cowpi:: DESTINATION "${COWPI_CMAKE_INSTALL_DIR}"
        COMPONENT devel)
configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/cowpiConfig.cmake.in"
                              "${PROJECT_BINARY_DIR}/cowpiConfig.cmake"
                              INSTALL_DESTINATION "${COWPI_CMAKE_INSTALL_DIR}")
# 0.x: a minor release may change the API.
write_basic_package_version_file("${PROJECT_BINARY_DIR}/cowpiConfigVersion.cmake"
                                 COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/cowpiConfig.cmake" "${PROJECT_BINARY_DIR}/cowpiConfigVersion.cmake"
              "${PROJECT_SOURCE_DIR}/cmake/FindCAF.cmake"
        DESTINATION "${COWPI_CMAKE_INSTALL_DIR}" COMPONENT devel)
