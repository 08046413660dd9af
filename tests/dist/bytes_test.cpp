// The byte form of results: what is written is read back bit for bit, and a short message is an
// error rather than garbage.
#include "lmforge/dist/bytes.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "lmforge/error.h"

namespace lmforge::dist {
namespace {

TEST(Bytes, RoundTripsNumbersStringsAndVectorsExactly) {
  ByteWriter w;
  const double third = 1.0 / 3.0, tiny = std::numeric_limits<double>::denorm_min();
  w.put(third);
  w.put(tiny);
  w.put<int64_t>(-5);
  w.put(std::string("h\xc3\xa9llo\0x", 8));  // an embedded NUL and non-ASCII bytes
  w.put(std::vector<int32_t>{50256, -1, 0});
  w.put(std::vector<double>{-0.0, 2.5});
  w.put(std::vector<bool>{true, false, true});
  w.put(std::vector<std::string>{"a", ""});
  ByteReader r(w.bytes());
  EXPECT_EQ(r.get<double>(), third);
  EXPECT_EQ(r.get<double>(), tiny);
  EXPECT_EQ(r.get<int64_t>(), -5);
  EXPECT_EQ(r.get_string(), std::string("h\xc3\xa9llo\0x", 8));
  EXPECT_EQ(r.get_vector<int32_t>(), (std::vector<int32_t>{50256, -1, 0}));
  const auto d = r.get_vector<double>();
  ASSERT_EQ(d.size(), 2u);
  EXPECT_TRUE(std::signbit(d[0]));
  EXPECT_EQ(d[1], 2.5);
  EXPECT_EQ(r.get_bools(), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(r.get<uint64_t>(), 2u);  // a vector of strings: its length, then each string
  EXPECT_EQ(r.get_string(), "a");
  EXPECT_EQ(r.get_string(), "");
  EXPECT_TRUE(r.done());
}

TEST(Bytes, ReadingPastTheEndIsAnError) {
  ByteWriter w;
  w.put<int32_t>(7);
  ByteReader r(w.bytes());
  EXPECT_THROW(r.get<int64_t>(), Error);
  ByteWriter len;
  len.put<uint64_t>(1000);  // a string length with no bytes behind it
  ByteReader s(len.bytes());
  EXPECT_THROW(s.get_string(), Error);
}

}  // namespace
}  // namespace lmforge::dist
