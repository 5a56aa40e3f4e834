// Temporary names (temporary_name.h), the removal of stale ones
// (stale_temporaries.h) and AtomicOutputFile's handling of a failed write.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "spatialid/io/atomic_output_file.h"
#include "spatialid/io/stale_temporaries.h"
#include "spatialid/io/temporary_name.h"

namespace spatialid::io {
namespace {

namespace fs = std::filesystem;

std::string TestDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const fs::path dir = fs::path(tmp ? tmp : "/tmp") / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// A pid that no process has: a child that has exited and been reaped.
long DeadPid() {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  return pid;
}

std::set<std::string> Files(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) names.insert(fs::relative(e.path(), dir).string());
  }
  return names;
}

void Touch(const std::string& path) { std::ofstream(path) << "half a file"; }

TEST(TemporaryNameTest, RoundTripsThisWritersName) {
  const std::string temp = TemporaryPathFor("out/camel_frog/llava-7b.pt");
  const std::string name = fs::path(temp).filename().string();
  const TemporaryName t = ParseTemporaryName(name);
  EXPECT_EQ(t.pid, static_cast<long>(getpid())) << name;
  EXPECT_EQ(t.final_name, "llava-7b.pt");
  EXPECT_EQ(t.host, ThisWriterHost().host);
  EXPECT_EQ(t.boot, ThisWriterHost().boot);
  EXPECT_NE(TemporaryPathFor("x.pt"), TemporaryPathFor("x.pt")) << "two writers, one name";
}

TEST(TemporaryNameTest, ParsesHostsWithDotsAndRefusesOtherNames) {
  const TemporaryName t = ParseTemporaryName("a.tmp.b.pt.tmp.5.2@node7.cluster.org.1a2b3c4d");
  EXPECT_EQ(t.pid, 5);
  EXPECT_EQ(t.final_name, "a.tmp.b.pt");
  EXPECT_EQ(t.host, "node7.cluster.org");
  EXPECT_EQ(t.boot, "1a2b3c4d");
  for (const char* name : {"x.png", "x.png.tmp.123", "x.pt.tmp.123.0", "x.pt.tmp.abc.0@h.b",
                           "x.pt.tmp.12.0@hostonly", "x.pt.tmp.12@h.b", "x.pt.tmp.12.x@h.b",
                           ".tmp.12.0@h.b", "x.pt.tmp.12.0@h.", "x.pt.tmp.0.0@h.b"}) {
    EXPECT_EQ(ParseTemporaryName(name).pid, -1) << name;
  }
}

TEST(StaleTemporariesTest, OnlyDeadWritersOfThisHostAreRemoved) {
  const std::string dir = TestDir("stale");
  const WriterHost& me = ThisWriterHost();
  const long dead = DeadPid();
  const long live = getppid();  // the test runner: alive while we run
  const std::string other_boot = me.boot == "deadbeef" ? "0badc0de" : "deadbeef";
  auto temp = [&](const std::string& final_name, long pid, const std::string& host,
                  const std::string& boot) {
    return absl::StrCat(final_name, ".tmp.", pid, ".0@", host, ".", boot);
  };
  const std::vector<std::string> removed = {
      temp("a.pt", dead, me.host, me.boot),          // this host, writer gone
      temp("b.pt", live, me.host, other_boot),       // this host, before a reboot
      temp("c.pt", getpid(), me.host, me.boot),      // an earlier process with our pid
  };
  const std::vector<std::string> kept = {
      temp("d.pt", live, me.host, me.boot),          // a live writer here
      // Another node sharing --out: its pids mean nothing here, dead or alive.
      temp("e.pt", dead, "other-node", me.boot),
      temp("f.pt", dead, me.host + ".example", me.boot),
      temp("g.pt", live, "other-node", other_boot),
      absl::StrCat("h.pt.tmp.", dead, ".0"),         // no host: cannot tell whose
      temp("other.json", dead, me.host, me.boot),    // a name `ours` does not claim
      "i.pt",
  };
  for (const auto& n : removed) Touch(dir + "/" + n);
  for (const auto& n : kept) Touch(dir + "/" + n);
  absl::StatusOr<int> count =
      RemoveStaleTemporaries(dir, 0, [](std::string_view f) { return f.ends_with(".pt"); });
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(*count, 3);
  EXPECT_EQ(Files(dir), std::set<std::string>(kept.begin(), kept.end()));
}

TEST(StaleTemporariesTest, DepthAndHiddenFolders) {
  const std::string dir = TestDir("depth");
  const WriterHost& me = ThisWriterHost();
  const std::string name = absl::StrCat("x.png.tmp.", DeadPid(), ".0@", me.host, ".", me.boot);
  for (const char* sub : {"a", "a/b", "a/b/c", ".hidden"}) {
    fs::create_directories(dir + "/" + sub);
    Touch(dir + "/" + sub + "/" + name);
  }
  absl::StatusOr<int> count = RemoveStaleTemporaries(dir, 2, [](std::string_view) { return true; });
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 2);
  EXPECT_EQ(Files(dir), (std::set<std::string>{"a/b/c/" + name, ".hidden/" + name}));
}

TEST(AtomicOutputFileTest, TemporaryIsNamedForThisWriterAndGoneAfterCommit) {
  const std::string dir = TestDir("atomic");
  absl::StatusOr<AtomicOutputFile> out = AtomicOutputFile::Create(dir + "/x.pt");
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(out->Write("abc", 3).ok());
  const std::set<std::string> during = Files(dir);
  ASSERT_EQ(during.size(), 1u);
  const TemporaryName t = ParseTemporaryName(*during.begin());
  EXPECT_EQ(t.pid, static_cast<long>(getpid()));
  EXPECT_EQ(t.final_name, "x.pt");
  ASSERT_TRUE(out->Commit().ok());
  EXPECT_EQ(Files(dir), std::set<std::string>{"x.pt"});
}

TEST(AtomicOutputFileTest, FailedWriteRemovesTheTemporaryAtOnceAndNamesTheFile) {
  // RLIMIT_FSIZE makes write() fail (EFBIG) past 64 KiB: a disk that fills
  // up, as far as the writer can tell. The earlier whole file stays.
  const std::string dir = TestDir("full");
  const std::string path = dir + "/y.pt";
  ASSERT_TRUE(WriteFileAtomically(path, "old contents").ok());
  signal(SIGXFSZ, SIG_IGN);
  rlimit before;
  getrlimit(RLIMIT_FSIZE, &before);
  rlimit small = before;
  small.rlim_cur = 64 << 10;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  absl::StatusOr<AtomicOutputFile> out = AtomicOutputFile::Create(path);
  ASSERT_TRUE(out.ok());
  const std::string big(3 << 20, 'x');  // past the 1 MiB buffer: written at once
  absl::Status s = out->Write(big.data(), big.size());
  setrlimit(RLIMIT_FSIZE, &before);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(std::string(s.message()), "cannot write " + path + ": File too large");
  EXPECT_EQ(Files(dir), std::set<std::string>{"y.pt"}) << "the temporary outlived the failure";
  EXPECT_FALSE(out->Commit().ok());
  std::ifstream in(path);
  std::string kept((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(kept, "old contents");
}

}  // namespace
}  // namespace spatialid::io
