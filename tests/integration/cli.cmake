# SPDX-License-Identifier: Apache-2.0
# The user-facing client tools driven as a user would: the real `cowpi` binary (subcommands with
# --json, `chat` through a pseudo-terminal, --proxy through a test SOCKS5 proxy) against real
# cowpi-provider processes, and `cowpi-local demo` end to end. Included by tests/CMakeLists.txt.
cowpi_test(cowpi_integration_cli LABEL integration SERIAL TIMEOUT 600 SOURCES
  integration/cli_test.cpp
  LIBS cowpi_integration_support cowpi_client_test_support util)
add_dependencies(cowpi_integration_cli cowpi cowpi-local cowpi-provider)
target_compile_definitions(cowpi_integration_cli PRIVATE
  COWPI_CLI_BINARY="$<TARGET_FILE:cowpi>"
  COWPI_LOCAL_BINARY="$<TARGET_FILE:cowpi-local>")
# The tests run child processes with the launcher's helper (tools/local/process.cpp).
target_sources(cowpi_integration_cli PRIVATE "${PROJECT_SOURCE_DIR}/tools/local/process.cpp")
target_include_directories(cowpi_integration_cli PRIVATE "${PROJECT_SOURCE_DIR}/tools/local")
