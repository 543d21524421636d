// SPDX-License-Identifier: Apache-2.0
// cowpi-provider: the provider daemon (daemon.cpp), with no hooks.
#include "daemon.hpp"

int main(int argc, char** argv) {
  return cowpi::tools::run_provider(argc, argv, {});
}
