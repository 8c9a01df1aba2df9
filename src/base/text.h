// kmm/base/text.h — a text sink that formats into a caller-provided fixed buffer.
//
// The core prints /proc views, reports and log lines without a heap: a TextSink appends to a
// buffer it does not own and, when full, keeps counting what it would have written so the
// caller can learn the size it needs (like snprintf). Numbers are formatted here, with no
// locale and no allocation.
//
// Depends on: config.h. Invariant: buf_[min(len_, cap_ - 1)] == '\0' when cap_ > 0.
#pragma once

#include "base/config.h"

namespace kmm {

class TextSink {
 public:
  TextSink(char* buf, std::size_t cap) : buf_(buf), cap_(cap) { terminate(); }

  TextSink& str(const char* s);
  TextSink& str(const char* s, std::size_t n);
  TextSink& ch(char c);
  TextSink& repeat(char c, std::size_t n);
  // Unsigned / signed decimal, right-aligned in `width` (0: no padding).
  TextSink& u(std::uint64_t v, unsigned width = 0);
  TextSink& i(std::int64_t v, unsigned width = 0);
  // Left-aligned string padded to width.
  TextSink& left(const char* s, unsigned width);
  // Hex without prefix, zero-padded to `digits` (0: minimal).
  TextSink& hex(std::uint64_t v, unsigned digits = 0);
  TextSink& ptr(const void* p);  // 0x + 16 (or 8) hex digits
  // Fixed point: v / 10^decimals, printed with that many decimals (e.g. 1234,3 -> "1.234").
  TextSink& fixed(std::int64_t v, unsigned decimals);
  TextSink& nl() { return ch('\n'); }

  const char* data() const { return buf_; }
  std::size_t size() const { return len_ < cap_ ? len_ : (cap_ ? cap_ - 1 : 0); }
  std::size_t wanted() const { return len_; }  // bytes it would hold with no limit
  bool truncated() const { return len_ >= cap_; }
  void clear() {
    len_ = 0;
    terminate();
  }

 private:
  void put(char c) {
    if (len_ + 1 < cap_) buf_[len_] = c;
    ++len_;
  }
  void terminate() {
    if (cap_ > 0) buf_[len_ < cap_ ? len_ : cap_ - 1] = '\0';
  }
  char* buf_;
  std::size_t cap_;
  std::size_t len_ = 0;
};

// Formats into a stack buffer of N bytes.
template <std::size_t N>
class StackText : public TextSink {
 public:
  StackText() : TextSink(storage_, N) {}

 private:
  char storage_[N];
};

// String helpers the core needs without libc's locale-aware ones.
std::size_t str_len(const char* s);
bool str_eq(const char* a, const char* b);
// Copies at most cap-1 bytes and terminates; returns false when truncated.
bool str_copy(char* dst, std::size_t cap, const char* src);

}  // namespace kmm
