# SPDX-License-Identifier: Apache-2.0
# cowpi_options: the INTERFACE target every cowpi target links PRIVATE (C++20, warnings,
# sanitizers). cowpi_strict adds the conversion warnings protocol/ is held to.
add_library(cowpi_options INTERFACE)
target_compile_features(cowpi_options INTERFACE cxx_std_20)
set(CMAKE_CXX_EXTENSIONS OFF)
target_compile_options(cowpi_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
  -Woverloaded-virtual -Wmissing-declarations -Wimplicit-fallthrough)
if(COWPI_WERROR)
  target_compile_options(cowpi_options INTERFACE -Werror)
endif()
if(COWPI_SANITIZERS)
  target_compile_options(cowpi_options INTERFACE
    -fsanitize=${COWPI_SANITIZERS} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(cowpi_options INTERFACE -fsanitize=${COWPI_SANITIZERS})
endif()
if(COWPI_CLANG_TIDY)
  find_program(CLANG_TIDY_EXE NAMES clang-tidy-14 clang-tidy REQUIRED)
  set(CMAKE_CXX_CLANG_TIDY "${CLANG_TIDY_EXE}")
endif()

add_library(cowpi_strict INTERFACE)
target_compile_options(cowpi_strict INTERFACE -Wconversion -Wsign-conversion)
