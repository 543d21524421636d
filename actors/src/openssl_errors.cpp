// SPDX-License-Identifier: Apache-2.0
// Clears OpenSSL's per-thread error queue before each TLS read, write and handshake step of
// CAF's middleman (docs/architecture.md "TLS error queue").
//
// CAF 0.17.6's OpenSSL sessions (libcaf_openssl, session.cpp) call SSL_get_error after a
// failed SSL_read or SSL_write without clearing the queue first, and drain it only inside
// CAF_LOG_INFO, which Debian's build compiles out. The error one connection's end leaves there
// (a peer killed mid-stream: unexpected EOF) stays, and the next would-block read of any other
// connection on the same thread then reads as SSL_ERROR_SSL: CAF closes a healthy link. A
// router node dying closed every other router node's links to the mirrors that way, and the
// other way round. OpenSSL requires an empty queue before each I/O call (SSL_get_error(3));
// these definitions interpose on libssl's (the executable's come first in the lookup order of
// libcaf_openssl's calls) and clear it, then call libssl's.
#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace {

template <class F>
F next_definition(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" {

int SSL_read(SSL* ssl, void* buf, int num) {
  static const auto real = next_definition<int (*)(SSL*, void*, int)>("SSL_read");
  ERR_clear_error();
  return real(ssl, buf, num);
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  static const auto real = next_definition<int (*)(SSL*, const void*, int)>("SSL_write");
  ERR_clear_error();
  return real(ssl, buf, num);
}

int SSL_connect(SSL* ssl) {
  static const auto real = next_definition<int (*)(SSL*)>("SSL_connect");
  ERR_clear_error();
  return real(ssl);
}

int SSL_accept(SSL* ssl) {
  static const auto real = next_definition<int (*)(SSL*)>("SSL_accept");
  ERR_clear_error();
  return real(ssl);
}

}  // extern "C"

namespace cowpi::actors {

/// Referenced by `provider_node::start` so that the linker keeps this file's definitions in
/// every program that runs a provider node.
bool openssl_error_queue_guard() noexcept;
bool openssl_error_queue_guard() noexcept {
  return true;
}

}  // namespace cowpi::actors
