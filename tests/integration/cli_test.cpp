// SPDX-License-Identifier: Apache-2.0
// The client tools as a user drives them: the real `cowpi` binary against real provider
// processes (subcommands with --json, errors, `chat` in a pseudo-terminal, --proxy through a
// SOCKS5 proxy) and `cowpi-local demo` end to end.
#include "process.hpp"
#include "socks5_server.hpp"
#include "support.hpp"
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <thread>

namespace cowpi::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path cli_binary = COWPI_CLI_BINARY;
const fs::path local_binary = COWPI_LOCAL_BINARY;

struct cli_run {
  int code = -1;
  std::string out;
  std::string err;
  json j;  // stdout parsed (null when it is not one JSON object)
};

cli_run run_tool(const std::vector<std::string>& argv,
                 std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  const auto r = local::run(argv, timeout);
  cli_run out{r.code, r.out, r.err, json()};
  auto j = json::parse(r.out, nullptr, false);
  if (!j.is_discarded())
    out.j = j;
  return out;
}

// `cowpi --home HOME --json ARGS...`
cli_run cowpi(const fs::path& home, std::vector<std::string> args,
              std::vector<std::string> global = {}) {
  std::vector<std::string> argv = {cli_binary.string(), "--home", home.string(), "--json"};
  argv.insert(argv.end(), global.begin(), global.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return run_tool(argv);
}

std::string show(const cli_run& r) {
  return "exit " + std::to_string(r.code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

// A deployment shared by the tests of this file (starting one takes a second or two).
// Named like the test binary, so that `ctest -R cowpi_integration_cli` selects these tests.
class cowpi_integration_cli : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<temp_dir>("cli");
    d_.dir = dir_->path();
    auto r = tools::start_local_deployment(d_, provider_binary());
    ASSERT_TRUE(r.has_value()) << r.error().message();
    run_ = std::make_unique<tools::running_deployment>(std::move(*r));
    ASSERT_TRUE(eventually([] { return tools::router_ready(d_); }));
  }
  static void TearDownTestSuite() {
    run_.reset();
    dir_.reset();
  }

  static fs::path home(const std::string& u) { return d_.dir / "users" / u; }

  // init + register, checked.
  static void make_user(const std::string& u) {
    auto i = cowpi(home(u), {"init", "--deployment", d_.deployment_path().string(), "--id", u});
    ASSERT_EQ(i.code, 0) << show(i);
    EXPECT_EQ(i.j["ok"], true);
    EXPECT_EQ(i.j["id"], u);
    EXPECT_EQ(i.j["home"], home(u).string());
    EXPECT_EQ(i.j["router"], "127.0.0.1:" + std::to_string(run_->router.port("clients")));
    EXPECT_EQ(i.j["mirrors"], json({"mirror-a", "mirror-b"}));
    auto r = cowpi(home(u), {"register"});
    ASSERT_EQ(r.code, 0) << show(r);
    EXPECT_EQ(r.j["registered"], true);
  }

  static std::string create(const std::string& u, std::vector<std::string> others) {
    others.insert(others.begin(), "create");
    auto c = cowpi(home(u), others);
    EXPECT_EQ(c.code, 0) << show(c);
    return c.j.value("conv", std::string());
  }

  static std::unique_ptr<temp_dir> dir_;
  static tools::local_deployment d_;
  static std::unique_ptr<tools::running_deployment> run_;
};

std::unique_ptr<temp_dir> cowpi_integration_cli::dir_;
tools::local_deployment cowpi_integration_cli::d_;
std::unique_ptr<tools::running_deployment> cowpi_integration_cli::run_;

// The MESSAGE texts among `entries`.
std::vector<std::string> texts(const json& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries)
    if (e["type"] == "MESSAGE")
      out.push_back(e.value("text", ""));
  return out;
}

const json* entry_at(const json& log, uint64_t index) {
  for (const auto& e : log["entries"])
    if (e["index"] == index)
      return &e;
  return nullptr;
}

std::string delivery_of(const json& line, const std::string& member) {
  for (const auto& d : line["delivery"])
    if (d["member"] == member)
      return d["state"];
  return "";
}

TEST_F(cowpi_integration_cli, a_scripted_conversation_through_the_subcommands) {
  for (const std::string u : {"alice", "bob", "carol"})
    make_user(u);

  // A second init in the same home refuses.
  auto again =
      cowpi(home("alice"), {"init", "--deployment", d_.deployment_path().string(), "--id", "x"});
  EXPECT_EQ(again.code, 1) << show(again);
  EXPECT_EQ(again.j["ok"], false);
  EXPECT_NE(again.j["error"].get<std::string>().find("already holds"), std::string::npos);

  // create with an unknown user names it and says what to do.
  auto unknown = cowpi(home("alice"), {"create", "bob", "dave"});
  EXPECT_EQ(unknown.code, 1) << show(unknown);
  EXPECT_EQ(unknown.j["ok"], false);
  EXPECT_NE(unknown.j["error"].get<std::string>().find("unknown user: dave"), std::string::npos)
      << unknown.out;
  EXPECT_NE(unknown.j["hint"].get<std::string>().find("cowpi register"), std::string::npos);

  auto created = cowpi(home("alice"), {"create", "bob"});
  ASSERT_EQ(created.code, 0) << show(created);
  const std::string conv = created.j["conv"];
  EXPECT_EQ(conv.size(), 32u);
  EXPECT_EQ(created.j["members"], json({"alice", "bob"}));
  EXPECT_FALSE(created.j["safety_number"].get<std::string>().empty());
  EXPECT_EQ(created.j["mode"], "chain");  // the default block mode

  auto sent = cowpi(home("alice"), {"send", conv, "hello bob"});
  ASSERT_EQ(sent.code, 0) << show(sent);
  EXPECT_EQ(sent.j["command"], "send");
  EXPECT_EQ(sent.j["conv"], conv);
  EXPECT_EQ(sent.j["ordered"], true);
  EXPECT_EQ(sent.j["outbox"], 0);
  const uint64_t hello_index = sent.j["index"];
  EXPECT_GE(hello_index, 1u);
  EXPECT_GE(sent.j["aseq"].get<uint64_t>(), 1u);

  auto bob_sync = cowpi(home("bob"), {"sync"});
  ASSERT_EQ(bob_sync.code, 0) << show(bob_sync);
  EXPECT_EQ(bob_sync.j["idle"], true);
  EXPECT_EQ(texts(bob_sync.j["entries"]), std::vector<std::string>{"hello bob"});
  for (const auto& e : bob_sync.j["entries"])
    if (e["type"] == "MESSAGE") {
      EXPECT_EQ(e["author"], "alice");
      EXPECT_EQ(e["index"], hello_index);
      EXPECT_EQ(e["own"], false);
      EXPECT_EQ(e["conv"], conv);
    }

  auto reply = cowpi(home("bob"), {"send", conv, "hi", "alice"});  // words are joined
  ASSERT_EQ(reply.code, 0) << show(reply);
  EXPECT_EQ(reply.j["ordered"], true);

  // Receipts flow with syncs; alice's log shows bob read her message. A RECEIPT is due once
  // something new arrived since the member's last entry, at most one per member and
  // conversation every 10 s (docs/design.md 3.7): bob's first one may predate "hello bob", and his
  // reply only shows he received it, so alice writes again.
  auto more = cowpi(home("alice"), {"send", conv, "did you read it?"});
  ASSERT_EQ(more.code, 0) << show(more);
  std::string state;
  const auto receipts_by = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (state != "read" && std::chrono::steady_clock::now() < receipts_by) {
    if (!state.empty())
      std::this_thread::sleep_for(std::chrono::seconds(1));
    ASSERT_EQ(cowpi(home("bob"), {"sync"}).code, 0);
    ASSERT_EQ(cowpi(home("alice"), {"sync"}).code, 0);
    auto log = cowpi(home("alice"), {"log", conv});
    ASSERT_EQ(log.code, 0) << show(log);
    const json* line = entry_at(log.j, hello_index);
    ASSERT_NE(line, nullptr) << log.out;
    state = delivery_of(*line, "bob");
  }
  EXPECT_EQ(state, "read");

  auto log = cowpi(home("alice"), {"log", conv});
  ASSERT_EQ(log.code, 0) << show(log);
  EXPECT_EQ(log.j["status"], "active");
  EXPECT_EQ(log.j["members"], json({"alice", "bob"}));
  ASSERT_GE(log.j["entries"].size(), 3u);
  EXPECT_EQ(log.j["entries"][0]["type"], "SETUP");
  EXPECT_EQ(log.j["entries"][0]["index"], 0);
  EXPECT_EQ(log.j["entries"][0]["members"], json({"alice", "bob"}));
  EXPECT_EQ(texts(log.j["entries"]),
            (std::vector<std::string>{"hello bob", "hi alice", "did you read it?"}));
  for (const auto& e : log.j["entries"]) {
    EXPECT_EQ(e["t"].get<std::string>().size(), 64u);
    if (e["type"] == "MESSAGE" && e["author"] == "bob") {
      ASSERT_EQ(e["delivery"].size(), 1u) << e.dump();
      EXPECT_EQ(e["delivery"][0]["member"], "alice");
      EXPECT_NE(e["delivery"][0]["state"], "pending");
    }
  }

  // add, then the new member takes part.
  auto added = cowpi(home("alice"), {"add", conv.substr(0, 10), "carol"});  // a prefix works
  ASSERT_EQ(added.code, 0) << show(added);
  EXPECT_EQ(added.j["command"], "add");
  EXPECT_EQ(added.j["ordered"], true) << show(added);  // the whole answer, events included
  EXPECT_EQ(added.j["members"], json({"alice", "bob", "carol"}));
  auto carol_sync = cowpi(home("carol"), {"sync"});
  ASSERT_EQ(carol_sync.code, 0) << show(carol_sync);
  auto carol_ls = cowpi(home("carol"), {"ls"});
  ASSERT_EQ(carol_ls.code, 0) << show(carol_ls);
  ASSERT_EQ(carol_ls.j["conversations"].size(), 1u);
  EXPECT_EQ(carol_ls.j["conversations"][0]["conv"], conv);
  EXPECT_EQ(carol_ls.j["conversations"][0]["status"], "active");
  EXPECT_EQ(carol_ls.j["conversations"][0]["members"], json({"alice", "bob", "carol"}));
  auto carol_says = cowpi(home("carol"), {"send", conv, "carol joins"});
  ASSERT_EQ(carol_says.code, 0) << show(carol_says);
  EXPECT_EQ(carol_says.j["ordered"], true);

  // remove: bob is out and is told so when he tries to send.
  auto removed = cowpi(home("alice"), {"remove", conv, "bob"});
  ASSERT_EQ(removed.code, 0) << show(removed);
  EXPECT_EQ(removed.j["members"], json({"alice", "carol"}));
  ASSERT_EQ(cowpi(home("bob"), {"sync"}).code, 0);
  auto bob_ls = cowpi(home("bob"), {"conversations"});
  ASSERT_EQ(bob_ls.code, 0) << show(bob_ls);
  EXPECT_EQ(bob_ls.j["conversations"][0]["status"], "removed");
  auto bob_again = cowpi(home("bob"), {"send", conv, "still here?"});
  EXPECT_EQ(bob_again.code, 1) << show(bob_again);
  EXPECT_NE(bob_again.j["error"].get<std::string>().find("not a member"), std::string::npos);
  EXPECT_NE(bob_again.j["hint"].get<std::string>().find("add you again"), std::string::npos);

  // leave.
  ASSERT_EQ(cowpi(home("carol"), {"sync"}).code, 0);
  auto left = cowpi(home("carol"), {"leave", conv});
  ASSERT_EQ(left.code, 0) << show(left);
  EXPECT_EQ(left.j["ordered"], true);
  EXPECT_EQ(left.j["members"], json({"alice"}));
  ASSERT_EQ(cowpi(home("alice"), {"sync"}).code, 0);

  // Every pair agrees wherever both hold an index.
  std::map<std::string, json> logs;
  for (const std::string u : {"alice", "bob", "carol"}) {
    auto l = cowpi(home(u), {"log", conv});
    ASSERT_EQ(l.code, 0) << show(l);
    logs[u] = l.j;
  }
  size_t compared = 0;
  for (const auto& [a, la] : logs)
    for (const auto& [b, lb] : logs) {
      if (a >= b)
        continue;
      for (auto ea : la["entries"]) {
        const json* eb_ptr = entry_at(lb, ea["index"]);
        if (eb_ptr == nullptr)
          continue;
        json eb = *eb_ptr;
        for (const char* k : {"own", "delivery"}) {
          ea.erase(k);
          eb.erase(k);
        }
        // Where the reader last saw the author's previous RECEIPT: a joiner reads -1.
        for (json* e : {&ea, &eb})
          if (e->contains("receipt"))
            (*e)["receipt"].erase("floor_before");
        EXPECT_EQ(ea, eb) << a << " vs " << b;
        ++compared;
      }
    }
  EXPECT_GT(compared, 10u);
  EXPECT_EQ(logs["alice"]["members"], json({"alice"}));

  // A public-key conversation beside it: both modes live in one store and one router.
  auto pk = cowpi(home("alice"), {"create", "--mode", "public-key", "bob"});
  ASSERT_EQ(pk.code, 0) << show(pk);
  EXPECT_EQ(pk.j["mode"], "public-key");
  const std::string pk_conv = pk.j["conv"];
  auto pk_sent = cowpi(home("alice"), {"send", pk_conv, "in public-key mode"});
  ASSERT_EQ(pk_sent.code, 0) << show(pk_sent);
  EXPECT_EQ(pk_sent.j["ordered"], true);
  auto bob_pk = cowpi(home("bob"), {"sync"});
  ASSERT_EQ(bob_pk.code, 0) << show(bob_pk);
  EXPECT_EQ(texts(bob_pk.j["entries"]), std::vector<std::string>{"in public-key mode"});
  auto alice_ls = cowpi(home("alice"), {"ls"});
  ASSERT_EQ(alice_ls.code, 0) << show(alice_ls);
  std::map<std::string, std::string> modes;
  for (const auto& c : alice_ls.j["conversations"])
    modes[c["conv"].get<std::string>()] = c["mode"].get<std::string>();
  EXPECT_EQ(modes[conv], "chain");
  EXPECT_EQ(modes[pk_conv], "public-key");
}

TEST_F(cowpi_integration_cli, errors_say_what_to_do) {
  // No store at --home.
  auto none = cowpi(d_.dir / "nobody", {"sync"});
  EXPECT_EQ(none.code, 1) << show(none);
  EXPECT_EQ(none.j["ok"], false);
  EXPECT_NE(none.j["error"].get<std::string>().find("no cowpi store"), std::string::npos);
  EXPECT_NE(none.j["hint"].get<std::string>().find("cowpi init"), std::string::npos);

  // Text mode: the error and the hint on stderr.
  auto text = run_tool({cli_binary.string(), "--home", (d_.dir / "nobody").string(), "log", "00"});
  EXPECT_EQ(text.code, 1);
  EXPECT_NE(text.err.find("hint: run `cowpi init"), std::string::npos) << text.err;

  // Usage errors exit 2.
  auto usage = run_tool({cli_binary.string(), "send"});
  EXPECT_EQ(usage.code, 2) << show(usage);
  auto bad_proxy = cowpi(d_.dir / "nobody", {"sync"}, {"--proxy", "http://x:1"});
  EXPECT_EQ(bad_proxy.code, 2) << show(bad_proxy);
  auto bad_mode = cowpi(d_.dir / "nobody", {"create", "--mode", "rsa", "bob"});
  EXPECT_EQ(bad_mode.code, 2) << show(bad_mode);
  EXPECT_NE(bad_mode.j["error"].get<std::string>().find("rsa"), std::string::npos) << bad_mode.out;

  // --help of every subcommand.
  for (const std::string sub : {"init", "register", "create", "send", "add", "remove", "leave",
                                "sync", "log", "conversations", "chat"}) {
    auto h = run_tool({cli_binary.string(), sub, "--help"});
    EXPECT_EQ(h.code, 0) << sub;
    EXPECT_NE(h.out.find("Usage"), std::string::npos) << sub << ": " << h.out;
  }

  // A router that is not running: a deployment file naming a closed port.
  auto dep = config::load_deployment_file(d_.deployment_path());
  ASSERT_TRUE(dep.has_value());
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ::close(s);  // nothing listens there now
  dep->router.address.port = ntohs(a.sin_port);
  const fs::path down_file = d_.dir / "down.toml";
  std::ofstream(down_file) << config::to_toml(*dep);
  auto i = cowpi(home("dora"), {"init", "--deployment", down_file.string(), "--id", "dora"});
  ASSERT_EQ(i.code, 0) << show(i);
  const auto t0 = std::chrono::steady_clock::now();
  auto unreachable = cowpi(home("dora"), {"register"}, {"--timeout", "5"});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(8));
  EXPECT_EQ(unreachable.code, 1) << show(unreachable);
  EXPECT_NE(unreachable.j["error"].get<std::string>().find("unreachable"), std::string::npos)
      << unreachable.out;
  EXPECT_NE(unreachable.j["hint"].get<std::string>().find("is the router running?"),
            std::string::npos);

  // A user who never registered is told to.
  auto ivy =
      cowpi(home("ivy"), {"init", "--deployment", d_.deployment_path().string(), "--id", "ivy"});
  ASSERT_EQ(ivy.code, 0) << show(ivy);
  auto unregistered = cowpi(home("ivy"), {"sync"});
  EXPECT_EQ(unregistered.code, 1) << show(unregistered);
  EXPECT_NE(unregistered.j["error"].get<std::string>().find("UNKNOWN_USER"), std::string::npos)
      << unregistered.out;
  EXPECT_NE(unregistered.j["hint"].get<std::string>().find("cowpi register"), std::string::npos);

  // An unknown conversation is named as such.
  make_user("erin");
  auto no_conv = cowpi(home("erin"), {"send", "0123456789abcdef0123456789abcdef", "x"});
  EXPECT_EQ(no_conv.code, 1) << show(no_conv);
  EXPECT_NE(no_conv.j["error"].get<std::string>().find("no conversation"), std::string::npos);
}

// -- chat in a pseudo-terminal --------------------------------------------------------------

// Reads from `fd` into `buf` until it contains `needle` or `timeout` passes.
bool read_until(int fd, std::string& buf, const std::string& needle,
                std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (buf.find(needle) == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
      continue;
    char b[1024];
    const ssize_t n = ::read(fd, b, sizeof b);
    if (n <= 0)
      return buf.find(needle) != std::string::npos;
    buf.append(b, static_cast<size_t>(n));
  }
  return true;
}

TEST_F(cowpi_integration_cli, chat_in_a_terminal_shows_incoming_messages_and_sends_typed_lines) {
  make_user("frank");
  make_user("gina");
  const std::string conv = create("frank", {"gina"});
  ASSERT_FALSE(conv.empty());
  ASSERT_EQ(cowpi(home("gina"), {"sync"}).code, 0);

  int master = -1;
  const std::string bin = cli_binary.string();
  const std::string h = home("frank").string();
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl(bin.c_str(), bin.c_str(), "--home", h.c_str(), "chat", conv.c_str(),
            static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  std::string screen;
  ASSERT_TRUE(read_until(master, screen, "/quit or Ctrl-D")) << screen;
  EXPECT_NE(screen.find("chat in " + conv + " as frank with gina"), std::string::npos) << screen;

  // Another member sends; the chat prints it as it arrives.
  auto sent = cowpi(home("gina"), {"send", conv, "hello frank from gina"});
  ASSERT_EQ(sent.code, 0) << show(sent);
  EXPECT_TRUE(read_until(master, screen, "gina: hello frank from gina")) << screen;

  // A typed line is sent, comes back ordered, and the other member receives it.
  const std::string line = "typed in the chat\n";
  ASSERT_EQ(::write(master, line.data(), line.size()), static_cast<ssize_t>(line.size()));
  EXPECT_TRUE(read_until(master, screen, "frank (you): typed in the chat")) << screen;
  std::vector<std::string> got;
  for (int k = 0; k < 5 && got.empty(); ++k) {
    auto s = cowpi(home("gina"), {"sync"});
    ASSERT_EQ(s.code, 0) << show(s);
    got = texts(s.j["entries"]);
  }
  EXPECT_EQ(got, std::vector<std::string>{"typed in the chat"});

  const std::string quit = "/quit\n";
  ASSERT_EQ(::write(master, quit.data(), quit.size()), static_cast<ssize_t>(quit.size()));
  EXPECT_TRUE(read_until(master, screen, "-- bye")) << screen;
  int status = 0;
  for (int k = 0; k < 200 && ::waitpid(pid, &status, WNOHANG) == 0; ++k)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << screen;
  ::kill(pid, SIGKILL);
  (void)::waitpid(pid, nullptr, WNOHANG);
  ::close(master);
}

// -- --proxy --------------------------------------------------------------------------------

TEST_F(cowpi_integration_cli, proxy_carries_the_connection_to_the_router) {
  auto i =
      cowpi(home("hank"), {"init", "--deployment", d_.deployment_path().string(), "--id", "hank"});
  ASSERT_EQ(i.code, 0) << show(i);
  socks5_server proxy;
  auto r = cowpi(home("hank"), {"register"},
                 {"--proxy", "socks5://127.0.0.1:" + std::to_string(proxy.port())});
  ASSERT_EQ(r.code, 0) << show(r);
  EXPECT_EQ(r.j["registered"], true);
  auto req = proxy.wait_request(std::chrono::seconds(5));
  ASSERT_TRUE(req.has_value());
  EXPECT_EQ(req->host, "127.0.0.1");
  EXPECT_EQ(req->port, run_->router.port("clients"));
  EXPECT_GT(proxy.relayed_up(), 0u);
}

// Kill points of the client (docs/design.md §4), hit through the real CLI: SIGKILL right after the
// outbox is persisted and before the SUBMIT goes out, and right after an accept is persisted and
// before its ACK. Each message must still arrive, exactly once, everywhere.
TEST_F(cowpi_integration_cli, a_client_killed_mid_send_or_mid_accept_loses_and_repeats_nothing) {
  make_user("ivan");
  make_user("judy");
  const auto conv = create("ivan", {"judy"});
  ASSERT_FALSE(conv.empty());
  auto faulty = [](const std::string& point, const std::string& u, std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/env", "COWPI_FAULT=" + point, cli_binary.string(),
                                     "--home",       home(u).string(),       "--json"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_tool(argv);
  };
  auto killed =
      faulty("client.send.after_persist", "ivan", {"send", conv, "written before the crash"});
  EXPECT_NE(killed.code, 0) << show(killed);
  EXPECT_NE(killed.err.find("fault point client.send.after_persist"), std::string::npos)
      << show(killed);
  // The next run resends the persisted outbox at connect.
  auto s = cowpi(home("ivan"), {"sync"});
  ASSERT_EQ(s.code, 0) << show(s);
  // Judy dies after persisting the accept, before acknowledging it: the router sends it again.
  killed = faulty("client.accept.before_ack", "judy", {"sync"});
  EXPECT_NE(killed.code, 0) << show(killed);
  EXPECT_NE(killed.err.find("fault point client.accept.before_ack"), std::string::npos)
      << show(killed);
  for (const char* u : {"judy", "ivan", "judy"}) {
    auto r = cowpi(home(u), {"sync"});
    ASSERT_EQ(r.code, 0) << u << ": " << show(r);
  }
  for (const char* u : {"ivan", "judy"}) {
    auto log = cowpi(home(u), {"log", conv});
    ASSERT_EQ(log.code, 0) << show(log);
    EXPECT_EQ(texts(log.j["entries"]), std::vector<std::string>{"written before the crash"}) << u;
  }
}

// -- cowpi-local ----------------------------------------------------------------------------

TEST(cowpi_integration_cli_local, demo_runs_end_to_end_and_leaves_a_deployment_to_stop) {
  temp_dir dir("local");
  const std::string deploy = (dir.path() / "deploy").string();
  auto demo = run_tool({local_binary.string(), "demo", "--fresh", "--dir", deploy},
                       std::chrono::seconds(240));
  EXPECT_EQ(demo.code, 0) << show(demo);
  EXPECT_NE(demo.out.find("transcripts identical"), std::string::npos) << demo.out;
  EXPECT_NE(demo.out.find("cowpi-local down --dir " + deploy), std::string::npos);
  auto status = run_tool({local_binary.string(), "status", "--dir", deploy});
  EXPECT_EQ(status.code, 0) << show(status);
  EXPECT_NE(status.out.find("router (pid"), std::string::npos) << status.out;
  const auto pids = local::read_pids(fs::path(deploy) / "pids");
  EXPECT_EQ(pids.size(), 3u);
  auto down = run_tool({local_binary.string(), "down", "--dir", deploy});
  EXPECT_EQ(down.code, 0) << show(down);
  for (const auto& [name, pid] : pids)
    EXPECT_FALSE(local::provider_alive(pid)) << name;
  auto after = run_tool({local_binary.string(), "status", "--dir", deploy});
  EXPECT_EQ(after.code, 1) << show(after);
}

TEST(cowpi_integration_cli_local, mirror_clusters_run_the_demo_and_come_back_as_they_were_made) {
  temp_dir dir("local-cluster");
  const std::string deploy = (dir.path() / "deploy").string();
  auto demo =
      run_tool({local_binary.string(), "demo", "--fresh", "--mirror-nodes", "2", "--dir", deploy},
               std::chrono::seconds(240));
  EXPECT_EQ(demo.code, 0) << show(demo);
  EXPECT_NE(demo.out.find("two mirrors of 2 nodes each"), std::string::npos) << demo.out;
  EXPECT_NE(demo.out.find("transcripts identical"), std::string::npos) << demo.out;
  auto pids = local::read_pids(fs::path(deploy) / "pids");
  std::vector<std::string> names;
  for (const auto& [name, pid] : pids)
    names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"mirror-a-1", "mirror-a-2", "mirror-b-1", "mirror-b-2",
                                             "router"}));
  // The deployment keeps the layout it was made with.
  auto other = run_tool({local_binary.string(), "up", "--mirror-nodes", "3", "--dir", deploy});
  EXPECT_EQ(other.code, 2) << show(other);
  EXPECT_NE(other.err.find("runs 2 node(s) per mirror, not 3"), std::string::npos) << show(other);
  EXPECT_EQ(run_tool({local_binary.string(), "down", "--dir", deploy}).code, 0);
  auto again = run_tool({local_binary.string(), "up", "--dir", deploy});
  EXPECT_EQ(again.code, 0) << show(again);
  EXPECT_NE(again.out.find("2 nodes each"), std::string::npos) << again.out;
  EXPECT_EQ(local::read_pids(fs::path(deploy) / "pids").size(), 5u);
  EXPECT_EQ(run_tool({local_binary.string(), "down", "--dir", deploy}).code, 0);
}

TEST(cowpi_integration_cli_local, router_clusters_come_up_and_back_as_they_were_made) {
  temp_dir dir("local-routers");
  const std::string deploy = (dir.path() / "deploy").string();
  auto up = run_tool({local_binary.string(), "up", "--router-nodes", "3", "--dir", deploy},
                     std::chrono::seconds(120));
  EXPECT_EQ(up.code, 0) << show(up);
  EXPECT_NE(up.out.find("(router (3 nodes) + mirror-a, mirror-b)"), std::string::npos) << up.out;
  std::vector<std::string> names;
  for (const auto& [name, pid] : local::read_pids(fs::path(deploy) / "pids"))
    names.push_back(name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"mirror-a", "mirror-b", "router-1", "router-2", "router-3"}));
  // Clients get every node; every node's config lists every node.
  auto dep = config::load_deployment_file(fs::path(deploy) / "deployment.toml");
  ASSERT_TRUE(dep.has_value()) << dep.error().message();
  ASSERT_EQ(dep->router.nodes.size(), 3u);
  EXPECT_EQ(dep->router.address, dep->router.nodes.front().address);
  for (size_t k = 0; k < 3; ++k) {
    const std::string node = "router-" + std::to_string(k + 1);
    auto c = config::load_provider_config(fs::path(deploy) / node / "provider.toml");
    ASSERT_TRUE(c.has_value()) << c.error().message();
    EXPECT_EQ(c->name, "router");
    EXPECT_EQ(c->cluster.self, node);
    EXPECT_EQ(c->cluster.nodes, (std::vector<std::string>{"router-1", "router-2", "router-3"}));
    ASSERT_EQ(c->cluster.addresses.size(), 3u);
    EXPECT_EQ(c->clients, dep->router.nodes[k].address);
  }
  auto status = run_tool({local_binary.string(), "status", "--dir", deploy});
  EXPECT_EQ(status.code, 0) << show(status);
  EXPECT_NE(status.out.find("router links to the mirrors and between its nodes: up"),
            std::string::npos)
      << status.out;
  // The deployment keeps the layout it was made with.
  auto other = run_tool({local_binary.string(), "up", "--router-nodes", "2", "--dir", deploy});
  EXPECT_EQ(other.code, 2) << show(other);
  EXPECT_NE(other.err.find("runs its router as 3 node(s), not 2"), std::string::npos)
      << show(other);
  EXPECT_EQ(run_tool({local_binary.string(), "down", "--dir", deploy}).code, 0);
  auto again = run_tool({local_binary.string(), "up", "--dir", deploy}, std::chrono::seconds(120));
  EXPECT_EQ(again.code, 0) << show(again);
  EXPECT_NE(again.out.find("router (3 nodes)"), std::string::npos) << again.out;
  EXPECT_EQ(local::read_pids(fs::path(deploy) / "pids").size(), 5u);
  EXPECT_EQ(run_tool({local_binary.string(), "down", "--dir", deploy}).code, 0);
}

}  // namespace
}  // namespace cowpi::testing
