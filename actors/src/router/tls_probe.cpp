// SPDX-License-Identifier: Apache-2.0
// One diagnostic TLS handshake with OpenSSL, non-blocking and polled against a deadline.
#include "tls_probe.hpp"

#include "../client/tcp_connect.hpp"
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <ctime>
#include <memory>

namespace cowpi::actors {

namespace {

using clock = std::chrono::steady_clock;

struct ctx_deleter {
  void operator()(SSL_CTX* p) const noexcept { SSL_CTX_free(p); }
};
struct ssl_deleter {
  void operator()(SSL* p) const noexcept { SSL_free(p); }
};

// OpenSSL's reasons queued on this thread, oldest first, "; "-separated; clears the queue.
std::string drain_errors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    const char* r = ERR_reason_error_string(e);
    if (!out.empty())
      out += "; ";
    out += r != nullptr ? r : "unknown OpenSSL error";
  }
  return out;
}

// Blocks SIGPIPE on this thread for its lifetime (OpenSSL writes with write(2)); a SIGPIPE
// raised meanwhile is consumed before the old mask comes back, as CAF's TLS code does.
class sigpipe_block {
public:
  sigpipe_block() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &saved_);
  }
  ~sigpipe_block() {
    const timespec zero{};
    (void)sigtimedwait(&pipe_, nullptr, &zero);
    pthread_sigmask(SIG_SETMASK, &saved_, nullptr);
  }
  sigpipe_block(const sigpipe_block&) = delete;
  sigpipe_block& operator=(const sigpipe_block&) = delete;
  sigpipe_block(sigpipe_block&&) = delete;
  sigpipe_block& operator=(sigpipe_block&&) = delete;

private:
  sigset_t pipe_{};
  sigset_t saved_{};
};

// Waits until `fd` is ready for what `ssl_error` (WANT_READ or WANT_WRITE) asks, or until
// `deadline`. Returns false on timeout.
bool wait_for(int fd, int ssl_error, clock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0)
      return false;
    pollfd p{fd, static_cast<short>(ssl_error == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0};
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n > 0)
      return true;
    if (n == 0)
      return false;
    if (errno != EINTR)
      return true;  // let the next SSL call report the socket's error
  }
}

tls_probe_result result(tls_probe_outcome o, std::string detail) {
  ERR_clear_error();
  return tls_probe_result{o, std::move(detail)};
}

// A TLS alert from the mirror: with our certificate loaded and its certificate trusted, the
// usual cause is that the mirror does not trust the CA that signed ours.
tls_probe_result refused(const std::string& errs) {
  return result(tls_probe_outcome::refused_by_peer,
                "the mirror refused the TLS handshake (" + errs
                    + "): its tls.ca must hold the CA that signed this router's tls.certificate");
}

std::unique_ptr<SSL_CTX, ctx_deleter> make_context(const config::tls_config& tls,
                                                   std::string& why) {
  std::unique_ptr<SSL_CTX, ctx_deleter> ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) {
    why = "cannot create an OpenSSL context: " + drain_errors();
    return nullptr;
  }
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), tls.certificate.c_str()) != 1) {
    why = "cannot load tls.certificate " + tls.certificate.string() + ": " + drain_errors();
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), tls.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    why = "cannot load tls.key " + tls.key.string() + ": " + drain_errors();
    return nullptr;
  }
  if (SSL_CTX_load_verify_locations(ctx.get(), tls.ca.c_str(), nullptr) != 1) {
    why = "cannot load tls.ca " + tls.ca.string() + ": " + drain_errors();
    return nullptr;
  }
  // As CAF does with any openssl option set: the peer must present a certificate from the CA.
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  return ctx;
}

}  // namespace

tls_probe_result probe_tls(const std::string& host, uint16_t port, const config::tls_config& tls,
                           std::chrono::milliseconds timeout) {
  const sigpipe_block no_sigpipe;
  const auto deadline = clock::now() + timeout;
  ERR_clear_error();
  std::string why;
  auto ctx = make_context(tls, why);
  if (!ctx)
    return result(tls_probe_outcome::failed, why);
  const std::atomic<bool> never{false};
  auto sock = client_impl::tcp_connect(host, port, timeout, never, "the mirror");
  if (!sock)
    return result(tls_probe_outcome::failed, sock.error().context);
  std::unique_ptr<SSL, ssl_deleter> ssl(SSL_new(ctx.get()));
  if (!ssl || SSL_set_fd(ssl.get(), sock->get()) != 1)
    return result(tls_probe_outcome::failed, "cannot set up a TLS session: " + drain_errors());

  for (;;) {
    const int r = SSL_connect(ssl.get());
    if (r == 1)
      break;
    const int e = SSL_get_error(ssl.get(), r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      if (!wait_for(sock->get(), e, deadline))
        return result(tls_probe_outcome::failed,
                      "no TLS handshake within " + std::to_string(timeout.count()) + " ms");
      continue;
    }
    const long verify = SSL_get_verify_result(ssl.get());
    if (verify != X509_V_OK) {
      return result(tls_probe_outcome::peer_not_trusted,
                    std::string("the mirror's certificate is not signed by a CA in this "
                                "router's tls.ca (")
                        + X509_verify_cert_error_string(verify) + ")");
    }
    const std::string errs = drain_errors();
    if (e == SSL_ERROR_SSL && !errs.empty())
      return refused(errs);
    return result(tls_probe_outcome::failed,
                  "the mirror closed the connection during the TLS handshake");
  }

  // Under TLS 1.3 the server checks our certificate after our last handshake message: its
  // refusal arrives as an alert on the first read. A mirror that accepted us sends its BASP
  // handshake, or nothing before the deadline.
  for (;;) {
    unsigned char byte = 0;
    const int r = SSL_read(ssl.get(), &byte, 1);
    if (r > 0)
      return result(tls_probe_outcome::accepted, "the TLS handshake succeeds");
    const int e = SSL_get_error(ssl.get(), r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      if (!wait_for(sock->get(), e, deadline))
        return result(tls_probe_outcome::accepted, "the TLS handshake succeeds");
      continue;
    }
    const std::string errs = drain_errors();
    if (e == SSL_ERROR_SSL && !errs.empty())
      return refused(errs);
    return result(tls_probe_outcome::failed,
                  "the mirror closed the connection right after the TLS handshake");
  }
}

}  // namespace cowpi::actors
