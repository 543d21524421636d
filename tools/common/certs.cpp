// SPDX-License-Identifier: Apache-2.0
// Certificate generation with OpenSSL 3 (EVP_EC_gen, X509 builders).
#include "certs.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>

namespace cowpi::tools {

namespace {

template <class T, void (*F)(T*)>
struct deleter {
  void operator()(T* p) const { F(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, deleter<EVP_PKEY, EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, deleter<X509, X509_free>>;

pkey_ptr new_key() {
  return pkey_ptr(EVP_EC_gen("P-256"));
}

bool add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr)
    return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

x509_ptr make_cert(EVP_PKEY* key, const std::string& cn, X509* issuer, EVP_PKEY* issuer_key,
                   bool ca, long serial, int days) {
  x509_ptr cert(X509_new());
  if (!cert)
    return nullptr;
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("cowpi"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509* iss = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(iss));
  bool ok = true;
  if (ca) {
    ok = ok && add_ext(cert.get(), iss, NID_basic_constraints, "critical,CA:TRUE");
    ok = ok && add_ext(cert.get(), iss, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    ok = ok && add_ext(cert.get(), iss, NID_basic_constraints, "critical,CA:FALSE");
    ok = ok && add_ext(cert.get(), iss, NID_key_usage, "critical,digitalSignature");
    ok = ok && add_ext(cert.get(), iss, NID_ext_key_usage, "serverAuth,clientAuth");
  }
  ok = ok && add_ext(cert.get(), iss, NID_subject_key_identifier, "hash");
  if (!ok)
    return nullptr;
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0)
    return nullptr;
  return cert;
}

expected<void> write_pem(const std::filesystem::path& p, bool secret,
                         const std::function<int(FILE*)>& w) {
  const std::string where = p.string();
  FILE* f = std::fopen(where.c_str(), "wb");
  if (f == nullptr)
    return fail(errc::storage, "cannot write " + where);
  if (secret)
    ::fchmod(fileno(f), 0600);
  const int ok = w(f);
  std::fclose(f);
  if (ok != 1)
    return fail(errc::internal, "OpenSSL could not write " + where);
  return {};
}

}  // namespace

expected<tls_files> make_provider_tls(const std::filesystem::path& dir, const std::string& name,
                                      int valid_days) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return fail(errc::storage, dir.string() + ": " + ec.message());
  auto ca_key = new_key();
  auto node_key = new_key();
  if (!ca_key || !node_key)
    return fail(errc::internal, "OpenSSL could not make an EC key");
  auto ca = make_cert(ca_key.get(), name + " CA", nullptr, ca_key.get(), true, 1, valid_days);
  if (!ca)
    return fail(errc::internal, "OpenSSL could not make the CA certificate");
  auto node = make_cert(node_key.get(), name, ca.get(), ca_key.get(), false, 2, valid_days);
  if (!node)
    return fail(errc::internal, "OpenSSL could not make the node certificate");
  tls_files out{dir / (name + "-ca.pem"), dir / (name + ".pem"), dir / (name + ".key")};
  COWPI_TRY_VOID(
      write_pem(out.ca_cert, false, [&](FILE* f) { return PEM_write_X509(f, ca.get()); }));
  COWPI_TRY_VOID(
      write_pem(out.node_cert, false, [&](FILE* f) { return PEM_write_X509(f, node.get()); }));
  COWPI_TRY_VOID(write_pem(out.node_key, true, [&](FILE* f) {
    return PEM_write_PrivateKey(f, node_key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  }));
  return out;
}

expected<void> write_trust_file(const std::filesystem::path& out,
                                const std::vector<std::filesystem::path>& cas) {
  std::ostringstream all;
  for (const auto& c : cas) {
    std::ifstream in(c);
    if (!in)
      return fail(errc::storage, "cannot read " + c.string());
    all << in.rdbuf();
  }
  std::ofstream o(out, std::ios::trunc);
  if (!o)
    return fail(errc::storage, "cannot write " + out.string());
  o << all.str();
  return o.good() ? expected<void>{} : fail(errc::storage, "cannot write " + out.string());
}

}  // namespace cowpi::tools
