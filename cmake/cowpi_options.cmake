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

# cowpi_instrumentation: the sanitizer and fuzzer flags alone, without warnings, so that code we
# do not own (the generated Cap'n Proto code) is instrumented like ours; cowpi_options has it.
add_library(cowpi_instrumentation INTERFACE)
if(COWPI_SANITIZERS)
  target_compile_options(cowpi_instrumentation INTERFACE
    -fsanitize=${COWPI_SANITIZERS} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(cowpi_instrumentation INTERFACE -fsanitize=${COWPI_SANITIZERS})
  # GCC 12 reports false maybe-uninitialized warnings inside libstdc++ (std::regex, std::function)
  # once the sanitizers change inlining; they are not in our code, so -Werror must not see them.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(cowpi_instrumentation INTERFACE -Wno-maybe-uninitialized)
  endif()
endif()
if(COWPI_FUZZ)
  # libFuzzer: every library gets coverage instrumentation (fuzzer-no-link) plus ASan and UBSan;
  # only the fuzz targets link the libFuzzer runtime (-fsanitize=fuzzer, tests/fuzz/).
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "COWPI_FUZZ needs clang (libFuzzer); set CC=clang-14 CXX=clang++-14")
  endif()
  target_compile_options(cowpi_instrumentation INTERFACE
    -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
    -fno-sanitize-recover=all)
  target_link_options(cowpi_instrumentation INTERFACE -fsanitize=address,undefined)
endif()
target_link_libraries(cowpi_options INTERFACE cowpi_instrumentation)
if(COWPI_CLANG_TIDY)
  find_program(CLANG_TIDY_EXE NAMES clang-tidy-14 clang-tidy REQUIRED)
  set(CMAKE_CXX_CLANG_TIDY "${CLANG_TIDY_EXE}")
endif()

add_library(cowpi_strict INTERFACE)
target_compile_options(cowpi_strict INTERFACE -Wconversion -Wsign-conversion)
