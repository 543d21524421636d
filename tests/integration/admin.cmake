# SPDX-License-Identifier: Apache-2.0
# cowpi-admin against a real local deployment (router + 2 mirrors as processes): stored-data
# commands, live state over the admin socket, and the router->mirror audit, honest and with one
# mirror's D_i corrupted on disk. Included from tests/CMakeLists.txt.
cowpi_test(cowpi_integration_admin LABEL integration SERIAL TIMEOUT 600 SOURCES
  integration/admin_test.cpp
  LIBS cowpi_integration_support cowpi::storage cowpi::config)
add_dependencies(cowpi_integration_admin cowpi-admin cowpi-provider)
