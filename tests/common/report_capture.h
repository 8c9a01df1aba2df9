// tests/common/report_capture.h — captures kmm's error reports in a test.
// While a ReportCapture lives, report text goes to a string instead of stderr, each report
// is recorded (kind, action, pointer, cache, size, detail), and the policy is the one given
// (kReport by default, so bad calls are refused and the test goes on). The destructor puts
// back the defaults: stderr writer, no hook, abort policy.
#pragma once

#include <string>
#include <vector>

#include "base/report.h"

namespace kmm::test {

struct SeenReport {
  ErrorKind kind;
  std::string action;
  const void* pointer;
  std::string cache;
  std::size_t size;
  std::string detail;
};

class ReportCapture {
 public:
  explicit ReportCapture(OnError policy = OnError::kReport) {
    current() = this;
    reset_report_count();
    set_report_writer(&ReportCapture::write);
    set_report_hook(&ReportCapture::hook, this);
    set_on_error(policy);
  }
  ~ReportCapture() {
    set_on_error(OnError::kAbort);
    set_report_hook(nullptr, nullptr);
    set_report_writer(nullptr);
    current() = nullptr;
  }
  ReportCapture(const ReportCapture&) = delete;
  ReportCapture& operator=(const ReportCapture&) = delete;

  const std::string& text() const { return text_; }
  const std::vector<SeenReport>& reports() const { return reports_; }
  std::size_t count() const { return reports_.size(); }
  const SeenReport& last() const { return reports_.back(); }
  void clear() {
    text_.clear();
    reports_.clear();
  }

 private:
  static ReportCapture*& current() {
    static ReportCapture* c = nullptr;
    return c;
  }
  static void write(const char* s, std::size_t n) {
    if (current() != nullptr) current()->text_.append(s, n);
  }
  static void hook(const ErrorReport& r, void* arg) {
    auto* self = static_cast<ReportCapture*>(arg);
    self->reports_.push_back(SeenReport{r.kind, r.action ? r.action : "", r.pointer, r.cache ? r.cache : "", r.size,
                                        r.detail ? r.detail : ""});
  }

  std::string text_;
  std::vector<SeenReport> reports_;
};

// Puts the report component back to its defaults (for death tests: abort, stderr).
inline void default_report_policy() {
  set_on_error(OnError::kAbort);
  set_report_hook(nullptr, nullptr);
  set_report_writer(nullptr);
}

}  // namespace kmm::test
