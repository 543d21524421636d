// SPDX-License-Identifier: Apache-2.0
// Child processes and pid files for cowpi-local.
#include "process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <thread>

namespace cowpi::local {

namespace fs = std::filesystem;

run_result run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  run_result r;
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0)
    return r;
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return r;
  }
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    for (int fd : {out[0], out[1], err[0], err[1]})
      ::close(fd);
    return r;
  }
  if (pid == 0) {
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0)
      ::dup2(devnull, STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    ::execv(args[0], args.data());
    std::_Exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool out_open = true;
  bool err_open = true;
  bool timed_out = false;
  while (out_open || err_open) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd fds[2] = {{out_open ? out[0] : -1, POLLIN, 0}, {err_open ? err[0] : -1, POLLIN, 0}};
    const int n = ::poll(fds, 2, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      break;
    char buf[4096];
    if (out_open && fds[0].revents != 0) {
      const ssize_t k = ::read(out[0], buf, sizeof buf);
      if (k <= 0)
        out_open = false;
      else
        r.out.append(buf, static_cast<size_t>(k));
    }
    if (err_open && fds[1].revents != 0) {
      const ssize_t k = ::read(err[0], buf, sizeof buf);
      if (k <= 0)
        err_open = false;
      else
        r.err.append(buf, static_cast<size_t>(k));
    }
  }
  ::close(out[0]);
  ::close(err[0]);
  if (timed_out)
    ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out)
    r.code = 124;
  else
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  return r;
}

fs::path self_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path() : exe.parent_path();
}

std::vector<std::pair<std::string, pid_t>> read_pids(const fs::path& file) {
  std::vector<std::pair<std::string, pid_t>> out;
  std::ifstream in(file);
  std::string name;
  long pid = 0;
  while (in >> name >> pid)
    if (pid > 0)
      out.emplace_back(name, static_cast<pid_t>(pid));
  return out;
}

bool write_pids(const fs::path& file, const std::vector<std::pair<std::string, pid_t>>& pids) {
  std::ofstream o(file, std::ios::trunc);
  for (const auto& [name, pid] : pids)
    o << name << " " << pid << "\n";
  return o.good();
}

bool provider_alive(pid_t pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0)
    return false;
  // A pid can be reused: it must still be a cowpi-provider, and not a zombie nobody reaped.
  std::ifstream cmd("/proc/" + std::to_string(pid) + "/cmdline");
  std::string argv0;
  std::getline(cmd, argv0, '\0');
  if (argv0.find("cowpi-provider") == std::string::npos)
    return false;
  std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(st, stat);
  const auto close_paren = stat.rfind(')');
  return close_paren == std::string::npos || close_paren + 2 >= stat.size()
         || stat[close_paren + 2] != 'Z';
}

std::string stop(pid_t pid, std::chrono::milliseconds grace) {
  if (!provider_alive(pid))
    return "not running";
  ::kill(pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    (void)::waitpid(pid, nullptr, WNOHANG);  // our own child when `demo` started it
    if (!provider_alive(pid))
      return "stopped";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid, SIGKILL);
  (void)::waitpid(pid, nullptr, 0);
  return "killed";
}

}  // namespace cowpi::local
