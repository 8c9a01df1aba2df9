// kmm/protect/collector.cpp — passes, slices, the reachability scan, the log line.
#include "protect/collector.h"

#include <cstring>
#include <initializer_list>  // for (x : {a, b}); not pulled in by a freestanding <cstring>

#include "base/bits.h"
#include "base/text.h"

namespace kmm {

void Collector::init(ModuleRegistry* modules, Kmalloc* kmalloc, ProtectorMode mode, std::uint64_t gc_delay_ns,
                     LogFn log, void* log_arg) {
  modules_ = modules;
  kmalloc_ = kmalloc;
  slab_ = kmalloc->slab();
  phys_ = slab_->phys();
  mode_ = mode;
  delay_ns_ = gc_delay_ns;
  log_ = log;
  log_arg_ = log_arg;
  phase_ = Phase::kIdle;
  last_end_ns_ = 0;
}

void Collector::add_space(OwnedSpace* s) {
  if (nr_spaces_ < kMaxSpaces) spaces_[nr_spaces_++] = s;
}

bool Collector::add_root(const void* p, std::size_t bytes) {
  LockGuard g(lock_);
  if (nr_roots_ >= kMaxRoots) return false;
  roots_[nr_roots_++] = Root{p, bytes};
  return true;
}

void Collector::remove_root(const void* p) {
  LockGuard g(lock_);
  for (unsigned i = 0; i < nr_roots_; ++i) {
    if (roots_[i].p == p) {
      roots_[i] = roots_[--nr_roots_];
      return;
    }
  }
}

bool Collector::due(std::uint64_t now_ns) const {
  if (phase_ != Phase::kIdle) return true;
  if (mode_ == ProtectorMode::kOff) return false;
  if (modules_->nr_gone() == 0) return false;
  return __atomic_load_n(&kicked_, __ATOMIC_RELAXED) || now_ns >= next_due_ns();
}

// --- reachability bitmaps -----------------------------------------------------------------

bool Collector::bitmap_alloc() {
  // Over the RAM online now, not the whole reservation (8 GiB in the preload shim: 256 MiB
  // of bitmap): every block of a dead owner was allocated before this pass began, so it lies
  // below the online end; a block above it is never a dead one (see test_and_set).
  std::uint64_t online = std::uint64_t{phys_->online_end_pfn() - phys_->base_pfn()} << kPageShift;
  bitmap_bytes_ = online;
  std::uint64_t bytes = online / 32;  // 2 bits per 8-byte granule
  if (bytes == 0) bytes = 1;
  if (provider_ != nullptr) {
    // A provider that marks in snapshots: the copy must write marks the process can read.
    std::size_t total = sizeof(SnapshotResults) + static_cast<std::size_t>(bytes);
    void* m = provider_->map_shared(total);
    if (m != nullptr) {
      shared_ = static_cast<SnapshotResults*>(m);
      flat_ = static_cast<std::uint8_t*>(m) + sizeof(SnapshotResults);
      shared_bytes_ = total;
      return true;
    }
  }
  chunk_order_ = get_order(bytes);
  if (chunk_order_ > kMaxOrder) chunk_order_ = kMaxOrder;
  std::uint64_t chunk_bytes = kPageSize << chunk_order_;
  std::uint64_t n = (bytes + chunk_bytes - 1) / chunk_bytes;
  if (n > kMaxBitmapChunks) return false;
  for (nr_chunks_ = 0; nr_chunks_ < n; ++nr_chunks_) {
    Page* p = slab_->zone()->alloc_pages(chunk_order_, __GFP_ZERO | __GFP_HIGH | __GFP_NOWARN);
    if (p == nullptr) {
      bitmap_free();
      return false;
    }
    p->set_flags(PG_reserved);
    chunks_[nr_chunks_] = p;
  }
  return true;
}

void Collector::bitmap_free() {
  if (shared_ != nullptr) {
    provider_->unmap_shared(shared_, shared_bytes_);
    shared_ = nullptr;
    flat_ = nullptr;
    shared_bytes_ = 0;
    return;
  }
  for (unsigned i = 0; i < nr_chunks_; ++i) {
    chunks_[i]->set_flags(0);
    slab_->zone()->free_pages(chunks_[i], chunk_order_);
  }
  nr_chunks_ = 0;
}

std::uint8_t* Collector::bitmap_byte(std::uint64_t bitno) const {
  if (flat_ != nullptr) return flat_ + bitno / 8;
  std::uint64_t chunk_bits = (kPageSize << chunk_order_) * 8;
  auto* bytes = static_cast<std::uint8_t*>(phys_->page_address(chunks_[bitno / chunk_bits]));
  return bytes + (bitno % chunk_bits) / 8;
}

bool Collector::test_and_set(const void* block, unsigned bit) {
  auto off = static_cast<std::uint64_t>(static_cast<const char*>(block) - phys_->base());
  if (off >= bitmap_bytes_) return true;  // not a dead block (see bitmap_alloc): never marked
  std::uint64_t bitno = off / 8 * 2 + bit;
  std::uint8_t* byte = bitmap_byte(bitno);
  auto mask = static_cast<std::uint8_t>(1u << (bitno % 8));
  bool was = (*byte & mask) != 0;
  *byte = static_cast<std::uint8_t>(*byte | mask);
  return was;
}

bool Collector::space_test_and_set(OwnedSpace* s, void* key, unsigned bit) {
  return phys_->owns(key) ? test_and_set(key, bit) : s->mark_bit(key, bit, true);
}

bool Collector::space_test(OwnedSpace* s, void* key, unsigned bit) {
  return phys_->owns(key) ? test(key, bit) : s->mark_bit(key, bit, false);
}

bool Collector::test(const void* block, unsigned bit) const {
  auto off = static_cast<std::uint64_t>(static_cast<const char*>(block) - phys_->base());
  if (off >= bitmap_bytes_) return true;  // beyond the bitmap: counted as referenced, never freed
  std::uint64_t bitno = off / 8 * 2 + bit;
  return (*bitmap_byte(bitno) >> (bitno % 8)) & 1u;
}

void Collector::mark_pointer(std::uintptr_t w) {
  const void* p = reinterpret_cast<const void*>(w);
  if (!phys_->owns(p)) {
    for (unsigned i = 0; i < nr_spaces_; ++i) {
      void* key;
      owner_t owner;
      // Space blocks are marked through their key (first backing frame's address).
      if (spaces_[i]->find_block(w, &key, &owner) && dead_[owner]) {
        if (!space_test_and_set(spaces_[i], key, 0)) new_marks_ = true;
      }
    }
    return;
  }
  Page* page = phys_->virt_to_page(p);
  if (page->is(PG_slab)) {
    SlabAllocator::ObjectInfo info;
    if (!slab_->lookup(p, &info) || info.index >= info.cache->objects || !dead_[info.owner]) return;
    const char* start = static_cast<char*>(slab_->slab_base(info.slab)) + std::size_t{info.index} * info.cache->size;
    if (!test_and_set(start, 0)) new_marks_ = true;
  } else if (page->is(PG_large)) {
    Page* head = phys_->compound_head(page);
    if (!dead_[head->get_owner()]) return;
    if (!test_and_set(phys_->page_address(head), 0)) new_marks_ = true;
  }
}

// The conservative scan reads live memory that its owners may be writing at the same moment,
// as kmemleak does (the kernel marks those reads data_race()). That race is the method, not a
// bug: a word read torn or stale is at worst a false reference (a block spared) or a missed
// one. So the scan is exempt from ThreadSanitizer, and reads words directly (memcpy would go
// through the sanitizer's interceptor). Exactness needs the mutators quiet during the mark
// phase, which they are in the modelled machine; docs/RELIABILITY.md says what that means in
// a live process.
using scan_word_t = std::uintptr_t __attribute__((may_alias));

__attribute__((no_sanitize("thread"))) void Collector::scan_range(const void* p, std::size_t bytes) {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  std::uintptr_t first = (a + sizeof(void*) - 1) & ~(std::uintptr_t{sizeof(void*)} - 1);
  std::uintptr_t end = a + bytes;
  std::uintptr_t lo = reinterpret_cast<std::uintptr_t>(phys_->base());
  std::uintptr_t span = phys_->size();
  for (std::uintptr_t at = first; at + sizeof(void*) <= end; at += sizeof(void*)) {
    std::uintptr_t w = *reinterpret_cast<const volatile scan_word_t*>(at);
    if (w - lo < span || w - space_lo_ < space_span_) mark_pointer(w);
  }
  stats_.scanned_bytes += bytes;
}

// --- one block of a dead owner, in the sweep -----------------------------------------------

void Collector::dead_block(void* addr, std::size_t bytes, owner_t owner, bool* freed, OwnedSpace* space) {
  *freed = false;
  bool marked = scan_this_pass_ && (space != nullptr ? space_test(space, addr, 0) : phys_->owns(addr) && test(addr, 0));
  if (marked) {
    referenced_[owner].objects++;
    referenced_[owner].bytes += bytes;
    return;
  }
  // reclaim-unreachable without its scan (no bitmap, or a world that would not stop) only
  // reports: it cannot tell a referenced block from a leak.
  if (reclaiming()) {
    freed_[owner].objects++;
    freed_[owner].bytes += bytes;
    *freed = true;
    return;
  }
  kept_[owner].objects++;
  kept_[owner].bytes += bytes;
}

void Collector::visit_slab(Page* head) {
  KmemCache* c = slab_->cache(head->get_cache_id());
  if (c == nullptr) return;
  // With the world stopped, a cache lock that is taken belongs to a parked thread: waiting
  // would never end. The mark only reads owner bytes and objects, which a parked thread
  // cannot change, so it goes on without the lock (the sweep never runs stopped).
  bool locked = true;
  if (world_stopped_)
    locked = c->lock.try_lock();
  else
    c->lock.lock();
  struct Unlock {
    SpinLock* l;
    ~Unlock() {
      if (l != nullptr) l->unlock();
    }
  } unlock{locked ? &c->lock : nullptr};
  // Re-check under the lock: the slab may have gone since we read its descriptor.
  if (!head->is(PG_slab) || !head->is(PG_head) || head->get_cache_id() != c->id) return;
  char* base = static_cast<char*>(slab_->slab_base(head));
  unsigned objects = c->objects;
  for (unsigned i = 0; i < objects; ++i) {
    owner_t o = __atomic_load_n(slab_->owner_slot(c, head, i), __ATOMIC_RELAXED);
    if (o == kOwnerFree) continue;
    char* obj = base + std::size_t{i} * c->size;
    switch (phase_) {
      case Phase::kMarkLive:
        if (!dead_[o] && (c->flags & SLAB_NOLEAKTRACE) == 0) scan_range(obj, c->object_size);
        break;
      case Phase::kMarkDead:
        if (dead_[o] && test(obj, 0) && !test_and_set(obj, 1)) scan_range(obj, c->object_size);
        break;
      case Phase::kSweep:
        if (dead_[o]) {
          // Claimed first, as a large block is: a kfree of this object racing with the pass
          // (a thread still freeing a gone module's memory) exchanges the same owner byte,
          // so exactly one of the two frees the slot; the loser sees kOwnerFree.
          bool spared = scan_this_pass_ && test(obj, 0);
          if (reclaiming() && !spared && !slab_->claim_slot(c, head, i, o)) break;
          bool freed;
          dead_block(obj, c->size, o, &freed);
          // A slab a thread owns takes the slot on its remote list (its counts are the
          // owner's); one owned by none may go back to the buddy allocator with it.
          if (freed && slab_->free_claimed_slot_locked(c, head, i)) return;
        }
        break;
      case Phase::kIdle:
        break;
    }
  }
}

void Collector::visit_large(Page* head) {
  owner_t o = head->get_owner();
  void* addr = phys_->page_address(head);
  std::size_t bytes = Kmalloc::large_usable_bytes(head);  // never the guard frame
  switch (phase_) {
    case Phase::kMarkLive:
      if (o != kOwnerFree && !dead_[o]) scan_range(addr, bytes);
      break;
    case Phase::kMarkDead:
      if (dead_[o] && test(addr, 0) && !test_and_set(addr, 1)) scan_range(addr, bytes);
      break;
    case Phase::kSweep:
      if (dead_[o]) {
        bool freed;
        // A block to free is claimed first: a kfree racing with this pass (the kernel may
        // free any block), or the block's reuse since we read it, means it is not ours.
        bool spared = scan_this_pass_ && test(addr, 0);
        if (reclaiming() && !spared && !head->claim_owner_if(o)) break;
        dead_block(addr, bytes, o, &freed);
        if (freed) kmalloc_->free_large(head);
      }
      break;
    case Phase::kIdle:
      break;
  }
}

void Collector::visit_spaces() {
  for (unsigned i = 0; i < nr_spaces_; ++i) {
    struct Ctx {
      Collector* c;
      OwnedSpace* s;
    } ctx{this, spaces_[i]};
    spaces_[i]->for_each_block(
        [](void* arg, void* addr, std::size_t bytes, owner_t o, void* handle) {
          auto* x = static_cast<Ctx*>(arg);
          Collector* self = x->c;
          auto scan = [](void* a, const void* piece, std::size_t n) {
            static_cast<Collector*>(a)->scan_range(piece, n);
          };
          switch (self->phase_) {
            case Phase::kMarkLive:
              if (!self->dead_[o]) x->s->for_each_piece(handle, scan, self);
              break;
            case Phase::kMarkDead:
              if (self->dead_[o] && self->space_test(x->s, addr, 0) && !self->space_test_and_set(x->s, addr, 1))
                x->s->for_each_piece(handle, scan, self);
              break;
            case Phase::kSweep:
              if (self->dead_[o]) {
                bool freed;
                self->dead_block(addr, bytes, o, &freed, x->s);
                if (freed) x->s->free_block(handle);
              }
              break;
            case Phase::kIdle:
              break;
          }
        },
        &ctx);
  }
}

std::uint32_t Collector::walk(std::uint32_t budget) {
  std::uint32_t done = 0;
  pfn_t end = phys_->online_end_pfn();
  while (cursor_ < end && done < budget) {
    Page* page = phys_->pfn_to_page(cursor_);
    std::uint32_t step = 1;
    // Acquire: a head's other fields are valid once its flags are (Page::publish_flags). A
    // block that changes under us is at worst stepped over; the next pass sees it.
    std::uint32_t f = page->get_flags_acquire();
    auto order_step = [page] {
      unsigned order = page->get_order();
      return order <= kMaxOrder ? 1u << order : 0u;
    };
    if ((f & PG_slab) && (f & PG_head)) {
      step = order_step();
      visit_slab(page);
    } else if ((f & PG_large) && (f & PG_head)) {
      step = page->get_nr_pages();
      visit_large(page);
    } else if (f & PG_buddy) {
      step = order_step();
    }
    // The length is read after the flags: a frame freed and reused in between holds another
    // block's words there (a slab's state word, owner bytes), and a step past the largest
    // block would skip the rest of memory. Such a step, or flags that changed meanwhile, is a
    // step of one frame: the walk goes on, and the next pass sees what changed.
    if (step == 0 || step > (1u << kMaxOrder) || page->get_flags_acquire() != f) step = 1;
    cursor_ += step;
    done += step;
  }
  return done;
}

void Collector::begin(std::uint64_t now_ns) {
  modules_->dead_owners(dead_);
  // Frees of these owners' objects racing this pass must claim them by exchange: mark the
  // owners gone, then wait out the frees that read them live (SlabAllocator::fence_module_frees).
  bool any_dead = false;
  for (unsigned o = kOwnerFirstModule; o < kMaxOwners && !any_dead; ++o) any_dead = dead_[o];
  if (any_dead) {
    slab_->mark_owners_gone(dead_);
    slab_->fence_module_frees();
  }
  std::memset(freed_, 0, sizeof freed_);
  std::memset(kept_, 0, sizeof kept_);
  std::memset(referenced_, 0, sizeof referenced_);
  pass_start_ns_ = now_ns;
  __atomic_store_n(&kicked_, false, __ATOMIC_RELAXED);
  cursor_ = phys_->base_pfn();
  scan_this_pass_ = false;
  if (mode_ == ProtectorMode::kReclaimUnreachable) {
    if (bitmap_alloc()) {
      scan_this_pass_ = true;
    } else if (log_ != nullptr) {
      StackText<160> line;
      line.str("kmm-gc: no memory for the reachability bitmap; this pass only reports").nl();
      log_(log_arg_, line.data(), line.size());
    }
  }
  if (scan_this_pass_ && provider_ != nullptr) {
    // A real process: its threads are parked for the whole mark (slice() runs it in one go).
    world_stopped_ = provider_->stop_world();
    if (world_stopped_) {
      stats_.world_stops++;
    } else {
      stats_.world_stop_failures++;
      bitmap_free();
      scan_this_pass_ = false;
      if (log_ != nullptr) {
        StackText<160> line;
        line.str("kmm-gc: could not stop every thread for the scan; this pass only reports").nl();
        log_(log_arg_, line.data(), line.size());
      }
    }
  }
  if (scan_this_pass_) {
    phase_ = Phase::kMarkLive;
    prepare_mark();
    if (world_stopped_) begin_stopped_mark();
  } else {
    phase_ = Phase::kSweep;
  }
}

void Collector::prepare_mark() {
  std::uintptr_t lo = ~std::uintptr_t{0}, hi = 0;
  for (unsigned i = 0; i < nr_spaces_; ++i) {
    spaces_[i]->begin_mark();
    std::uintptr_t a, b;
    spaces_[i]->address_range(&a, &b);
    if (a >= b) continue;
    if (a < lo) lo = a;
    if (b > hi) hi = b;
  }
  space_lo_ = lo;
  space_span_ = hi > lo ? hi - lo : 0;
  for (unsigned i = 0; i < nr_roots_; ++i) scan_range(roots_[i].p, roots_[i].bytes);
}

void Collector::begin_stopped_mark() {
  auto report_only = [&](const char* why) {
    stats_.world_stop_failures++;
    bitmap_free();
    scan_this_pass_ = false;
    phase_ = Phase::kSweep;
    if (log_ != nullptr) {
      StackText<200> line;
      line.str("kmm-gc: ").str(why).str("; this pass only reports").nl();
      log_(log_arg_, line.data(), line.size());
    }
  };
  if (flat_ != nullptr) {
    switch (provider_->mark_in_snapshot(this, &Collector::snapshot_mark)) {
      case RootProvider::Snapshot::kDone:
        // The world runs again; the marks are in the shared bitmap and the results.
        world_stopped_ = false;
        stats_.snapshot_marks++;
        import_snapshot();
        phase_ = Phase::kSweep;
        cursor_ = phys_->base_pfn();
        return;
      case RootProvider::Snapshot::kFailed:
        // The world runs again and the copy's marks cannot be trusted: mark in place, with
        // the world stopped anew.
        stats_.snapshot_failures++;
        std::memset(flat_, 0, shared_bytes_ - sizeof(SnapshotResults));
        world_stopped_ = provider_->stop_world();
        if (!world_stopped_) {
          report_only("could not stop every thread for the scan");
          return;
        }
        prepare_mark();
        break;
      case RootProvider::Snapshot::kUnsupported:
        break;  // the world is still stopped: mark in place
    }
  }
  if (!provider_->scan_roots(this)) {
    world_stopped_ = false;
    provider_->start_world();
    report_only("could not read every root of the process");
    return;
  }
  // In place: the whole mark with the world stopped, then the world goes on; the sweep is sliced.
  mark_to_fixed_point();
  world_stopped_ = false;
  provider_->start_world();
  phase_ = Phase::kSweep;
  cursor_ = phys_->base_pfn();
}

// In the snapshot's copy (a forked process: one thread, memory frozen at the stop). Nothing it
// changes but the shared bitmap and results reaches the process.
bool Collector::snapshot_mark(Collector* self) {
  std::uint64_t scanned_before = self->stats_.scanned_bytes;
  if (!self->provider_->scan_roots(self)) return false;
  self->mark_to_fixed_point();
  SnapshotResults* r = self->shared_;
  r->scanned_bytes = self->stats_.scanned_bytes - scanned_before;
  return self->export_space_marks(r);
}

// The live blocks' words, then the marked dead blocks' until no new block is marked: what
// slice() does over several calls for the modelled machine, in one go (a stopped world, in
// place or in a snapshot's copy).
void Collector::mark_to_fixed_point() {
  cursor_ = phys_->base_pfn();
  phase_ = Phase::kMarkLive;
  for (;;) {
    walk(~std::uint32_t{0});
    visit_spaces();
    cursor_ = phys_->base_pfn();
    if (phase_ == Phase::kMarkLive) {
      phase_ = Phase::kMarkDead;
    } else if (!new_marks_) {
      return;
    }
    new_marks_ = false;
  }
}

bool Collector::export_space_marks(SnapshotResults* r) {
  struct Ctx {
    Collector* c;
    OwnedSpace* s;
    SnapshotResults* r;
    std::uint32_t n;
    bool overflow;
  } ctx{this, nullptr, r, 0, false};
  for (unsigned i = 0; i < nr_spaces_; ++i) {
    ctx.s = spaces_[i];
    ctx.s->for_each_block(
        [](void* arg, void* key, std::size_t, owner_t, void*) {
          auto* x = static_cast<Ctx*>(arg);
          if (x->c->phys_->owns(key) || !x->s->mark_bit(key, 0, false)) return;  // RAM keys: the bitmap
          if (x->n == SnapshotResults::kMaxSpaceMarks) {
            x->overflow = true;
            return;
          }
          x->r->space_marks[x->n++] = x->s->block_address(key);
        },
        &ctx);
    r->space_end[i] = ctx.n;
  }
  return !ctx.overflow;
}

void Collector::import_snapshot() {
  stats_.scanned_bytes += shared_->scanned_bytes;
  std::uint32_t from = 0;
  for (unsigned i = 0; i < nr_spaces_; ++i) {
    std::uint32_t to = shared_->space_end[i];
    spaces_[i]->import_marks(shared_->space_marks + from, to - from);
    from = to;
  }
}

void Collector::finish(std::uint64_t now_ns) {
  if (scan_this_pass_) bitmap_free();
  stats_.passes++;
  stats_.leak_objects = stats_.leak_bytes = 0;
  stats_.referenced_objects = stats_.referenced_bytes = 0;
  OwnerTally freed_all{0, 0};
  StackText<1024> detail;
  bool anything_new = false;
  for (unsigned o = 0; o < kMaxOwners; ++o) {
    if (!dead_[o]) continue;
    const Module* m = modules_->module(static_cast<owner_t>(o));
    bool reported_before = m != nullptr && m->leaks_reported;
    freed_all.objects += freed_[o].objects;
    freed_all.bytes += freed_[o].bytes;
    stats_.leak_objects += kept_[o].objects + referenced_[o].objects;
    stats_.leak_bytes += kept_[o].bytes + referenced_[o].bytes;
    stats_.referenced_objects += referenced_[o].objects;
    stats_.referenced_bytes += referenced_[o].bytes;
    bool news = freed_[o].objects != 0 || (!reported_before && (kept_[o].objects + referenced_[o].objects) != 0);
    if (news) {
      anything_new = true;
      detail.str(" ").str(modules_->owner_name(static_cast<owner_t>(o)));
      if (freed_[o].objects) detail.str(" freed ").u(freed_[o].objects).str("/").u(freed_[o].bytes);
      if (kept_[o].objects) detail.str(" leaked ").u(kept_[o].objects).str("/").u(kept_[o].bytes);
      if (referenced_[o].objects) detail.str(" referenced ").u(referenced_[o].objects).str("/").u(referenced_[o].bytes);
      detail.str(";");
    }
    if (kept_[o].objects + referenced_[o].objects != 0) {
      modules_->mark_reported(static_cast<owner_t>(o));
    } else {
      modules_->release(static_cast<owner_t>(o));
    }
  }
  stats_.reclaimed_objects += freed_all.objects;
  stats_.reclaimed_bytes += freed_all.bytes;
  if (anything_new && log_ != nullptr) {
    StackText<1200> line;
    line.ch('[').u(now_ns / 1000000000ull, 5).ch('.');
    StackText<8> us;
    us.u((now_ns / 1000ull) % 1000000ull);
    line.repeat('0', 6 - us.size()).str(us.data()).str("] GCONLINUX activated: pass ").u(stats_.passes);
    line.str(" (").str(protector_mode_name(mode_)).str(") reclaimed ").u(freed_all.objects).str(" objects (");
    line.u(freed_all.bytes).str(" bytes); objects/bytes by module:").str(detail.data()).nl();
    log_(log_arg_, line.data(), line.size());
  }
  phase_ = Phase::kIdle;
  last_end_ns_ = now_ns;
}

bool Collector::slice(std::uint64_t now_ns) {
  LockGuard g(lock_);
  if (phase_ == Phase::kIdle) {
    if (!due(now_ns)) return true;
    begin(now_ns);
  }
  stats_.slices++;
  // A provider's mark ran whole in begin() (begin_stopped_mark); what is left is sliced.
  std::uint32_t done = walk(slice_pages_);
  if (done > longest_slice_pages_) longest_slice_pages_ = done;
  if (cursor_ < phys_->online_end_pfn()) return false;
  // Blocks of spaces above the slab layer (vmalloc, the shim's huge blocks): one visit per phase.
  visit_spaces();
  cursor_ = phys_->base_pfn();
  switch (phase_) {
    case Phase::kMarkLive:
      phase_ = Phase::kMarkDead;
      break;
    case Phase::kMarkDead:
      if (!new_marks_) phase_ = Phase::kSweep;
      break;
    case Phase::kSweep:
      finish(now_ns);
      return true;
    case Phase::kIdle:
      break;
  }
  new_marks_ = false;
  return false;
}

void Collector::run_pass(std::uint64_t now_ns) {
  if (!due(now_ns)) return;
  while (!slice(now_ns)) {
  }
}

}  // namespace kmm
