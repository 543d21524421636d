// SPDX-License-Identifier: Apache-2.0
// cowpi: one user's Mobile CoWPI client on the command line (docs/cli.md). Wiring only: the
// subcommands are in commands.cpp.
#include "commands.hpp"
#include <CLI/CLI.hpp>
#include <sodium.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>

namespace {

using cowpi::cli::cli_error;
using cowpi::cli::global_options;

std::filesystem::path default_home() {
  if (const char* h = std::getenv("COWPI_HOME"); h != nullptr && *h != '\0')
    return h;
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0')
    return std::filesystem::path(h) / ".cowpi";
  return ".cowpi";
}

int report_error(bool json, const cli_error& e, int code) {
  if (json) {
    std::cout << nlohmann::json{{"ok", false}, {"error", e.message}, {"hint", e.hint}}.dump()
              << std::endl;
  } else {
    std::cerr << "cowpi: " << e.message << "\n";
    if (!e.hint.empty())
      std::cerr << "  hint: " << e.hint << "\n";
  }
  return code;
}

bool wants_json(int argc, char** argv) {
  for (int k = 1; k < argc; ++k)
    if (std::strcmp(argv[k], "--json") == 0)
      return true;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "cowpi: a Mobile CoWPI group messaging client. Each user has a folder (--home) holding\n"
      "the deployment file, an encrypted store and its key. Start with\n"
      "  cowpi init --deployment FILE --id ID   then   cowpi register\n"
      "Exit codes: 0 ok, 1 error, 2 usage. See docs/cli.md (installed:\n"
      "/usr/share/doc/cowpi/cli.md); `cowpi SUBCOMMAND --help` for a subcommand."};
  app.name("cowpi");
  app.require_subcommand(1);
  app.fallthrough();

  std::string home;
  bool json = false;
  std::string proxy;
  double timeout_s = 10;
  app.add_option("--home", home, "the user's folder (default: $COWPI_HOME, else ~/.cowpi)");
  app.add_flag("--json", json,
               "machine output: one JSON object per command on stdout; errors are "
               "{\"ok\":false,\"error\":...,\"hint\":...}");
  app.add_option("--proxy", proxy,
                 "reach the router through a SOCKS5 proxy, e.g. socks5://127.0.0.1:9050");
  app.add_option("--timeout", timeout_s,
                 "seconds to wait for the router: connecting, each request, a sync (default 10)")
      ->check(CLI::PositiveNumber);

  std::string deployment, id, conv;
  std::vector<std::string> ids, words;

  auto* init =
      app.add_subcommand("init",
                         "create this user's identity and store in --home (no network); copies the "
                         "deployment file there");
  init->add_option("--deployment", deployment, "the deployment file (deployment.toml)")
      ->required()
      ->check(CLI::ExistingFile);
  init->add_option("--id", id, "your user id (1-64 characters, unique at the router)")->required();

  app.add_subcommand("register",
                     "register the user with the router and upload pre-keys (run once after "
                     "init)");

  auto* create = app.add_subcommand(
      "create", "create a conversation with the given registered users; prints its id");
  create->add_option("ID", ids, "the other members' ids")->required();
  std::string mode_name = "chain";
  create
      ->add_option("--mode", mode_name,
                   "block mode, fixed for the conversation's life: 'chain' (symmetric chains "
                   "with periodic DH steps, fast for large groups) or 'public-key' (a fresh "
                   "key exchange in every block); default chain")
      ->check(CLI::IsMember({"chain", "public-key"}));

  auto* send = app.add_subcommand(
      "send", "send TEXT to conversation CONV and wait until it is ordered (its echo)");
  send->add_option("CONV", conv, "the conversation id (hex, or a unique prefix)")->required();
  send->add_option("TEXT", words, "the message (several words are joined by spaces)")->required();

  auto* add = app.add_subcommand("add", "add registered users to conversation CONV");
  add->add_option("CONV", conv, "the conversation id (hex, or a unique prefix)")->required();
  add->add_option("ID", ids, "the ids to add")->required();

  auto* remove = app.add_subcommand("remove", "remove members from conversation CONV");
  remove->add_option("CONV", conv, "the conversation id (hex, or a unique prefix)")->required();
  remove->add_option("ID", ids, "the ids to remove")->required();

  auto* leave = app.add_subcommand("leave", "leave conversation CONV");
  leave->add_option("CONV", conv, "the conversation id (hex, or a unique prefix)")->required();

  app.add_subcommand("sync",
                     "receive and verify everything the router holds for you (until drained "
                     "or --timeout), send due receipts; prints the new entries");

  auto* log =
      app.add_subcommand("log",
                         "print the verified transcript of CONV with each message's delivery state "
                         "(offline, from the store)");
  log->add_option("CONV", conv, "the conversation id (hex, or a unique prefix)")->required();

  auto* ls = app.add_subcommand(
      "conversations",
      "list your conversations: status, members, safety number (offline, from the store)");
  ls->alias("ls");

  auto* chat = app.add_subcommand(
      "chat",
      "interactive chat in CONV: prints messages as they arrive, sends each line you "
      "type; /quit or Ctrl-D leaves");
  chat->add_option("CONV", conv, "the conversation id (hex, or a unique prefix)")->required();

  for (auto* sub : app.get_subcommands([](CLI::App*) { return true; }))
    sub->footer(
        "Global options (before or after the subcommand): --home DIR, --json, --proxy "
        "socks5://HOST:PORT, --timeout SECONDS; see `cowpi --help`.");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return report_error(wants_json(argc, argv),
                        cli_error{e.what(), "see `cowpi --help` or `cowpi SUBCOMMAND --help`"}, 2);
  }

  std::signal(SIGPIPE, SIG_IGN);
  if (sodium_init() < 0)
    return report_error(json, cli_error{"libsodium failed to initialise", {}}, 1);

  global_options g;
  g.home = home.empty() ? default_home() : std::filesystem::path(home);
  g.json = json;
  g.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  if (!proxy.empty()) {
    auto p = cowpi::cli::parse_proxy(proxy);
    if (!p)
      return report_error(json, p.error(), 2);
    g.proxy = *p;
  }

  const std::string command = app.get_subcommands().front()->get_name();
  if (command == "chat")
    return cowpi::cli::cmd_chat(g, conv);

  cowpi::cli::result r = cowpi::unexpected<cli_error>{cli_error{"unknown command", {}}};
  if (command == "init") {
    r = cowpi::cli::cmd_init(g, deployment, id);
  } else if (command == "register") {
    r = cowpi::cli::cmd_register(g);
  } else if (command == "create") {
    r = cowpi::cli::cmd_create(g, ids,
                               mode_name == "chain" ? cowpi::protocol::block_mode::chain
                                                    : cowpi::protocol::block_mode::pk);
  } else if (command == "send") {
    std::string text;
    for (const auto& w : words)
      text += (text.empty() ? "" : " ") + w;
    r = cowpi::cli::cmd_send(g, conv, text);
  } else if (command == "add" || command == "remove") {
    r = cowpi::cli::cmd_update(g, command, conv, ids);
  } else if (command == "leave") {
    r = cowpi::cli::cmd_update(g, command, conv, {});
  } else if (command == "sync") {
    r = cowpi::cli::cmd_sync(g);
  } else if (command == "log") {
    r = cowpi::cli::cmd_log(g, conv);
  } else if (command == "conversations") {
    r = cowpi::cli::cmd_conversations(g);
  }
  if (!r)
    return report_error(json, r.error(), 1);
  if (json)
    std::cout << r->dump() << std::endl;
  else
    cowpi::cli::print_text(command, *r);
  return 0;
}
