// SPDX-License-Identifier: Apache-2.0
// TLS material for the router<->mirror links: a CA per provider and a node certificate
// signed by it (EC P-256), written as PEM files with OpenSSL's library.
#pragma once

#include "cowpi/protocol/expected.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace cowpi::tools {

/// The TLS files of one provider.
struct tls_files {
  std::filesystem::path ca_cert;    // this provider's CA (others trust it)
  std::filesystem::path node_cert;  // signed by the CA
  std::filesystem::path node_key;   // mode 0600
};

/// Creates `dir/<name>-ca.pem`, `dir/<name>.pem` and `dir/<name>.key` (the CA key is used once
/// and discarded). Fails with `errc::storage` on I/O errors and `errc::internal` if OpenSSL
/// fails.
[[nodiscard]] expected<tls_files> make_provider_tls(const std::filesystem::path& dir,
                                                    const std::string& name, int valid_days = 3650);

/// Writes the concatenation of `cas` (PEM CA certificates) to `out`: the trust file of a node
/// that talks to the providers owning them.
[[nodiscard]] expected<void> write_trust_file(const std::filesystem::path& out,
                                              const std::vector<std::filesystem::path>& cas);

}  // namespace cowpi::tools
