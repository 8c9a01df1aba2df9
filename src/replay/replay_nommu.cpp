// kmm/replay/replay_nommu.cpp — the uClinux process-memory policies of the replay: simple,
// smalloc, heap (src/nommu), one process per replay.
//
// The machine: mmu=off, kmalloc=kmalloc2 over page_alloc=range with the seed's direction
// rule (document 002's uClinux). The process is spawned with the policy's malloc; the trace's
// calls become its malloc/free/realloc. Footprint is measured as for every kernel policy:
// frames taken from the page allocator since boot (data blocks, chunks or the heap, and the
// region records' slab pages). A block's cost is Nommu::footprint (data + its record for
// simple, the block with its header for smalloc and heap).
// Depends on: nommu/, replay/replay_policy.h.
// Invariant: one process ("trace") per policy's machine, spawned at construction; every
// block of the trace is a block of its malloc.
#include <algorithm>

#include "nommu/nommu.h"
#include "replay/replay_policy.h"

namespace kmm::scenario {
namespace {

class NommuPolicy final : public KernelPolicy {
 public:
  ~NommuPolicy() override {
    if (k_ != nullptr) nommu_.shutdown();
  }
  bool start(MallocKind kind, std::uint64_t heap_bytes, std::string* err) {
    NommuConfig nc;
    nc.indexed = true;
    if (!nommu_.init(k_, nc)) {
      *err = "the NOMMU model could not start (no memory for its records)";
      return false;
    }
    NommuError e = NommuError::kOk;
    pid_ = nommu_.spawn("trace", kind, static_cast<std::size_t>(heap_bytes), &e);
    if (pid_ == 0) {
      *err = std::string("spawn failed: ") + nommu_error_text(e);
      return false;
    }
    heap_bytes_ = heap_bytes;
    return true;
  }
  // The fixed heap is all a heap process has; the others ask the kernel's kmalloc.
  std::uint64_t max_request() const override { return heap_bytes_ != 0 ? heap_bytes_ : KernelPolicy::max_request(); }
  Handle alloc(std::uint64_t size, unsigned align_log2, std::uint64_t* cost) override {
    NommuError e = NommuError::kOk;
    void* p = nommu_.malloc(pid_, static_cast<std::size_t>(std::max<std::uint64_t>(1, padded(size, align_log2))), &e);
    if (p == nullptr) return 0;
    *cost = nommu_.footprint(pid_, p);
    return reinterpret_cast<Handle>(p);
  }
  void free(Handle h, std::uint64_t, std::uint64_t) override { nommu_.free(pid_, reinterpret_cast<void*>(h)); }
  Handle realloc(Handle h, std::uint64_t, std::uint64_t, std::uint64_t size, unsigned align_log2,
                 std::uint64_t* cost) override {
    NommuError e = NommuError::kOk;
    void* p = nommu_.realloc(pid_, reinterpret_cast<void*>(h),
                             static_cast<std::size_t>(std::max<std::uint64_t>(1, padded(size, align_log2))), &e);
    if (p == nullptr) return 0;
    *cost = nommu_.footprint(pid_, p);
    return reinterpret_cast<Handle>(p);
  }
  bool check(std::string* why) override {
    StackText<512> sink;
    bool ok = nommu_.check_invariants(&sink) && k_->check_invariants(&sink);
    if (!ok) *why = sink.data();
    return ok;
  }

 private:
  Nommu nommu_;
  int pid_ = 0;
  std::uint64_t heap_bytes_ = 0;  // the heap policy's fixed heap (0: the others)
};

}  // namespace

std::unique_ptr<Policy> make_nommu_policy(const std::string& name, const ReplayConfig& cfg, const Trace& t,
                                          std::string* err) {
  BootConfig bc;
  bc.ram_bytes = cfg.ram_bytes;
  bc.mmu = false;
  bc.kmalloc = kmm::KmallocPolicy::kKmalloc2;
  bc.page_alloc = PageAllocKind::kRange;
  bc.range_direction = RangeDirection::kSeed;
  auto p = std::make_unique<NommuPolicy>();
  if (!p->boot(bc, err)) return nullptr;
  MallocKind kind = name == "simple"    ? MallocKind::kSimple
                    : name == "smalloc" ? MallocKind::kSmalloc
                                        : MallocKind::kHeap;
  std::uint64_t heap = cfg.heap_bytes;
  if (heap == 0) {
    heap = t.peak_live_bytes + t.peak_live_bytes / 4 + (64 << 10);
    heap = std::min<std::uint64_t>(heap, kPageSize << kMaxOrder);
    // On a small machine: what fits, leaving 32K for the records and the process table.
    std::uint64_t room = p->largest_free() > (48u << 10) ? p->largest_free() - (32u << 10) : (16u << 10);
    heap = std::min(heap, room) & ~std::uint64_t{kPageSize - 1};
  }
  heap = (heap + kPageSize - 1) & ~std::uint64_t{kPageSize - 1};
  if (!p->start(kind, kind == MallocKind::kHeap ? heap : 0, err)) return nullptr;
  return p;
}

}  // namespace kmm::scenario
