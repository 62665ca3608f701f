#include "sim_runtime.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <sstream>
#include <thread>

#include "sim_events.h"

namespace ascend_sim {

namespace {
thread_local ThreadCtx* t_ctx = nullptr;

const char* basename_of(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}
}  // namespace

std::string where(const Loc& loc) { return std::string(basename_of(loc.file)) + ":" + std::to_string(loc.line); }

const char* pipe_name(Pipe p) {
  static const char* names[] = {"S", "V", "M", "MTE1", "MTE2", "MTE3", "FIX", "Matmul"};
  return names[size_t(p)];
}

const char* access_name(AccessKind k) {
  static const char* names[] = {"read", "write", "atomic add"};
  return names[size_t(k)];
}

const char* memory_name(Memory m) {
  static const char* names[] = {"UB", "L1", "L0A", "L0B", "L0C"};
  return names[size_t(m)];
}

std::string ThreadCtx::describe() const {
  const bool mix = launch && launch->type() == KernelType::kMixAic1To2;
  return type == CoreType::kAic ? "AIC " + std::to_string(core) : "AIV " + std::to_string(mix ? 2 * core + sub : core);
}

[[noreturn]] void fail(const Loc& loc, const std::string& message) {
  std::ostringstream s;
  s << "Ascend C simulator: " << message << " (at " << where(loc);
  if (t_ctx) s << ", " << t_ctx->describe();
  s << ")";
  throw SimError(s.str());
}

ThreadCtx& ctx() {
  if (!t_ctx) throw SimError("Ascend C simulator: a kernel API was called outside a simulated launch");
  return *t_ctx;
}

bool dry_run() { return ctx().launch->is_dry_run(); }

void record_local(ThreadCtx& c, Memory m, uint64_t lo, uint64_t hi, bool write, const Access& a) {
  const AccessKind kind = write ? AccessKind::kWrite : AccessKind::kRead;
  c.local[size_t(m)].access(
      lo, hi, kind, a, [&](const Access& e) { return c.sync.ordered(e, a); },
      [&](const Access& e, AccessKind e_kind, uint64_t l, uint64_t h) {
        c.launch->race(c, std::string(memory_name(m)) + " of " + c.describe(), e, e_kind, a, kind, l, h);
      });
}

Launch::Launch(KernelType type, uint32_t block_dim, LaunchOptions options)
    : type_(type), block_dim_(block_dim), options_(options), counters_(block_dim), rng_(options.seed) {
  for (uint32_t core = 0; core < block_dim_; ++core) {
    auto add = [&](CoreType t, uint32_t sub) {
      auto c = std::make_unique<ThreadCtx>();
      c->launch = this;
      c->type = t;
      c->core = core;
      c->sub = sub;
      c->index = uint32_t(contexts_.size());
      c->counters = &counters_[core];
      const bool aic = t == CoreType::kAic;
      c->arenas[int(Memory::kUb)].capacity = aic ? 0 : kUbUsableBytes;
      c->arenas[int(Memory::kL1)].capacity = aic ? kL1UsableBytes : 0;
      c->arenas[int(Memory::kL0a)].capacity = aic ? kL0aBytes : 0;
      c->arenas[int(Memory::kL0b)].capacity = aic ? kL0bBytes : 0;
      c->arenas[int(Memory::kL0c)].capacity = aic ? kL0cBytes : 0;
      contexts_.push_back(std::move(c));
    };
    if (type_ == KernelType::kAicOnly || type_ == KernelType::kMixAic1To2) add(CoreType::kAic, 0);
    if (type_ == KernelType::kMixAic1To2) add(CoreType::kAiv, 0), add(CoreType::kAiv, 1);
    if (type_ == KernelType::kAivOnly || type_ == KernelType::kMixAiv1To0) add(CoreType::kAiv, 0);
  }
}

Launch::~Launch() = default;

void Launch::add_buffer(const uint8_t* base, uint64_t bytes, std::string name, GmRole role) {
  auto b = std::make_unique<GmBuffer>();
  b->base = base, b->bytes = bytes, b->name = std::move(name), b->role = role;
  b->model_base = uint64_t(buffers_.size() + 1) << 40;
  buffers_.push_back(std::move(b));
}

GmBuffer* Launch::find_buffer(const void* p, uint64_t bytes) {
  auto* q = static_cast<const uint8_t*>(p);
  for (auto& buf : buffers_) {
    if (q >= buf->base && q + bytes <= buf->base + buf->bytes) return buf.get();
  }
  return nullptr;
}

void Launch::record_failure(const std::string& message) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!failed_) {
    failed_ = true;
    failure_ = message;
  }
  for (auto& t : contexts_) t->turn.notify_one();
}

void Launch::race(ThreadCtx& c, const std::string& region, const Access& earlier, AccessKind earlier_kind,
                  const Access& now, AccessKind now_kind, uint64_t lo, uint64_t hi) {
  auto describe = [&](const Access& a, AccessKind kind) {
    return contexts_[thread_of(a.comp)]->describe() + " " + pipe_name(pipe_of(a.comp)) + " " + access_name(kind) +
           " at " + where(a.loc);
  };
  std::string hint;
  if (thread_of(earlier.comp) != c.index) {
    hint = "cross-core accesses are ordered only by SyncAll, CrossCoreSetFlag/WaitFlag or Matmul waits";
  } else if (pipe_of(earlier.comp) == pipe_of(now.comp)) {
    hint = std::string("DMA to overlapping addresses on one pipe needs PipeBarrier<PIPE_") +
           pipe_name(pipe_of(now.comp)) + "> (PipeBarrier(ISASI).md)";
  } else {
    hint =
        "pipes are ordered only by SetFlag/WaitFlag, TQue events (EnQue/DeQue, AllocTensor/FreeTensor), "
        "PipeBarrier or Matmul waits";
  }
  fail(now.loc, "data race on " + region + " bytes [" + std::to_string(lo) + ", " + std::to_string(hi) + "): " +
                    describe(earlier, earlier_kind) + " and " + describe(now, now_kind) + " are not ordered; " + hint);
}

void Launch::gm_access(GmBuffer& b, uint64_t lo, uint64_t hi, AccessKind kind, const Access& a, bool scalar) {
  ThreadCtx& c = ctx();
  const bool write = kind != AccessKind::kRead;
  const uint8_t* p = b.base + lo;
  const uint64_t addr = b.model_base + lo;
  // The time model: the scalar unit's data cache, or the bytes a DMA (or the cube) finds in the L2.
  if (scalar) {
    const bool hit = write ? caches_.scalar_write(c.index, b.name.c_str(), b.base, p, hi - lo, a.loc)
                           : caches_.scalar_read(c.index, b.name.c_str(), b.base, p, hi - lo, a.loc);
    if (c.instr) c.instr->scalar_gm(hit);
    if (!hit && c.instr) {
      const uint64_t line = addr / kCacheLineBytes * kCacheLineBytes, in_l2 = l2_.touch(line, kCacheLineBytes);
      c.instr->add_gm(in_l2, kCacheLineBytes - in_l2);
    }
  } else {
    const uint64_t in_l2 = l2_.touch(addr, hi - lo);
    c.counters->l2_hit_bytes += in_l2;
    c.counters->l2_miss_bytes += (hi - lo) - in_l2;
    if (c.instr) c.instr->add_gm(in_l2, (hi - lo) - in_l2);
  }
  if (b.role == GmRole::kInput) {
    check(!write, a.loc, [&] { return "the kernel writes GM '" + b.name + "', an input buffer of the launch"; });
    return;  // nobody writes inputs, so their reads cannot race
  }
  if (!scalar) {
    const std::string what = std::string(pipe_name(pipe_of(a.comp)));
    if (write) {
      caches_.dma_write(c.index, what.c_str(), b.name.c_str(), b.base, p, hi - lo, a.loc);
    } else {
      caches_.dma_read(c.index, what.c_str(), b.name.c_str(), b.base, p, hi - lo, a.loc);
    }
  }
  if (scalar && write) {
    // A dirty line is written back whole, over whatever other cores wrote to its other bytes meanwhile: for the race
    // detector a scalar write covers its whole 64-byte line.
    const uint64_t base = uint64_t(reinterpret_cast<uintptr_t>(b.base));
    const uint64_t first = (base + lo) / kCacheLineBytes * kCacheLineBytes;
    const uint64_t end = (base + hi + kCacheLineBytes - 1) / kCacheLineBytes * kCacheLineBytes;
    lo = first > base ? first - base : 0;
    hi = std::min<uint64_t>(b.bytes, end - base);
  }
  std::lock_guard<std::mutex> lock(b.mutex);
  // GM holds whatever an earlier kernel left until this launch writes it: an atomic add onto such bytes, or the cube
  // multiplying them, folds that garbage into the result (Matmul高阶API使能多核切K.md: without zeroing the GM first,
  // AtomicAdd accumulates its original invalid data). Outputs and the workspace start poisoned, so such a read would
  // only show as NaN in the output; this names it. (The vector may read bytes it then masks, so its reads are not
  // checked.)
  const bool folds = kind == AccessKind::kAtomicAdd || (kind == AccessKind::kRead && pipe_of(a.comp) == Pipe::kMm);
  if (folds && (b.role == GmRole::kScratch || b.role == GmRole::kOutput)) {
    check(b.shadow.written(lo, hi), a.loc, [&] {
      return std::string(kind == AccessKind::kAtomicAdd ? "an atomic add onto" : "the cube reads") + " GM '" + b.name +
             "' bytes [" + std::to_string(lo) + ", " + std::to_string(hi) +
             ") that nothing in this launch has written (GM keeps whatever an earlier kernel left there)";
    });
  }
  b.shadow.access(
      lo, hi, kind, a, [&](const Access& e) { return c.sync.ordered(e, a); },
      [&](const Access& e, AccessKind e_kind, uint64_t l, uint64_t h) {
        race(c, "GM '" + b.name + "'", e, e_kind, a, kind, l, h);
      });
}

void Launch::clean_invalidate(GmBuffer* b, uint64_t offset, bool entire, const Loc& loc) {
  caches_.clean_invalidate(ctx().index, b ? b->base + offset : nullptr, entire, loc);
}

bool Launch::runnable(const ThreadCtx& t) const {
  if (exited_[t.index]) return false;
  for (const Waiter* w : waiters_) {
    if (w->thread == &t) return (*w->ready)();
  }
  return true;
}

[[noreturn]] void Launch::deadlock(std::unique_lock<std::mutex>&) {
  std::ostringstream s;
  s << "Ascend C simulator: deadlock: every live thread is blocked and nothing can release them:";
  for (const Waiter* w : waiters_) s << " " << w->thread->describe() << " waits in " << w->what << ";";
  if (!failed_) {
    failed_ = true;
    failure_ = s.str();
  }
  for (auto& t : contexts_) t->turn.notify_one();
  throw SimError("");
}

bool Launch::hand_over(ThreadCtx& c) {
  std::vector<uint32_t> candidates;
  const ThreadCtx* earliest = nullptr;
  for (const auto& t : contexts_) {
    if (t.get() == &c || !runnable(*t)) continue;
    candidates.push_back(t->index);
    if (!earliest || t->times.s < earliest->times.s) earliest = t.get();
  }
  if (candidates.empty()) return false;
  running_ = options_.seeded ? candidates[rng_() % candidates.size()] : earliest->index;
  contexts_[running_]->turn.notify_one();
  return true;
}

void Launch::wait_turn(std::unique_lock<std::mutex>& lock, ThreadCtx& c, const std::function<bool()>& also) {
  c.turn.wait(lock, [&] { return failed_ || (running_ == c.index && also()); });
  if (failed_) throw SimError("");
}

void Launch::wait_until(std::unique_lock<std::mutex>& lock, ThreadCtx& c, const std::string& what,
                        const std::function<bool()>& ready) {
  if (ready()) return;
  Waiter w{&c, &ready, what};
  waiters_.push_back(&w);
  auto leave = [&] { waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &w)); };
  try {
    if (!hand_over(c)) deadlock(lock);  // nobody else can run: nothing will ever release this wait
    wait_turn(lock, c, ready);
  } catch (...) {
    leave();
    throw;
  }
  leave();
}

// A switch point (every instruction): seeded, a random handover now and then; otherwise the thread keeps the baton
// while its scalar unit is no more than the lookahead ahead of the earliest other runnable thread.
void Launch::yield() {
  ThreadCtx& c = ctx();
  std::unique_lock<std::mutex> lock(mutex_);
  if (failed_) throw SimError("");
  if (options_.seeded) {
    if (rng_() % 4 != 0) return;
  } else {
    if ((++yields_ & 15) == 0) {  // now and then: no request can be ready before the earliest thread's time
      double earliest = c.times.s;
      for (const auto& t : contexts_) {
        if (!exited_[t->index]) earliest = std::min(earliest, t->times.s);
      }
      for (Resource& r : port_) r.forget_before(earliest);
      for (Resource& r : cube_) r.forget_before(earliest);
    }
    bool ahead = false;
    for (const auto& t : contexts_) {
      if (t.get() != &c && runnable(*t) && t->times.s + kModelLookaheadCycles < c.times.s) ahead = true;
    }
    if (!ahead) return;
  }
  if (hand_over(c)) wait_turn(lock, c, [] { return true; });
}

void Launch::check_exit(ThreadCtx& c) {
  caches_.check_exit(c.index);
  for (const auto& [key, pending] : c.flags) {
    if (!pending.by_queue) {
      fail(pending.loc, "SetFlag<HardEvent::" + event_name(AscendC::HardEvent(key.first)) + ">(" +
                            std::to_string(key.second) + ") has no matching WaitFlag at kernel exit");
    }
  }
}

void Launch::thread_main(ThreadCtx& c, const std::function<void()>& kernel) {
  t_ctx = &c;
  try {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wait_turn(lock, c, [] { return true; });
    }
    kernel();
    check_exit(c);
  } catch (const SimError& e) {
    if (e.what()[0]) record_failure(e.what());
  } catch (const std::exception& e) {
    record_failure(std::string("Ascend C simulator: ") + e.what());
  }
  {
    std::unique_lock<std::mutex> lock(mutex_);
    exited_[c.index] = 1;
    --live_;
    if (!failed_ && barrier_arrived_ > 0 && (barrier_aiv_only_ ? c.type == CoreType::kAiv : true)) {
      failed_ = true;
      failure_ = "Ascend C simulator: SyncAll at " + where(barrier_loc_) + " reached by " +
                 std::to_string(barrier_arrived_) + " of " + std::to_string(barrier_expected_) + " " +
                 (barrier_aiv_only_ ? "AIVs" : "cores") + ": " + c.describe() + " returned before it";
    }
    try {
      if (failed_) {
        for (auto& t : contexts_) t->turn.notify_one();
      } else if (!hand_over(c) && !waiters_.empty()) {
        deadlock(lock);
      }
    } catch (const SimError&) {
    }
  }
  t_ctx = nullptr;
}

void Launch::run(const std::function<void()>& kernel) {
  const uint32_t n = uint32_t(contexts_.size());
  std::vector<std::string> names;
  for (auto& c : contexts_) {
    c->sync.init(c->index, n, c->type == CoreType::kAiv, &c->times);
    names.push_back(c->describe());
  }
  caches_.init(names);
  barrier_clock_ = Clock(size_t(n) * kPipeCount);
  barrier_result_.assign(n, barrier_clock_);
  barrier_result_time_.assign(n, 0.0);
  exited_.assign(n, 0);
  live_ = n;
  if (!options_.dry_run) {
    // Output and scratch buffers start as NaN / 0xff garbage, so a row the kernel forgets to write fails the test.
    for (auto& b : buffers_) {
      if (b->role == GmRole::kOutput || b->role == GmRole::kScratch)
        std::memset(const_cast<uint8_t*>(b->base), 0xff, b->bytes);
    }
  }
  port_.assign(block_dim_, Resource());
  cube_.assign(block_dim_, Resource());
  running_ = options_.seeded ? uint32_t(rng_() % n) : 0;  // all start at time 0: the earliest is the first
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (auto& c : contexts_) threads.emplace_back([this, &kernel, c = c.get()] { thread_main(*c, kernel); });
  for (auto& t : threads) t.join();
  if (failed_) throw SimError(failure_);
}

void Launch::sync_all(bool aiv_only, const Loc& loc) {
  ThreadCtx& c = ctx();
  check(type_ != KernelType::kAivOnly && type_ != KernelType::kAicOnly, loc, [] {
    return "SyncAll needs the scheduling module of a mix launch: a vector-only kernel must be KERNEL_TYPE_MIX_AIV_1_0 "
           "(__mix__(0, 1)), not AIV_ONLY (SyncAll.md, 约束说明)";
  });
  check(aiv_only || type_ == KernelType::kMixAic1To2, loc,
        [] { return "SyncAll<false> in a vector-only kernel hangs: isAIVOnly must be true (SyncAll.md)"; });
  check(!aiv_only || c.type == CoreType::kAiv, loc,
        [] { return "SyncAll<true> synchronises the AIVs only; the AIC of a mix kernel must not call it"; });
  uint32_t expected = 0;
  for (const auto& t : contexts_) expected += !aiv_only || t->type == CoreType::kAiv;
  const Clock mine = c.sync.completion_all();
  const double arrival = c.times.completion_all();
  std::unique_lock<std::mutex> lock(mutex_);
  for (const auto& t : contexts_) {
    if ((!aiv_only || t->type == CoreType::kAiv) && exited_[t->index]) {
      fail(loc, "SyncAll reached by " + std::to_string(barrier_arrived_ + 1) + " of " + std::to_string(expected) + " " +
                    (aiv_only ? "AIVs" : "cores") + ": " + t->describe() + " returned before it");
    }
  }
  if (barrier_arrived_ == 0) {
    barrier_clock_ = mine;
    barrier_time_ = arrival;
    barrier_loc_ = loc;
    barrier_aiv_only_ = aiv_only;
    barrier_expected_ = expected;
  } else {
    check(barrier_aiv_only_ == aiv_only, loc, [&] {
      return "SyncAll<" + std::string(aiv_only ? "true" : "false") + "> meets SyncAll<" +
             (aiv_only ? "false" : "true") + "> at " + where(barrier_loc_);
    });
    barrier_clock_.join(mine);
    barrier_time_ = std::max(barrier_time_, arrival);
  }
  const uint64_t generation = barrier_generation_;
  if (++barrier_arrived_ == expected) {
    for (const auto& t : contexts_) {
      if (!aiv_only || t->type == CoreType::kAiv) {
        barrier_result_[t->index] = barrier_clock_;
        barrier_result_time_[t->index] = barrier_time_ + kModelSyncAllCycles;
      }
    }
    barrier_arrived_ = 0;
    ++barrier_generation_;
  } else {
    wait_until(lock, c, "SyncAll at " + where(loc), [&] { return barrier_generation_ != generation; });
  }
  const Clock got = barrier_result_[c.index];
  const double released = barrier_result_time_[c.index];
  lock.unlock();
  c.sync.wait_all(got);
  c.times.wait_all(released);
}

void Launch::note_matmul_objects(int n) {
  std::lock_guard<std::mutex> lock(mutex_);
  matmul_flag_ids_ = std::max(matmul_flag_ids_, 2 * n);
}

void Launch::cross_core_set(int mode, Pipe pipe, int flag_id, const Loc& loc) {
  ThreadCtx& c = ctx();
  check(type_ != KernelType::kAivOnly && type_ != KernelType::kAicOnly, loc, [] {
    return "CrossCoreSetFlag needs the scheduling module of a mix launch: KERNEL_TYPE_AIV_ONLY / AIC_ONLY start none "
           "(CrossCoreSetFlag(ISASI).md, 约束说明)";
  });
  check(mode >= 0 && mode <= 2, loc,
        [&] { return "CrossCoreSetFlag mode " + std::to_string(mode) + ": Atlas A2 supports modes 0, 1 and 2"; });
  check(mode == 0 || type_ == KernelType::kMixAic1To2, loc,
        [&] { return "CrossCoreSetFlag mode " + std::to_string(mode) + " needs a mix AIC:AIV kernel"; });
  check(flag_id >= 0 && flag_id <= int(kMaxCrossCoreFlagId), loc, [&] {
    return "CrossCoreSetFlag flag id " + std::to_string(flag_id) + " outside 0.." + std::to_string(kMaxCrossCoreFlagId);
  });
  check(flag_id < kSyncAllFirstFlagId || flag_id > kSyncAllLastFlagId, loc,
        [&] { return "CrossCoreSetFlag flag id " + std::to_string(flag_id) + " is one of SyncAll's (11..14)"; });
  check(mode != 1 || c.type == CoreType::kAiv, loc,
        [] { return "CrossCoreSetFlag mode 1 synchronises the two AIVs of a core; the AIC cannot use it"; });
  const uint32_t n = uint32_t(contexts_.size());
  const Clock contribution = c.sync.completion(pipe);
  const double when = c.times.completion(pipe) + kModelCrossCoreCycles;
  std::unique_lock<std::mutex> lock(mutex_);
  check(flag_id >= matmul_flag_ids_, loc, [&] {
    return "CrossCoreSetFlag flag id " + std::to_string(flag_id) + " is reserved by the Matmul objects (ids 0.." +
           std::to_string(matmul_flag_ids_ - 1) + ", CrossCoreSetFlag(ISASI).md)";
  });
  // Which threads must set for a round to complete, and whom a completed round releases.
  std::vector<uint32_t> setters, targets;
  uint32_t group = 0;
  int side = 0;
  auto core_thread = [&](CoreType t, uint32_t sub) {
    for (const auto& x : contexts_) {
      if (x->core == c.core && x->type == t && x->sub == sub) return x->index;
    }
    return 0u;
  };
  if (mode == 0) {
    for (const auto& x : contexts_) {
      if (x->type == c.type) setters.push_back(x->index);
    }
    targets = setters;
    group = uint32_t(c.type);
  } else if (mode == 1) {
    setters = {core_thread(CoreType::kAiv, 0), core_thread(CoreType::kAiv, 1)};
    targets = setters;
    group = c.core;
  } else if (c.type == CoreType::kAic) {
    setters = {c.index};
    targets = {core_thread(CoreType::kAiv, 0), core_thread(CoreType::kAiv, 1)};
    group = c.core;
  } else {
    setters = {core_thread(CoreType::kAiv, 0), core_thread(CoreType::kAiv, 1)};
    targets = {core_thread(CoreType::kAic, 0)};
    group = c.core;
    side = 1;
  }
  FlagGroup& g = flag_groups_[{mode, group, flag_id, side}];
  const uint64_t round = g.sets_by[c.index]++;
  while (g.first + g.rounds.size() <= round) g.rounds.push_back(Round{0, Clock(size_t(n) * kPipeCount), 0.0});
  Round& r = g.rounds[round - g.first];
  r.clock.join(contribution);
  r.time = std::max(r.time, when);
  if (++r.sets < setters.size()) return;
  for (uint32_t t : targets) {
    std::vector<Round>& pending = semaphores_[{t, flag_id}];
    check(pending.size() < kMaxCrossCorePending, loc, [&] {
      return "CrossCoreSetFlag id " + std::to_string(flag_id) + " would give " + contexts_[t]->describe() +
             " more than " + std::to_string(kMaxCrossCorePending) + " pending sets (the hardware counter counts 0..15)";
    });
    pending.push_back(r);
  }
  g.rounds.erase(g.rounds.begin());
  ++g.first;
}

void Launch::cross_core_wait(int flag_id, const Loc& loc) {
  ThreadCtx& c = ctx();
  check(type_ != KernelType::kAivOnly && type_ != KernelType::kAicOnly, loc,
        [] { return "CrossCoreWaitFlag needs the scheduling module of a mix launch (CrossCoreWaitFlag(ISASI).md)"; });
  check(flag_id >= 0 && flag_id <= int(kMaxCrossCoreFlagId), loc,
        [&] { return "CrossCoreWaitFlag flag id " + std::to_string(flag_id) + " out of range"; });
  std::unique_lock<std::mutex> lock(mutex_);
  std::vector<Round>& pending = semaphores_[{c.index, flag_id}];
  wait_until(lock, c, "CrossCoreWaitFlag(" + std::to_string(flag_id) + ") at " + where(loc),
             [&] { return !pending.empty(); });
  const Round got = pending.front();
  pending.erase(pending.begin());
  lock.unlock();
  c.sync.wait_all(got.clock);  // on A2 the wait blocks every pipe (CrossCoreWaitFlag(ISASI).md)
  c.times.wait_all(got.time);
}

}  // namespace ascend_sim
