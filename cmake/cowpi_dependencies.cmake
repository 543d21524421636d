# SPDX-License-Identifier: Apache-2.0
# Finds every third-party dependency the way each Debian 12 package supports.
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)

# libsodium ships only a pkg-config file.
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium>=1.0.18)

find_package(CapnProto 0.9 CONFIG REQUIRED)
find_package(RocksDB 7 CONFIG REQUIRED)
find_package(tomlplusplus 3 CONFIG REQUIRED)
find_package(CLI11 2 CONFIG REQUIRED)
find_package(spdlog 1.10 CONFIG REQUIRED)
find_package(nlohmann_json 3 CONFIG REQUIRED)

if(COWPI_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
if(COWPI_BUILD_BENCH)
  find_package(benchmark CONFIG REQUIRED)
endif()

# CAF 0.17.6: Debian ships neither a CMake config nor a .pc file (cmake/FindCAF.cmake).
if(COWPI_WITH_ACTORS)
  find_package(CAF 0.17 MODULE REQUIRED)
  # cpp-httplib 0.11 (libcpp-httplib-dev): the provider's Prometheus scrape endpoint. A
  # compiled library; its pkg-config Cflags carry the feature defines its ABI was built with.
  pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib>=0.11)
endif()
