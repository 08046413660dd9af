// The model check's fingerprint: equal for a copy of a folder, different when config.json or a
// weight file differs, blind to files that are not the model.
#include "lmforge/dist/same_model.h"

#include <gtest/gtest.h>

#include "common/temp_dir_test.h"
#include "lmforge/error.h"

namespace lmforge::dist {
namespace {

namespace fs = std::filesystem;

class ModelFingerprint : public test::TempDirTest {
 protected:
  ModelFingerprint() : TempDirTest("lmforge-fingerprint-") {}
  fs::path copy_of_tiny(const std::string& name) {
    const fs::path to = dir_ / name;
    fs::copy(fs::path(LMFORGE_TEST_DATA) / "models" / "gpt2-tiny", to, fs::copy_options::recursive);
    return to;
  }
};

TEST_F(ModelFingerprint, ACopyHasTheSameFingerprint) {
  const fs::path tiny = fs::path(LMFORGE_TEST_DATA) / "models" / "gpt2-tiny";
  const fs::path copy = copy_of_tiny("a");
  write("a/notes.txt", "not part of the model");
  EXPECT_EQ(model_fingerprint(tiny), model_fingerprint(copy));
}

TEST_F(ModelFingerprint, AnotherConfigOrWeightFileChangesIt) {
  const uint64_t base = model_fingerprint(copy_of_tiny("a"));
  const fs::path b = copy_of_tiny("b");
  write("b/config.json", read(b / "config.json") + " ");
  EXPECT_NE(model_fingerprint(b), base);
  const fs::path c = copy_of_tiny("c");
  write("c/model.safetensors", read(c / "model.safetensors") + "x");  // one byte longer
  EXPECT_NE(model_fingerprint(c), base);
}

TEST_F(ModelFingerprint, AMissingFolderIsAnErrorNamingIt) {
  try {
    model_fingerprint(dir_ / "nowhere");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nowhere"), std::string::npos) << e.what();
  }
}

// finetune's data check: a copy of a CSV passes, one changed byte does not, and a file missing
// everywhere gives one fixed value (the command then names it itself).
TEST_F(ModelFingerprint, AFileIsFingerprintedByItsBytes) {
  EXPECT_EQ(file_fingerprint(write("a.csv", "text\nhello\n")), file_fingerprint(write("b.csv", "text\nhello\n")));
  EXPECT_NE(file_fingerprint(write("c.csv", "text\nhellp\n")), file_fingerprint(path("a.csv")));
  EXPECT_EQ(file_fingerprint(path("missing.csv")), file_fingerprint(path("also-missing.csv")));
  EXPECT_NE(file_fingerprint(path("missing.csv")), file_fingerprint(write("empty.csv", "")));
}

}  // namespace
}  // namespace lmforge::dist
